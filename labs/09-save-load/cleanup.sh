#!/usr/bin/env bash
# Lab 09 cleanup: remove the lab dir (data root, archive, unpacked copy, answers).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/../_lib/common.sh"
stop_containers "$(lab_dir 09)" # a bonus may have left a container running
remove_lab "$(lab_dir 09)"
