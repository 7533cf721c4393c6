#!/usr/bin/env bash
# Reference solution of lab 02 (used by `runner.py prove 02`). Spoiler: do the lab first.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/../../_lib/common.sh"
. "$HERE/../cgroup.sh"
LAB="$(lab_dir 02)"
cd "$LAB"

# Step 1: which layout? v1 = one hierarchy per controller, v2 = one tree.
version="$(cg_version)"
MEM="$(cg_dir memory)"
PIDS="$(cg_dir pids)"

# Step 2: v2 only: a child gets a controller's files only if its parent enables the controller.
if [ "$version" = v2 ]; then
    echo "+memory" >"$CGROUP_ROOT/cgroup.subtree_control"
    echo "+pids" >"$CGROUP_ROOT/cgroup.subtree_control"
fi

# Step 3: the cgroup and its limit, 32 MiB (v1: memory.limit_in_bytes, v2: memory.max).
mkdir -p "$MEM"
if [ "$version" = v2 ]; then
    echo $((32 * 1024 * 1024)) >"$MEM/memory.max"
    # with swap on the host the hog would be swapped out instead of killed: no swap for lab02
    [ -e "$MEM/memory.swap.max" ] && echo 0 >"$MEM/memory.swap.max"
else
    echo $((32 * 1024 * 1024)) >"$MEM/memory.limit_in_bytes"
    [ -e "$MEM/memory.memsw.limit_in_bytes" ] && echo $((32 * 1024 * 1024)) >"$MEM/memory.memsw.limit_in_bytes"
fi

# Step 4: a process that joins the cgroup, then holds more than 32 MiB: tail keeps the last
# "line" of its input in memory, and /dev/zero has no newline. The kernel kills it (exit 137).
sh -c "echo \$\$ >$MEM/cgroup.procs && head -c 100M /dev/zero | tail >/dev/null" || true

# Step 5: at most 20 tasks, then a shell that tries to start 40 sleeps: fork fails at the limit.
mkdir -p "$PIDS"
echo 20 >"$PIDS/pids.max"
sh -c "echo \$\$ >$PIDS/cgroup.procs && for i in \$(seq 40); do sleep 2 & done; wait" >/dev/null 2>&1 || true
