#!/usr/bin/env bash
# Lab 08 cleanup: stop and remove every container of the lab's data root (lab08, and whatever a
# build or a bonus step left: `rm -f`, then by hand monitors, cgroup processes and cgroups),
# unmount whatever is left below the lab dir, then remove the lab dir.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/../_lib/common.sh"
LAB="$(lab_dir 08)"

stop_containers "$LAB"
remove_lab "$LAB"
