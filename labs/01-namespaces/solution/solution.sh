#!/usr/bin/env bash
# Reference solution of lab 01 (used by `runner.py prove 01`). Spoiler: do the lab first.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/../../_lib/common.sh"
LAB="$(lab_dir 01)"
cd "$LAB"

# Step 5: one long-lived process in new pid, mount, uts, ipc and net namespaces. --fork because a
# new pid namespace applies to the children of the caller; --mount-proc mounts a proc that shows
# that namespace. Detached (setsid, no stdio) so it outlives this script and holds no pipe open.
setsid unshare --pid --fork --mount-proc --uts --mount --net --ipc \
    sh -c 'hostname lab01 && exec sleep 86400' </dev/null >/dev/null 2>&1 &
parent=$!

# unshare itself stays in the host's namespaces; its child is PID 1 of the new pid namespace.
child=""
for _ in $(seq 100); do
    child="$(pgrep -P "$parent" || true)"
    if [ -n "$child" ] && [ "$(cat "/proc/$child/comm" 2>/dev/null || true)" = sleep ]; then
        break
    fi
    sleep 0.05
done
[ -n "$child" ] || { echo "solution: unshare started no child" >&2; exit 1; }
echo "$child" >"$LAB/pid"

# Step 6: a mount that only the new mount namespace sees (unshare made its mounts private).
nsenter --target "$child" --mount mount -t tmpfs lab01-scratch "$LAB/scratch"
