#!/usr/bin/env bash
# Reference solution of lab 10 (used by `runner.py prove 10`). Spoiler: do the lab first.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/../../_lib/common.sh"
LAB="$(lab_dir 10)"
export MINIDOCKER_DATA_ROOT="$LAB/root" MINIDOCKER_EXEC_ROOT="$LAB/exec"
ANSWERS="$LAB/answers"
ROOT="$MINIDOCKER_DATA_ROOT"

# json_get FILE KEY...: one value out of a JSON file (config.v2.json is one line of JSON).
json_get() { "$PYTHON" -c 'import json,sys; v=json.load(open(sys.argv[1]))
for k in sys.argv[2:]: v=v[k]
print(v)' "$@"; }

# Step 1: detached, named, 32 MiB; each start prints one line and appends it to /lab10.txt.
md run -d --name lab10 -m 32m busybox \
    sh -c 'echo hello from lab10 | tee -a /lab10.txt; exec sleep 86400' >/dev/null

# Step 2: the container's directory is named by its full ID; the state is in config.v2.json.
id=""
for d in "$ROOT"/containers/*/; do
    if [ "$(json_get "$d/config.v2.json" Name)" = /lab10 ]; then id="$(basename "$d")"; fi
done
[ -n "$id" ]
[ "$(json_get "$ROOT/containers/$id/config.v2.json" State Running)" = True ]

# Step 3: the json-file log sits next to it.
echo "$ROOT/containers/$id/$id-json.log" >"$ANSWERS/log"

# Step 4: layerdb/mounts/<id>/mount-id names the overlay2 dir; its diff/ is the upperdir of the
# overlay mounted on its merged/ (the mount table says so too).
mount_id="$(cat "$ROOT/image/overlay2/layerdb/mounts/$id/mount-id")"
upper="$ROOT/overlay2/$mount_id/diff"
grep -qF "upperdir=$upper," /proc/self/mountinfo
echo "$upper" >"$ANSWERS/upperdir"
echo "$upper/lab10.txt" >"$ANSWERS/file"

# Step 5: the memory cgroup of PID 1, from /proc/<pid>/cgroup (v1: the memory line; v2: 0::).
pid="$(json_get "$ROOT/containers/$id/config.v2.json" State Pid)"
if [ "$(stat -f -c %T /sys/fs/cgroup)" = cgroup2fs ]; then
    cg="$(sed -n 's/^0:://p' "/proc/$pid/cgroup")"
    memfile="/sys/fs/cgroup$cg/memory.max"
else
    cg="$(awk -F: '$2 ~ /(^|,)memory(,|$)/ { print $3 }' "/proc/$pid/cgroup")"
    memfile="/sys/fs/cgroup/memory$cg/memory.limit_in_bytes"
fi
[ "$(cat "$memfile")" = 33554432 ]
echo "$memfile" >"$ANSWERS/memory-file"

# Step 6: stop (SIGTERM, ignored by a PID 1 without a handler, then SIGKILL after 10 s): 128 + 9.
md stop lab10 >/dev/null
json_get "$ROOT/containers/$id/config.v2.json" State ExitCode >"$ANSWERS/stop-exit-code"
! grep -qF "upperdir=$upper," /proc/self/mountinfo
[ -f "$upper/lab10.txt" ]

# Step 7: start it again: same container, same writable layer, a new PID 1 and a new monitor.
md start lab10 >/dev/null

# Step 8: PID 1 (host view) from config.v2.json; its parent is the monitor.
pid="$(json_get "$ROOT/containers/$id/config.v2.json" State Pid)"
echo "$pid" >"$ANSWERS/pid"
awk '/^PPid:/ { print $2 }' "/proc/$pid/status" >"$ANSWERS/monitor-pid"

# The new PID 1 prints its line right after the exec; give the monitor a moment to log it.
for _ in $(seq 50); do
    [ "$(grep -c 'hello from lab10' "$ROOT/containers/$id/$id-json.log")" -ge 2 ] && break
    sleep 0.1
done
