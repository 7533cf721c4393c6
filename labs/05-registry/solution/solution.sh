#!/usr/bin/env bash
# Reference solution of lab 05 (used by `runner.py prove 05`). Spoiler: do the lab first.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/../../_lib/common.sh"
LAB="$(lab_dir 05)"
A="$LAB/answers"
REG="$(cat "$LAB/address")"
V2MANIFEST=application/vnd.docker.distribution.manifest.v2+json

# Step 1: ping; the answer is a response header.
curl -si "http://$REG/v2/" | tr -d '\r' | sed -n 's/^Docker-Distribution-Api-Version: //Ip' >"$A/api-version"

# Step 2: the tags of lab05/app.
curl -s "http://$REG/v2/lab05/app/tags/list" |
    "$PYTHON" -c 'import json,sys; print("\n".join(json.load(sys.stdin)["tags"]))' >"$A/tags"

# Step 3: the schema 2 manifest, exact bytes (without Accept the registry converts it to schema 1).
curl -s -H "Accept: $V2MANIFEST" -D "$LAB/manifest.headers" -o "$A/manifest.json" \
    "http://$REG/v2/lab05/app/manifests/v1"
digest="sha256:$(sha256sum "$A/manifest.json" | cut -d' ' -f1)"
grep -qi "^Docker-Content-Digest: $digest" "$LAB/manifest.headers"
echo "$digest" >"$A/manifest-digest"

# Step 4: the config blob, by the digest the manifest names; it hashes to that digest.
field() { "$PYTHON" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$A/manifest.json" "$1"; }
config="$(field 'd["config"]["digest"]')"
curl -s -o "$A/config.json" "http://$REG/v2/lab05/app/blobs/$config"
[ "sha256:$(sha256sum "$A/config.json" | cut -d' ' -f1)" = "$config" ]

# Step 5: the top layer blob; its digest is of the gzip bytes, its DiffID of the tar inside.
top="$(field 'd["layers"][-1]["digest"]')"
curl -s -o "$A/top-layer.tar.gz" "http://$REG/v2/lab05/app/blobs/$top"
[ "sha256:$(sha256sum "$A/top-layer.tar.gz" | cut -d' ' -f1)" = "$top" ]
echo "sha256:$(zcat "$A/top-layer.tar.gz" | sha256sum | cut -d' ' -f1)" >"$A/top-diffid"

# Step 6: pull into the lab data root.
export MINIDOCKER_DATA_ROOT="$LAB/root"
HOME="$LAB" md pull "$REG/lab05/app:v1" >/dev/null
IMG="$MINIDOCKER_DATA_ROOT/image/overlay2"

# Step 7: each blob's traces: diffid-by-digest -> DiffID -> the layerdb dir whose diff holds it.
: >"$A/layers"
while IFS= read -r blob; do
    diff="$(cat "$IMG/distribution/diffid-by-digest/sha256/${blob#sha256:}")"
    chain="$(grep -lx -- "$diff" "$IMG"/layerdb/sha256/*/diff | head -1)"
    chain="sha256:$(basename "$(dirname "$chain")")"
    echo "$blob $diff $chain" >>"$A/layers"
done < <(field '"\n".join(x["digest"] for x in d["layers"])')

# Step 8: the image config in the image store is the config blob, under the same digest.
echo "$IMG/imagedb/content/sha256/${config#sha256:}" >"$A/image-config"
cmp "$A/config.json" "$(cat "$A/image-config")"
