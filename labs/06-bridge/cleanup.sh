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

link_exists() { ip link show dev "$1" >/dev/null 2>&1; }
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

# bonus_leftovers: "link NAME" / "netns PATH" lines for what the lab data root's networks still hold.
bonus_leftovers() {
    [ -d "$LAB/root/network/minidocker" ] || return 0
    "$PYTHON" - "$LAB/root/network/minidocker" <<'PY'
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

# The bonus: containers, then user networks, of the lab's own data root.
stop_containers "$LAB"
if [ -d "$LAB/root" ]; then
    MINIDOCKER_DATA_ROOT="$LAB/root" MINIDOCKER_EXEC_ROOT="$LAB/exec" md network prune -f >/dev/null 2>&1 || true
fi
while read -r kind what; do
    case "$kind" in
    link)
        if link_exists "$what"; then
            ip link del "$what" 2>/dev/null || true
            del_rules_naming "$what"
        fi
        ;;
    netns)
        case "$what" in /run/netns/?*) umount -l "$what" 2>/dev/null || true; rm -f -- "$what" ;; esac ;;
    esac
done < <(bonus_leftovers)

# The student's part.
for ns in $NAMESPACES; do
    if netns_exists "$ns"; then ip netns del "$ns"; fi
done
for link in $LINKS; do
    if link_exists "$link"; then ip link del "$link"; fi
done
while iptables -w -C FORWARD -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT 2>/dev/null; do
    iptables -w -D FORWARD -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT
done

left=""
for ns in $NAMESPACES; do netns_exists "$ns" && left="$left netns:$ns"; done
for link in $LINKS; do link_exists "$link" && left="$left link:$link"; done
while read -r kind what; do
    if [ "$kind" = link ] && link_exists "$what"; then left="$left link:$what"; fi
    if [ "$kind" = netns ] && [ -e "$what" ]; then left="$left netns:$what"; fi
done < <(bonus_leftovers)
if [ -n "$left" ]; then
    echo "cleanup: still on the host:$left" >&2
    exit 1
fi

remove_lab "$LAB"
