#!/usr/bin/env bash
# Lab 11 setup (the capstone): remove whatever a previous attempt left (containers, their proxies,
# rules, veths and sandboxes, the network lab11net and its bridge lab11br, the volume), check that
# the lab's subnet 10.71.0.0/24 and host port 8011 are free, then create the lab dir with its own
# data root holding busybox:latest (buildbase) and index.html, the page to serve (with a fresh nonce,
# so the checker knows it fetched *this* page). No network, volume or container exists afterwards:
# making them is the lab.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/../_lib/common.sh"
LAB="$(lab_dir 11)"

bash "$HERE/cleanup.sh"

# The subnet and the port must be free, or the lab's fetches would reach something else.
require_free_subnet 10.71.0.0/24 "(a network of your own data root? minidocker network ls, without the lab's data root)"
require_free_port 8011

# busybox must have the two applets the lab runs (the server and the client's fetch).
for applet in httpd wget; do
    if ! busybox --list 2>/dev/null | grep -x "$applet" >/dev/null; then
        echo "setup: the host's busybox has no '$applet' applet; the lab's image needs it (install busybox-static)" >&2
        exit 1
    fi
done

mkdir -p "$LAB"
printf 'lab 11: served by web from the volume lab11site (nonce %s)\n' "$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" \
    >"$LAB/index.html"
MINIDOCKER_DATA_ROOT="$LAB/root" MINIDOCKER_EXEC_ROOT="$LAB/exec" md buildbase >/dev/null

echo "lab 11 ready in $LAB (data root root/ with busybox:latest; no network, volume or container yet)"
echo "  the page to serve: $LAB/index.html"
echo "  export MINIDOCKER_DATA_ROOT=$LAB/root MINIDOCKER_EXEC_ROOT=$LAB/exec"
