# Lab 02 shell helpers: which cgroup version the host runs, where lab02 lives, and how to remove it.
# Sourced by setup.sh, cleanup.sh and solution/solution.sh (after _lib/common.sh).
# shellcheck shell=bash

CGROUP_ROOT=/sys/fs/cgroup
CG_NAME=lab02

# cg_version: "v2" when /sys/fs/cgroup itself is a cgroup2 mount (unified), else "v1" (a tmpfs
# holding one mount per controller; on "hybrid" hosts an extra, controller-less v2 sits at unified/).
cg_version() {
    if [ "$(stat -f -c %T "$CGROUP_ROOT")" = cgroup2fs ]; then echo v2; else echo v1; fi
}

# cg_dir CONTROLLER: the lab02 cgroup that holds CONTROLLER's files.
cg_dir() {
    if [ "$(cg_version)" = v2 ]; then echo "$CGROUP_ROOT/$CG_NAME"; else echo "$CGROUP_ROOT/$1/$CG_NAME"; fi
}

# cg_all: every lab02 directory the lab (or a student's detour) may have created, one per line:
# the v2 one, one per v1 hierarchy, and the one in a hybrid host's unified/ hierarchy.
cg_all() {
    local d
    for d in "$CGROUP_ROOT/$CG_NAME" "$CGROUP_ROOT"/*/"$CG_NAME"; do
        [ -d "$d" ] && echo "$d"
    done
    return 0
}

# cg_kill_procs DIR: SIGKILL every process in cgroup DIR until it is empty (a fork bomb may fork
# between our read of cgroup.procs and the kill, hence the loop).
cg_kill_procs() {
    local dir="$1" pids tries
    if [ -e "$dir/cgroup.kill" ]; then
        echo 1 >"$dir/cgroup.kill" || true # v2, Linux >= 5.14: the whole subtree, atomically
    fi
    for tries in $(seq 100); do
        pids="$(cat "$dir/cgroup.procs" 2>/dev/null || true)"
        [ -n "$pids" ] || return 0
        # shellcheck disable=SC2086
        kill -KILL $pids 2>/dev/null || true
        sleep "0.0$((tries < 9 ? tries : 9))"
    done
    echo "cleanup: processes survive in $dir: $(cat "$dir/cgroup.procs")" >&2
    return 1
}

# cg_remove DIR: remove cgroup DIR and every child cgroup, deepest first. A cgroup is removed with
# rmdir only (its control files cannot be unlinked); rmdir fails with EBUSY while a task is inside.
cg_remove() {
    local top="$1" d tries
    if [ "$(stat -f -c %T "$top")" = tmpfs ]; then
        # Not a cgroup: a plain directory made in the tmpfs that holds the v1 hierarchies
        # (mkdir /sys/fs/cgroup/lab02 on a v1 host), perhaps with files written into it.
        rm -rf --one-file-system -- "$top"
        return 0
    fi
    while IFS= read -r d; do
        cg_kill_procs "$d"
        for tries in $(seq 50); do
            rmdir "$d" 2>/dev/null && break
            [ -d "$d" ] || break
            sleep 0.05
        done
        if [ -d "$d" ]; then
            echo "cleanup: cannot rmdir $d" >&2
            return 1
        fi
    done < <(find "$top" -depth -type d)
}
