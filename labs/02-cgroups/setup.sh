#!/usr/bin/env bash
# Lab 02 setup: remove any previous attempt (processes, lab02 cgroups), create the lab dir and, on a
# cgroup v2 host, record the root's cgroup.subtree_control so that cleanup can restore it.
# No lab02 cgroup exists afterwards: making them is the lab.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/../_lib/common.sh"
. "$HERE/cgroup.sh"
LAB="$(lab_dir 02)"

bash "$HERE/cleanup.sh"
mkdir -p "$LAB/.lab-state"
version="$(cg_version)"
if [ "$version" = v2 ]; then
    cp "$CGROUP_ROOT/cgroup.subtree_control" "$LAB/.lab-state/subtree_control"
fi

echo "lab 02 ready in $LAB (this host runs cgroup $version; no lab02 cgroup exists yet)"
