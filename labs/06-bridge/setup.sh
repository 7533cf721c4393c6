#!/usr/bin/env bash
# Lab 06 setup: remove whatever a previous attempt left (namespaces lab06a/lab06b, veth06a/veth06b,
# the bridge lab06br, the bonus's containers and networks), then create the lab dir with its own
# data root holding busybox:latest for the bonus. No namespace, link or address of the lab exists
# afterwards: making them is the lab.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/../_lib/common.sh"
LAB="$(lab_dir 06)"

bash "$HERE/cleanup.sh"
mkdir -p "$LAB"
MINIDOCKER_DATA_ROOT="$LAB/root" md buildbase >/dev/null

# The subnet must be free: a route to it elsewhere on the host would make the lab's pings lie.
if ip -4 route show | grep -q '^10\.66\.0\.'; then
    echo "setup: the host already routes 10.66.0.0/24 (ip -4 route): the lab needs that subnet free" >&2
    exit 1
fi

echo "lab 06 ready in $LAB (no namespace or bridge yet; the lab subnet 10.66.0.0/24 is free)"
echo "  for the bonus: export MINIDOCKER_DATA_ROOT=$LAB/root MINIDOCKER_EXEC_ROOT=$LAB/exec"
