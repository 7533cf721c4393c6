#!/usr/bin/env bash
# Reference solution of lab 11 (used by `runner.py prove 11`). Spoiler: do the lab first.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/../../_lib/common.sh"
LAB="$(lab_dir 11)"
export MINIDOCKER_DATA_ROOT="$LAB/root" MINIDOCKER_EXEC_ROOT="$LAB/exec"

# Step 1: a user-defined network with the lab's subnet and a bridge name we can find on the host.
md network create --subnet 10.71.0.0/24 -o com.docker.network.bridge.name=lab11br lab11net >/dev/null

# Step 2: a named volume (an empty directory under the data root, for now).
md volume create lab11site >/dev/null

# Step 3: the server, on the network, serving the volume (still empty: 404 for now).
md run -d --name web --network lab11net -v lab11site:/www busybox httpd -f -p 80 -h /www >/dev/null

# Step 4: the client, on the same network, with the same volume where it can write.
md run -d --name client --network lab11net -v lab11site:/site busybox sleep 86400 >/dev/null

# Step 5: the page goes into the volume from the client; the client fetches it by the server's name.
md exec -i client sh -c 'cat > /site/index.html' <"$LAB/index.html"
for _ in $(seq 50); do
    md exec client wget -qO /dev/null http://web/ && break
    sleep 0.1
done
md exec client wget -qO- http://web/ >/dev/null

# Step 6: publish the port. Ports are fixed when a container is created: a new web, same volume.
md rm -f web >/dev/null
md run -d --name web --network lab11net -v lab11site:/www -p 127.0.0.1:8011:80 busybox httpd -f -p 80 -h /www >/dev/null
for _ in $(seq 50); do
    busybox wget -q -O /dev/null http://127.0.0.1:8011/ 2>/dev/null && break
    sleep 0.1
done
