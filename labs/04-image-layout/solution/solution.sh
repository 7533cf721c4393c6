#!/usr/bin/env bash
# Reference solution of lab 04 (used by `runner.py prove 04`). Spoiler: do the lab first.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/../../_lib/common.sh"
LAB="$(lab_dir 04)"
export MINIDOCKER_DATA_ROOT="$LAB/root"
IMG="$MINIDOCKER_DATA_ROOT/image/overlay2"

# Steps 1-2: base image, then the three-layer image (its base layer is shared).
md buildbase >/dev/null
md load -i "$LAB/app.tar" >/dev/null

# Step 3: the image ID is the sha256 of the config file's bytes; the file is named by it.
id="$(md image inspect -f '{{.Id}}' lab04/app:v1)"
config="$IMG/imagedb/content/sha256/${id#sha256:}"
sum="$(sha256sum "$config" | cut -d' ' -f1)"
[ "sha256:$sum" = "$id" ]
echo "sha256:$sum" >"$LAB/answers/image-id"

# Step 4: ChainID(1) = DiffID(1); ChainID(n) = sha256("ChainID(n-1) DiffID(n)"), no newline.
chain=""
: >"$LAB/answers/chain-ids"
while IFS= read -r diff; do
    if [ -z "$chain" ]; then
        chain="$diff"
    else
        chain="sha256:$(printf '%s %s' "$chain" "$diff" | sha256sum | cut -d' ' -f1)"
    fi
    [ -d "$IMG/layerdb/sha256/${chain#sha256:}" ]
    echo "$chain" >>"$LAB/answers/chain-ids"
done < <("$PYTHON" -c 'import json,sys; print("\n".join(json.load(open(sys.argv[1]))["rootfs"]["diff_ids"]))' "$config")

# Step 5: the layerdb dir of the top chain names its overlay2 dir.
cache="$(cat "$IMG/layerdb/sha256/${chain#sha256:}/cache-id")"
echo "$cache" >"$LAB/answers/cache-id"

# Step 6: the last entry of `lower` is the base layer's l/ link -> ../<cache-id>/diff.
lower="$(cat "$MINIDOCKER_DATA_ROOT/overlay2/$cache/lower")"
readlink -f "$MINIDOCKER_DATA_ROOT/overlay2/${lower##*:}" >"$LAB/answers/base-diff"
