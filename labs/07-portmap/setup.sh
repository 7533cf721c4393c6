#!/usr/bin/env bash
# Lab 07 setup: remove whatever a previous attempt left (the httpd, namespace lab07, veth07, the
# bridge lab07br, the nat chain LAB07 and its jumps, the bonus's containers), then create the lab
# dir: www/index.html (the page the namespace's httpd will serve, with a fresh nonce, so the checker
# knows it fetched *this* page) and a data root holding busybox:latest for the bonus. No namespace,
# link, rule or process of the lab exists afterwards: making them is the lab.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/../_lib/common.sh"
LAB="$(lab_dir 07)"

bash "$HERE/cleanup.sh"

# The subnet and the port must be free, or the lab's fetches would reach something else.
require_free_subnet 10.67.0.0/24 "(lab 06's bonus uses it: minidocker lab reset 06)"
require_free_port 8087

mkdir -p "$LAB/www"
printf 'lab 07: served from the namespace lab07 (nonce %s)\n' "$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" \
    >"$LAB/www/index.html"
MINIDOCKER_DATA_ROOT="$LAB/root" md buildbase >/dev/null

echo "lab 07 ready in $LAB (no namespace, bridge or rule yet; 10.67.0.0/24 and port 8087 are free)"
echo "  the page to serve: $LAB/www/index.html"
echo "  for the bonus: export MINIDOCKER_DATA_ROOT=$LAB/root MINIDOCKER_EXEC_ROOT=$LAB/exec"
