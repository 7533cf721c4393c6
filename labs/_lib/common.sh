# Shell helpers sourced by every lab's setup.sh / cleanup.sh / solution.sh.
# Usage (from labs/NN-topic/*.sh or labs/NN-topic/solution/*.sh):
#   . "$(dirname "$0")/../_lib/common.sh"   (or ../../_lib from solution/)
#   LAB="$(lab_dir 03)"
# shellcheck shell=bash

# Say which command failed: `set -e` alone exits silently, and the runner shows this line on failure.
set -o errtrace
trap 'echo "${0##*/}: line $LINENO: \"$BASH_COMMAND\" failed (exit $?)" >&2' ERR

LABS_DIR="${MINIDOCKER_LABS_DIR:-/var/lib/minidocker-labs}"
# The runner exports MINIDOCKER (e.g. "python -m minidocker") when the console script is not on PATH.
MINIDOCKER="${MINIDOCKER:-minidocker}"
PYTHON="${PYTHON:-python3}"

lab_dir() { printf '%s/%s' "$LABS_DIR" "$1"; }

# md ARGS...: minidocker with the lab's own data root (word-splitting of $MINIDOCKER is intended).
md() {
    # shellcheck disable=SC2086
    MINIDOCKER_DATA_ROOT="${MINIDOCKER_DATA_ROOT:?set MINIDOCKER_DATA_ROOT first}" $MINIDOCKER "$@"
}

# mounts_below DIR: mount points at or below DIR, deepest first (mountinfo field 5, \ooo-escaped).
mounts_below() {
    awk -v p="${1%/}" '$5 == p || index($5, p "/") == 1 { print $5 }' /proc/self/mountinfo |
        sort -r |
        while IFS= read -r m; do printf '%b\n' "$m"; done
}

# unmount_all DIR: unmount everything at or below DIR; fails if anything stays mounted, so callers
# never "rm -rf" through a live overlay (that would delete the lower layers' files).
unmount_all() {
    local dir="$1" m tries
    for tries in 1 2 3; do
        while IFS= read -r m; do
            [ -n "$m" ] || continue
            umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
        done < <(mounts_below "$dir")
        [ -z "$(mounts_below "$dir")" ] && return 0
        sleep "0.$tries"
    done
    echo "cleanup: still mounted below $dir:" >&2
    mounts_below "$dir" >&2
    return 1
}

# remove_lab DIR: unmount, then delete the lab's scratch area (never crossing into another filesystem).
remove_lab() {
    local dir="$1"
    [ -e "$dir" ] || return 0
    unmount_all "$dir"
    rm -rf --one-file-system -- "$dir"
}

# stop_containers DIR: stop and remove every container of the data root DIR/root (a lab's bonus
# steps run `minidocker run` there, with exec root DIR/exec). With `minidocker rm -f` when this
# minidocker has it; then, whatever is left, by hand: SIGKILL the monitors (a minidocker process whose
# environment names that data root) and every process in each container's cgroup, and rmdir those
# cgroups. Run it before remove_lab: a live container would keep using the files removed there.
stop_containers() {
    local dir="$1" c pid pids cg tries ids
    [ -d "$dir/root" ] || return 0
    # The IDs first: `rm -f` deletes containers/<id>, and a cgroup its monitor has not removed yet
    # must still be found afterwards.
    ids="$(ls "$dir/root/containers" 2>/dev/null || true)"
    for c in $(MINIDOCKER_DATA_ROOT="$dir/root" MINIDOCKER_EXEC_ROOT="$dir/exec" md ps -aq 2>/dev/null || true); do
        MINIDOCKER_DATA_ROOT="$dir/root" MINIDOCKER_EXEC_ROOT="$dir/exec" md rm -f "$c" >/dev/null 2>&1 || true
    done
    # the default bridge outlives its last container by a grace period (chapter 6); its reaper
    # names this data root and would be killed below: take the bridge down now instead
    MINIDOCKER_DATA_ROOT="$dir/root" MINIDOCKER_EXEC_ROOT="$dir/exec" md network prune -f >/dev/null 2>&1 || true
    [ -n "$ids" ] || return 0
    # never ourselves or an ancestor: `labs/runner.py reset` run with the lab's MINIDOCKER_DATA_ROOT
    # exported is a minidocker-venv python too
    local ancestors=" $$ " p=$$
    while [ "$p" -gt 1 ] 2>/dev/null; do
        p=$(awk '/^PPid:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
        ancestors="$ancestors$p "
    done
    for tries in $(seq 50); do
        pids=""
        for pid in /proc/[0-9]*; do
            pid="${pid#/proc/}"
            case "$ancestors" in *" $pid "*) continue ;; esac
            grep -q minidocker "/proc/$pid/cmdline" 2>/dev/null || continue
            if tr '\0' '\n' 2>/dev/null <"/proc/$pid/environ" | grep -qxF "MINIDOCKER_DATA_ROOT=$dir/root"; then
                pids="$pids $pid"
            fi
        done
        for c in $ids; do
            for cg in /sys/fs/cgroup/*/minidocker/"$c" /sys/fs/cgroup/minidocker/"$c"; do
                [ -f "$cg/cgroup.procs" ] && pids="$pids $(tr '\n' ' ' 2>/dev/null <"$cg/cgroup.procs")"
            done
        done
        [ -n "${pids// /}" ] || break
        # shellcheck disable=SC2086
        kill -KILL $pids 2>/dev/null || true
        sleep "0.$((tries < 9 ? tries : 9))"
    done
    for c in $ids; do
        for cg in /sys/fs/cgroup/*/minidocker/"$c" /sys/fs/cgroup/minidocker/"$c"; do
            # an empty cgroup can be busy for a moment after its last process died
            for tries in 1 2 3 4 5; do
                [ -d "$cg" ] || break
                rmdir "$cg" 2>/dev/null || sleep "0.$tries"
            done
        done
    done
    for cg in /sys/fs/cgroup/*/minidocker /sys/fs/cgroup/minidocker; do
        [ -d "$cg" ] && { rmdir "$cg" 2>/dev/null || true; } # other containers still there: kept
    done
    return 0
}

# -- network labs (06, 07) --------------------------------------------------------------------
link_exists() { ip link show dev "$1" >/dev/null 2>&1; }

# del_link NAME: delete the link if it is there. A veth whose peer's namespace was just deleted
# vanishes by itself a moment later, so `ip link del` may race it and find nothing: wait (up to a
# second) until it is gone either way. Never fails: the caller's leftover check names what stayed.
del_link() {
    local tries
    for tries in 1 2 3 4 5 6 7 8 9 10; do
        link_exists "$1" || return 0
        ip link del "$1" 2>/dev/null || sleep "0.$tries"
    done
    return 0
}
netns_exists() { [ -e "/run/netns/$1" ]; }

# del_rules_naming WORD: delete every iptables rule (filter and nat) that mentions WORD as a word.
del_rules_naming() {
    local table rule
    for table in filter nat; do
        iptables -w -t "$table" -S 2>/dev/null | grep -E -- "^-A .*[ ]$1( |$)" | while IFS= read -r rule; do
            # shellcheck disable=SC2086 # iptables -S prints a rule as words, ready to split
            iptables -w -t "$table" -D ${rule#-A } 2>/dev/null || true
        done
    done
}

# network_leftovers DIR: "link NAME" / "netns PATH" lines for what the networks of the data root
# DIR/root still hold (bridges, veths, sandboxes).
network_leftovers() {
    [ -d "$1/root/network/minidocker" ] || return 0
    "$PYTHON" - "$1/root/network/minidocker" <<'PY'
import json, os, sys
d = sys.argv[1]
for name in sorted(os.listdir(d)):
    if not name.endswith(".json"):
        continue
    with open(os.path.join(d, name)) as f:
        net = json.load(f)
    if net.get("Driver") != "bridge":
        continue
    print("link", (net.get("Options") or {}).get("com.docker.network.bridge.name") or "br-" + net["Id"][:12])
    for ep in (net.get("Endpoints") or {}).values():
        if ep.get("Veth"):
            print("link", ep["Veth"])
        if ep.get("SandboxKey"):
            print("netns", ep["SandboxKey"])
PY
}

# remove_lab_networks DIR: the bonus part of a network lab. Containers of DIR/root first (their
# veths, /run/netns entries, proxies and rules go with them), then its user networks; whatever
# minidocker could not remove is removed by hand from the network records.
remove_lab_networks() {
    local dir="$1" kind what
    stop_containers "$dir"
    if [ -d "$dir/root" ]; then
        MINIDOCKER_DATA_ROOT="$dir/root" MINIDOCKER_EXEC_ROOT="$dir/exec" md network prune -f >/dev/null 2>&1 || true
    fi
    while read -r kind what; do
        case "$kind" in
        link)
            if link_exists "$what"; then
                del_link "$what"
                del_rules_naming "$what"
            fi
            ;;
        netns)
            case "$what" in /run/netns/?*) umount -l "$what" 2>/dev/null || true; rm -f -- "$what" ;; esac ;;
        esac
    done < <(network_leftovers "$dir")
}

# finish_network_cleanup DIR LEFT: the last step of a network lab's cleanup. Fails (exit 1), naming
# them, if LEFT (" kind:name" words for what the caller found still on the host) or the networks of
# DIR/root (network_leftovers) still hold anything; else removes the lab dir.
finish_network_cleanup() {
    local dir="$1" left="$2" kind what
    while read -r kind what; do
        if [ "$kind" = link ] && link_exists "$what"; then left="$left link:$what"; fi
        if [ "$kind" = netns ] && [ -e "$what" ]; then left="$left netns:$what"; fi
    done < <(network_leftovers "$dir")
    if [ -n "$left" ]; then
        echo "cleanup: still on the host:$left" >&2
        exit 1
    fi
    remove_lab "$dir"
}

# require_free_subnet CIDR HINT: setup fails (exit 1; HINT is the second line of the message) if
# the host already routes into CIDR, a /24: the lab's fetches would reach something else.
require_free_subnet() {
    local prefix="${1%.*}."
    if ip -4 route show | grep -q "^${prefix//./\\.}"; then
        echo "setup: the host already routes $1 (ip -4 route): the lab needs that subnet free" >&2
        echo "       $2" >&2
        exit 1
    fi
}

# require_free_port PORT: setup fails (exit 1) if something on the host listens on TCP PORT.
require_free_port() {
    local hex
    hex="$(printf '%04X' "$1")"
    if awk -v port="$hex" 'NR > 1 && $4 == "0A" { split($2, a, ":"); if (a[2] == port) found = 1 } END { exit !found }' \
        /proc/net/tcp /proc/net/tcp6; then
        echo "setup: something on the host already listens on TCP port $1 (ss -ltnp): the lab needs it free" >&2
        exit 1
    fi
}
