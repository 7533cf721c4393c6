#!/usr/bin/env bash
# Lab 05 cleanup: stop the lab's registry (the docker-registry processes serving 05/registry/config.yml,
# found by their command line, each killed by its PID), stop any container a bonus step ran in the lab
# data root, then unmount and remove the lab dir.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/../_lib/common.sh"
LAB="$(lab_dir 05)"

# registry_pids: PIDs of docker-registry serving this lab's config (the pid file may be stale or gone).
registry_pids() {
    local p cmd
    for p in /proc/[0-9]*; do
        cmd="$(tr '\0' ' ' 2>/dev/null <"$p/cmdline" || true)"
        case "$cmd" in
        *docker-registry*" serve $LAB/registry/config.yml"*) echo "${p#/proc/}" ;;
        esac
    done
}

pids="$(registry_pids)"
if [ -n "$pids" ]; then
    # shellcheck disable=SC2086
    kill -TERM $pids 2>/dev/null || true
    for _ in $(seq 50); do
        [ -z "$(registry_pids)" ] && break
        sleep 0.1
    done
    pids="$(registry_pids)"
    # shellcheck disable=SC2086
    [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
fi
stop_containers "$LAB"
remove_lab "$LAB"
