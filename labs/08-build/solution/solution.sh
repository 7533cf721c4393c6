#!/usr/bin/env bash
# Reference solution of lab 08 (used by `runner.py prove 08`). Spoiler: do the lab first.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/../../_lib/common.sh"
LAB="$(lab_dir 08)"
export MINIDOCKER_DATA_ROOT="$LAB/root" MINIDOCKER_EXEC_ROOT="$LAB/exec"
ANSWERS="$LAB/answers"
ROOT="$MINIDOCKER_DATA_ROOT"
SCRIPT='mkdir /lab08 && echo hello > /lab08/new.txt && echo "lab08:x:1000:1000::/home:/bin/sh" >> /etc/passwd && rm /linuxrc'

# json_get FILE KEY...: one value out of a JSON file.
json_get() { "$PYTHON" -c 'import json,sys; v=json.load(open(sys.argv[1]))
for k in sys.argv[2:]: v=v[int(k)] if isinstance(v, list) else v[k]
print(v)' "$@"; }

# Step 1: one container that adds a file (and its directory), changes one and deletes one.
md run --name lab08 busybox sh -c "$SCRIPT"

# Step 2: its upper dir: containers/<id>/ -> layerdb/mounts/<id>/mount-id -> overlay2/<mount-id>/diff.
id=""
for d in "$ROOT"/containers/*/; do
    if [ "$(json_get "$d/config.v2.json" Name)" = /lab08 ]; then id="$(basename "$d")"; fi
done
[ -n "$id" ]
upper="$ROOT/overlay2/$(cat "$ROOT/image/overlay2/layerdb/mounts/$id/mount-id")/diff"
[ -c "$upper/linuxrc" ]
echo "$upper" >"$ANSWERS/upperdir"

# Step 3: overlayfs whiteout (char 0/0) -> aufs whiteout (.wh.<name>, empty regular file, 0600),
# then a tar without a leading ./ and with numeric owners.
stage="$LAB/stage"
rm -rf "$stage"
cp -a "$upper" "$stage"
rm "$stage/linuxrc"
touch "$stage/.wh.linuxrc"
chmod 600 "$stage/.wh.linuxrc"
# shellcheck disable=SC2012,SC2046
(cd "$stage" && tar --numeric-owner -cf "$LAB/layer.tar" $(ls -A))

# Step 4: the DiffID is the sha256 of the uncompressed tar.
diff_id="sha256:$(sha256sum "$LAB/layer.tar" | cut -d' ' -f1)"
echo "$diff_id" >"$ANSWERS/diff-id"

# Step 5: register it on top of busybox: a docker-archive with busybox's layer and ours.
arc="$LAB/archive"
rm -rf "$arc"
mkdir -p "$arc/base" "$arc/hand"
md save -o "$LAB/busybox.tar" busybox:latest
base_layer="$(tar -tf "$LAB/busybox.tar" | grep '/layer.tar$')"
tar -xOf "$LAB/busybox.tar" "$base_layer" >"$arc/base/layer.tar"
cp "$LAB/layer.tar" "$arc/hand/layer.tar"
base_id="sha256:$(sha256sum "$arc/base/layer.tar" | cut -d' ' -f1)"
cat >"$arc/config.json" <<JSON
{"architecture":"amd64","os":"linux","config":{"Cmd":["sh"]},"rootfs":{"type":"layers","diff_ids":["$base_id","$diff_id"]}}
JSON
echo '[{"Config":"config.json","RepoTags":["lab08/hand:latest"],"Layers":["base/layer.tar","hand/layer.tar"]}]' \
    >"$arc/manifest.json"
tar -C "$arc" -cf "$LAB/hand-image.tar" manifest.json config.json base hand
md load -i "$LAB/hand-image.tar" >/dev/null
md image inspect -f '{{.Id}}' lab08/hand >"$ANSWERS/image-id"
[ "$(md run --rm lab08/hand cat /lab08/new.txt)" = hello ]
if md run --rm lab08/hand ls /linuxrc >/dev/null 2>&1; then echo "/linuxrc survived" >&2; exit 1; fi

# Step 6: the same with commit.
md commit lab08 lab08/commit >/dev/null
md image inspect -f '{{json .RootFS.Layers}}' lab08/commit >"$LAB/commit-layers.json"
json_get "$LAB/commit-layers.json" -1 >"$ANSWERS/commit-diff-id"

# Step 7: the same with build: one RUN (a layer) and one CMD (an empty layer).
cat >"$LAB/build/Dockerfile" <<DOCKERFILE
FROM busybox
RUN $SCRIPT
CMD ["cat", "/lab08/new.txt"]
DOCKERFILE
md build -q -t lab08/build "$LAB/build" >/dev/null
md image inspect -f '{{.Id}}' lab08/build >"$ANSWERS/build-image-id"
# and once more: every step comes from the cache, so the same image ID
[ "$(md build -q -t lab08/build "$LAB/build")" = "$(cat "$ANSWERS/build-image-id")" ]
