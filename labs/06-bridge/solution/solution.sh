#!/usr/bin/env bash
# Reference solution of lab 06 (used by `runner.py prove 06`). Spoiler: do the lab first.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/../../_lib/common.sh"
LAB="$(lab_dir 06)"
cd "$LAB"

# Step 1: two named network namespaces (ip netns bind-mounts each one at /run/netns/<name>).
ip netns add lab06a
ip netns add lab06b

# Step 2: the bridge, with the gateway address (the subnet's first address), up.
ip link add lab06br type bridge
ip addr add 10.66.0.1/24 dev lab06br
ip link set lab06br up

# Steps 3-5, once per namespace: a veth pair whose peer is born inside the namespace as eth0; the
# host end joins the bridge; inside: Docker's MAC (02:42 + the IPv4 bytes), the address, lo and
# eth0 up, and a default route through the gateway.
wire() {
    local ns="$1" veth="$2" ip="$3" mac="$4"
    ip link add "$veth" type veth peer name eth0 netns "$ns"
    ip link set "$veth" master lab06br
    ip link set "$veth" up
    ip -n "$ns" link set eth0 address "$mac"
    ip -n "$ns" addr add "$ip/24" dev eth0
    ip -n "$ns" link set lo up
    ip -n "$ns" link set eth0 up
    ip -n "$ns" route add default via 10.66.0.1 dev eth0
}
wire lab06a veth06a 10.66.0.2 02:42:0a:42:00:02
wire lab06b veth06b 10.66.0.3 02:42:0a:42:00:03

# Step 6: bridged frames go through the FORWARD chain when br_netfilter is loaded
# (net.bridge.bridge-nf-call-iptables = 1). With a DROP policy there, say what may cross the bridge,
# as dockerd's "-i docker0 -o docker0 -j ACCEPT" does.
if [ "$(cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null || echo 0)" = 1 ] &&
    ! iptables -w -S FORWARD | grep -qx -- '-P FORWARD ACCEPT'; then
    iptables -w -I FORWARD -i lab06br -o lab06br -j ACCEPT
fi
ip netns exec lab06a busybox ping -c1 -W2 10.66.0.3 >/dev/null
