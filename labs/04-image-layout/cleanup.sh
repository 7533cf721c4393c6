#!/usr/bin/env bash
# Lab 04 cleanup: remove the lab dir, its data root and answers (unmounting anything left below it).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/../_lib/common.sh"
stop_containers "$(lab_dir 04)" # a bonus may have left a container running
remove_lab "$(lab_dir 04)"
