#!/usr/bin/env bash
# Lab 01 setup: stop whatever a previous attempt left running, then create the lab dir with an
# empty scratch/ (the mount point of step 6). No namespace exists afterwards: making them is the lab.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/../_lib/common.sh"
LAB="$(lab_dir 01)"

bash "$HERE/cleanup.sh"
mkdir -p "$LAB/scratch"

echo "lab 01 ready in $LAB (scratch/ created; the host's hostname is $(uname -n))"
