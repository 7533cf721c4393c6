#!/usr/bin/env bash
# Lab 06 cleanup: put the host's network back as it was before the lab.
#
# The bonus first: containers of the lab's data root (stop_containers: `rm -f` releases their
# veths, /run/netns entries and addresses), then its user networks (`network prune` removes their
# bridges and iptables rules). Whatever minidocker could not remove is removed by hand from the
# network records (bridges, veths, sandboxes, and the iptables rules naming those bridges). Then the
# student's part: the namespaces lab06a and lab06b (deleting a namespace deletes the veth ends in
# it, and with them their host ends), the veths and the bridge if they are on the host, and the
# FORWARD rule for lab06br. Fails, naming it, if anything of the lab survives.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/../_lib/common.sh"
LAB="$(lab_dir 06)"
NAMESPACES="lab06a lab06b"
LINKS="veth06a veth06b lab06br"
BRIDGE=lab06br

# The bonus: containers, then user networks, of the lab's own data root.
remove_lab_networks "$LAB"

# The student's part.
for ns in $NAMESPACES; do
    if netns_exists "$ns"; then ip netns del "$ns"; fi
done
for link in $LINKS; do
    del_link "$link"
done
while iptables -w -C FORWARD -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT 2>/dev/null; do
    iptables -w -D FORWARD -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT
done

left=""
for ns in $NAMESPACES; do netns_exists "$ns" && left="$left netns:$ns"; done
for link in $LINKS; do link_exists "$link" && left="$left link:$link"; done
finish_network_cleanup "$LAB" "$left"
