#!/usr/bin/env bash
# Lab 02 cleanup: kill every process in a lab02 cgroup, rmdir every lab02 cgroup (children first),
# give the v2 root back the controllers it had before setup, then remove the lab dir. Fails, naming
# what is left, if a lab02 cgroup survives: `prove` must not call a dirty host clean.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/../_lib/common.sh"
. "$HERE/cgroup.sh"
LAB="$(lab_dir 02)"

# The bonus: containers in the lab's own data root.
stop_containers "$LAB"

while IFS= read -r d; do
    [ -d "$d" ] || continue # co-mounted v1 controllers (cpu -> cpu,cpuacct): already removed
    cg_remove "$d"
done < <(cg_all)

# v2: setup recorded which controllers the root handed to its children; disable those the lab
# added (best effort: EBUSY while another cgroup below still uses one, and then it stays).
saved="$LAB/.lab-state/subtree_control"
if [ "$(cg_version)" = v2 ] && [ -f "$saved" ]; then
    for c in memory pids; do
        if ! grep -qw "$c" "$saved" && grep -qw "$c" "$CGROUP_ROOT/cgroup.subtree_control"; then
            echo "-$c" >"$CGROUP_ROOT/cgroup.subtree_control" 2>/dev/null || true
        fi
    done
fi

left="$(cg_all)"
if [ -n "$left" ]; then
    echo "cleanup: lab02 cgroups left: $left" >&2
    exit 1
fi
remove_lab "$LAB"
