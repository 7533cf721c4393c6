#!/usr/bin/env bash
# Reference solution of lab 03 (used by `runner.py prove 03`). Spoiler: do the lab first.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/../../_lib/common.sh"
LAB="$(lab_dir 03)"
cd "$LAB"

# Step 1: the writable layer, overlayfs' scratch dir, and the mount point.
mkdir upper work merged
# Step 2: leftmost lowerdir is the TOP layer, so lower2 comes first.
mount -t overlay overlay \
    -o "lowerdir=$LAB/lower2:$LAB/lower1,upperdir=$LAB/upper,workdir=$LAB/work" "$LAB/merged"
# Step 3: modifying a lower file copies it up.
printf 'edited through merged\n' >>merged/etc/motd
# Step 4: a new file goes straight to upper.
printf 'created in merged\n' >merged/new.txt
# Step 5: deleting a lower file leaves a whiteout.
rm merged/notes.txt
# Step 6: replacing a lower directory makes an opaque directory.
rm -r merged/data
mkdir merged/data
printf 'fresh\n' >merged/data/fresh.txt
