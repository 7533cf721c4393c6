#!/usr/bin/env bash
# Lab 11 cleanup: put the host back as it was before the lab.
#
# Containers of the lab's data root first (stop_containers: `rm -f`, then by hand their monitors,
# port proxies and cgroups), then the lab's networks (`network prune`, and whatever minidocker could
# not remove, by hand from the network records: bridges, veths, sandboxes). Then, in case the data
# root is already gone, by name: the bridge lab11br and every iptables rule naming it, the subnet
# 10.71.0.0/24 or the port 8011. Last the lab dir (the volume lives in it). Fails, naming it, if
# anything of the lab survives.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/../_lib/common.sh"
LAB="$(lab_dir 11)"
BRIDGE=lab11br

# lab_rules: iptables rules (filter and nat, as `-t TABLE -A ...`) that belong to the lab.
lab_rules() {
    local table
    for table in filter nat; do
        { iptables -w -t "$table" -S 2>/dev/null || true; } |
            { grep -E -- "^-A .*( $BRIDGE( |$)|10\.71\.0\.| --dport 8011( |$))" || true; } |
            sed "s/^/-t $table /"
    done
}

remove_lab_networks "$LAB"
del_link "$BRIDGE"
lab_rules | while IFS= read -r rule; do
    # shellcheck disable=SC2086 # iptables -S prints a rule as words, ready to split
    iptables -w ${rule/ -A / -D } 2>/dev/null || true
done

left=""
link_exists "$BRIDGE" && left="$left link:$BRIDGE"
[ -n "$(lab_rules)" ] && left="$left iptables:$(lab_rules | tr '\n' ';')"
finish_network_cleanup "$LAB" "$left"
