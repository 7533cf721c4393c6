#!/usr/bin/env bash
# Lab 05 setup: stop and remove any previous attempt, then start a private registry
# (Debian's `docker-registry`) on 127.0.0.1 with its storage under /var/lib/minidocker-labs/05/registry
# and fill it from a throwaway data root (deleted below): busybox:latest (buildbase) as lab05/busybox,
# and a three-layer image (busybox + two small layers, one random) as lab05/app:v1 plus a second,
# random tag. Writes the registry's address (127.0.0.1:5055, or a free port if that one is taken) to
# 05/address and creates an empty answers/ dir. The lab data root (05/root) is NOT created: pulling
# into it is a step of the lab.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/../_lib/common.sh"
LAB="$(lab_dir 05)"

bash "$HERE/cleanup.sh"
mkdir -p "$LAB/answers" "$LAB/registry/storage"

# 5055 when it is free, so the README's commands work as written; any free loopback port otherwise.
port="$("$PYTHON" -c '
import socket
for p in (5055, 0):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        continue
    print(s.getsockname()[1])
    break')"
REG="127.0.0.1:$port"
cat >"$LAB/registry/config.yml" <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $LAB/registry/storage
  delete:
    enabled: true
http:
  addr: $REG
YAML
# Its own session, stdio away from the runner's pipes: the registry outlives this script.
setsid nohup docker-registry serve "$LAB/registry/config.yml" >>"$LAB/registry/registry.log" 2>&1 </dev/null &
echo $! >"$LAB/registry/pid"
for _ in $(seq 100); do
    code="$(curl -s -o /dev/null -w '%{http_code}' "http://$REG/v2/" || true)"
    [ "$code" = 200 ] && break
    sleep 0.1
done
[ "$code" = 200 ] || { echo "docker-registry did not answer on $REG:" >&2; cat "$LAB/registry/registry.log" >&2; exit 1; }
printf '%s\n' "$REG" >"$LAB/address"

# Push from a scratch data root (HOME too, so no stored login is read), then drop it.
SCRATCH="$LAB/.setup"
export MINIDOCKER_DATA_ROOT="$SCRATCH/root" MINIDOCKER_EXEC_ROOT="$SCRATCH/exec" HOME="$SCRATCH"
md buildbase >/dev/null
md save -o "$SCRATCH/busybox.tar" busybox:latest
"$PYTHON" "$HERE/../_lib/mkarchive.py" --base-from-save "$SCRATCH/busybox.tar" --tag lab05/app:v1 \
    -o "$SCRATCH/app.tar"
md load -i "$SCRATCH/app.tar" >/dev/null
extra="build-$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')"
md tag busybox:latest "$REG/lab05/busybox:latest"
md tag lab05/app:v1 "$REG/lab05/app:v1"
md tag lab05/app:v1 "$REG/lab05/app:$extra"
for ref in "$REG/lab05/busybox:latest" "$REG/lab05/app:v1" "$REG/lab05/app:$extra"; do
    md push -q "$ref" >/dev/null
done
unset MINIDOCKER_DATA_ROOT MINIDOCKER_EXEC_ROOT
rm -rf --one-file-system -- "$SCRATCH"

echo "lab 05 ready in $LAB: a registry on $REG (address in $LAB/address), answers/"
echo "  REG=\$(cat $LAB/address); export MINIDOCKER_DATA_ROOT=$LAB/root"
