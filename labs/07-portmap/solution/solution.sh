#!/usr/bin/env bash
# Reference solution of lab 07 (used by `runner.py prove 07`). Spoiler: do the lab first.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/../../_lib/common.sh"
LAB="$(lab_dir 07)"
cd "$LAB"

# Step 1: lab 06 in short: a namespace, a bridge with the gateway, a veth pair, eth0 inside.
ip netns add lab07
ip link add lab07br type bridge
ip addr add 10.67.0.1/24 dev lab07br
ip link set lab07br up
ip link add veth07 type veth peer name eth0 netns lab07
ip link set veth07 master lab07br
ip link set veth07 up
ip -n lab07 addr add 10.67.0.2/24 dev eth0
ip -n lab07 link set lo up
ip -n lab07 link set eth0 up
ip -n lab07 route add default via 10.67.0.1

# Step 2: the "container's" server. In the background, detached from this shell's output (a
# caller capturing it would otherwise wait for httpd to exit).
setsid ip netns exec lab07 busybox httpd -f -p 80 -h "$LAB/www" </dev/null >/dev/null 2>&1 &
for _ in $(seq 50); do
    wget -q -T 1 -O /dev/null http://10.67.0.2/ && break
    sleep 0.1
done

# Step 3: our own nat chain with the DNAT rule: host port 8087 -> 10.67.0.2:80.
iptables -w -t nat -N LAB07
iptables -w -t nat -A LAB07 -p tcp --dport 8087 -j DNAT --to-destination 10.67.0.2:80

# Step 4: the host's own packets pass nat OUTPUT (not PREROUTING): jump there, for 10.67.0.1 only.
iptables -w -t nat -A OUTPUT -d 10.67.0.1/32 -j LAB07

# Step 5: try it.
wget -qO- http://10.67.0.1:8087/
