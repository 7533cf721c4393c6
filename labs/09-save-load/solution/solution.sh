#!/usr/bin/env bash
# Reference solution of lab 09 (used by `runner.py prove 09`). Spoiler: do the lab first.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/../../_lib/common.sh"
LAB="$(lab_dir 09)"
export MINIDOCKER_DATA_ROOT="$LAB/root"

# Step 1: save.
md save -o "$LAB/busybox.tar" busybox:latest
# Step 2: unpack a copy and hash the layer the manifest names.
mkdir "$LAB/unpacked"
tar -xf "$LAB/busybox.tar" -C "$LAB/unpacked"
layer="$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["Layers"][0])' "$LAB/unpacked/manifest.json")"
echo "sha256:$(sha256sum "$LAB/unpacked/$layer" | cut -d' ' -f1)" >"$LAB/answers/layer-diff-id"
# Step 3: delete the image (and with it its only layer).
md rmi busybox:latest >/dev/null
# Step 4: load it back.
md load -i "$LAB/busybox.tar" >/dev/null
