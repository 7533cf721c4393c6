#!/usr/bin/env bash
# Lab 01 cleanup: stop every process the lab started, then remove the lab dir.
#
# What counts as the lab's: processes whose UTS namespace is not the host's and whose hostname is
# lab01 (the student's namespaces: killing their PID 1 ends the whole pid namespace, and with its
# last process the mount namespace and its tmpfs go too), the process named in pid when it lives
# in a pid namespace of its own, and the bonus containers of the data root 01/root
# (stop_containers). Fails, naming them, if some process survives, so `prove` cannot call a dirty
# host clean.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/../_lib/common.sh"
LAB="$(lab_dir 01)"
HOSTNAME_MARK=lab01

host_ns() { readlink "/proc/self/ns/$1"; }

# lab_pids: the host pids of every process that belongs to the lab (one per line).
lab_pids() {
    local host_uts host_pidns d pid uts listed=""
    host_uts="$(host_ns uts)"
    host_pidns="$(host_ns pid)"
    if [ -r "$LAB/pid" ]; then
        listed="$(tr -dc '0-9' <"$LAB/pid" || true)"
    fi
    for d in /proc/[0-9]*; do
        pid="${d#/proc/}"
        [ "$pid" != "$$" ] && [ "$pid" != "$BASHPID" ] || continue
        uts="$(readlink "$d/ns/uts" 2>/dev/null)" || continue
        if [ "$uts" != "$host_uts" ] &&
            [ "$(nsenter --target "$pid" --uts uname -n 2>/dev/null || true)" = "$HOSTNAME_MARK" ]; then
            echo "$pid"
            continue
        fi
        # The student's pid file, but only a process in a pid namespace of its own: never the
        # student's shell or anything else on the host that a typo could name.
        if [ "$pid" = "$listed" ] && [ "$(readlink "$d/ns/pid" 2>/dev/null || true)" != "$host_pidns" ]; then
            echo "$pid"
            continue
        fi
    done
}

# The bonus: containers in the lab's own data root.
stop_containers "$LAB"

for _ in $(seq 50); do
    pids="$(lab_pids)"
    [ -n "$pids" ] || break
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    sleep 0.1
done
if [ -n "$(lab_pids)" ]; then
    echo "cleanup: these lab processes survive SIGKILL:" >&2
    lab_pids | while read -r p; do ps -o pid=,args= -p "$p" >&2 || true; done
    exit 1
fi

remove_lab "$LAB"
