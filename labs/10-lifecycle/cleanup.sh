#!/usr/bin/env bash
# Lab 10 cleanup: stop and remove every container of the lab's data root (`rm -f`, then by hand
# whatever survives: monitors, the processes of each container's cgroup, the cgroups), unmount
# whatever is left below the lab dir (the containers' overlays), then remove the lab dir.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/../_lib/common.sh"
LAB="$(lab_dir 10)"

stop_containers "$LAB"
remove_lab "$LAB"
