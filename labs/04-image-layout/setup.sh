#!/usr/bin/env bash
# Lab 04 setup: remove any previous attempt, then craft /var/lib/minidocker-labs/04/app.tar, a
# three-layer docker-archive (lab04/app:v1) whose base layer is byte-identical to what
# `minidocker buildbase` produces, plus an empty answers/ dir. The lab data root (04/root) is NOT
# created: the student's first step does that.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/../_lib/common.sh"
LAB="$(lab_dir 04)"

remove_lab "$LAB"
mkdir -p "$LAB/answers"

# Borrow busybox's layer from a throwaway data root (deleted below) so the archive's base layer
# shares its DiffID with the student's own buildbase.
SCRATCH="$LAB/.setup"
MINIDOCKER_DATA_ROOT="$SCRATCH/root" md buildbase >/dev/null
MINIDOCKER_DATA_ROOT="$SCRATCH/root" md save -o "$SCRATCH/busybox.tar" busybox:latest
"$PYTHON" "$HERE/../_lib/mkarchive.py" --base-from-save "$SCRATCH/busybox.tar" --tag lab04/app:v1 \
    -o "$LAB/app.tar"
rm -rf --one-file-system -- "$SCRATCH"

echo "lab 04 ready in $LAB (app.tar, answers/)"
