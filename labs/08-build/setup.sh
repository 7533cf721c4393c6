#!/usr/bin/env bash
# Lab 08 setup: stop and remove whatever a previous attempt left (the lab's containers, their
# monitors, mounts and cgroups), then create the lab dir with its own data root holding
# busybox:latest (buildbase), an empty answers/ dir and an empty build context build/. No container,
# no layer tar, no Dockerfile exist afterwards: making them is the lab.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/../_lib/common.sh"
LAB="$(lab_dir 08)"

bash "$HERE/cleanup.sh"
mkdir -p "$LAB/answers" "$LAB/build"
MINIDOCKER_DATA_ROOT="$LAB/root" md buildbase >/dev/null

echo "lab 08 ready in $LAB (data root root/ with busybox:latest, exec root exec/, answers/, build/)"
echo "  export MINIDOCKER_DATA_ROOT=$LAB/root MINIDOCKER_EXEC_ROOT=$LAB/exec"
