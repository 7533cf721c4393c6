#!/usr/bin/env bash
# Lab 10 setup: stop and remove whatever a previous attempt left (containers of the lab's data root,
# their monitors, mounts and cgroups), then create the lab dir with its own data root holding
# busybox:latest (buildbase) and an empty answers/ dir. No container exists afterwards: running one
# is the lab.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/../_lib/common.sh"
LAB="$(lab_dir 10)"

bash "$HERE/cleanup.sh"
mkdir -p "$LAB/answers"
MINIDOCKER_DATA_ROOT="$LAB/root" md buildbase >/dev/null

echo "lab 10 ready in $LAB (data root root/ with busybox:latest, exec root exec/, answers/)"
echo "  export MINIDOCKER_DATA_ROOT=$LAB/root MINIDOCKER_EXEC_ROOT=$LAB/exec"
