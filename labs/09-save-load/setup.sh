#!/usr/bin/env bash
# Lab 09 setup: remove any previous attempt, build busybox:latest into the lab data root, and note
# (in .lab-state/, for the checker) its image ID and its layer's cache-id as they are now.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/../_lib/common.sh"
LAB="$(lab_dir 09)"

remove_lab "$LAB"
mkdir -p "$LAB/answers" "$LAB/.lab-state"
export MINIDOCKER_DATA_ROOT="$LAB/root"
md buildbase >/dev/null
md image inspect -f '{{.Id}}' busybox:latest >"$LAB/.lab-state/image-id"
# busybox:latest has exactly one layer, so layerdb has exactly one dir.
cat "$MINIDOCKER_DATA_ROOT"/image/overlay2/layerdb/sha256/*/cache-id >"$LAB/.lab-state/cache-id"

echo "lab 09 ready in $LAB (busybox:latest in $MINIDOCKER_DATA_ROOT)"
