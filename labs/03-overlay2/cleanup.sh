#!/usr/bin/env bash
# Lab 03 cleanup: unmount everything under the lab dir (the merged view, a bonus image view), then
# remove it. Refuses to delete anything while a mount remains.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/../_lib/common.sh"
stop_containers "$(lab_dir 03)" # a bonus may have left a container running
remove_lab "$(lab_dir 03)"
