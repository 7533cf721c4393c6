#!/usr/bin/env bash
# Lab 07 cleanup: put the host's network back as it was before the lab.
#
# The bonus first: containers of the lab's data root (stop_containers: `rm -f` kills their port
# proxies and deletes their DNAT rules, veths and /run/netns entries); whatever minidocker could not
# remove is removed by hand from the network records, as in lab 06. Then the student's part: every
# process in the namespace lab07 (the httpd) and any httpd serving the lab's www dir, the namespace
# (its eth0 and, with it, veth07 go too), the links, every jump to LAB07 from a built-in nat chain,
# and the chain itself. Fails, naming it, if anything of the lab survives.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/../_lib/common.sh"
LAB="$(lab_dir 07)"
NS=lab07
LINKS="veth07 lab07br"
CHAIN=LAB07

chain_exists() { iptables -w -t nat -S "$CHAIN" >/dev/null 2>&1; }

# lab_pids: processes in the namespace lab07, and any process whose command line names the lab dir
# (an httpd started with -h $LAB/www, perhaps on the host by mistake). Never ourselves or an ancestor.
lab_pids() {
    local p=$$ ancestors=" $$ " pid
    while [ "$p" -gt 1 ] 2>/dev/null; do
        p=$(awk '/^PPid:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
        ancestors="$ancestors$p "
    done
    {
        if netns_exists "$NS"; then ip netns pids "$NS" 2>/dev/null || true; fi
        for pid in /proc/[0-9]*; do
            pid="${pid#/proc/}"
            if tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q "[h]ttpd.*$LAB/"; then echo "$pid"; fi
        done
    } | sort -u | while read -r pid; do
        case "$ancestors" in *" $pid "*) ;; *) echo "$pid" ;; esac
    done
}

# The bonus: containers (and with them their proxies and rules), then user networks.
remove_lab_networks "$LAB"

# The student's part: the httpd, the namespace, the links, the jumps and the chain.
for tries in 1 2 3 4 5 6 7 8 9; do
    pids="$(lab_pids | tr '\n' ' ')"
    [ -n "${pids// /}" ] || break
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    sleep "0.$tries"
done
if netns_exists "$NS"; then ip netns del "$NS"; fi
for link in $LINKS; do
    del_link "$link"
done
for builtin in PREROUTING OUTPUT POSTROUTING INPUT; do
    { iptables -w -t nat -S "$builtin" 2>/dev/null || true; } | { grep -E -- "-j $CHAIN( |$)" || true; } | while IFS= read -r rule; do
        # shellcheck disable=SC2086 # iptables -S prints a rule as words, ready to split
        iptables -w -t nat -D ${rule#-A } || true
    done
done
if chain_exists; then
    iptables -w -t nat -F "$CHAIN"
    iptables -w -t nat -X "$CHAIN"
fi

left=""
netns_exists "$NS" && left="$left netns:$NS"
for link in $LINKS; do link_exists "$link" && left="$left link:$link"; done
chain_exists && left="$left nat-chain:$CHAIN"
iptables -w -t nat -S 2>/dev/null | grep -qE -- "-j $CHAIN( |$)" && left="$left jump:$CHAIN"
pids="$(lab_pids | tr '\n' ' ')"
[ -n "${pids// /}" ] && left="$left processes:$pids"
finish_network_cleanup "$LAB" "$left"
