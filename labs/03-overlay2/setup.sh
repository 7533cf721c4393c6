#!/usr/bin/env bash
# Lab 03 setup: remove any previous attempt, then create the two read-only "layers" lower1 and lower2.
# Nothing else exists afterwards: upper/, work/ and merged/ are the student's to make.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/../_lib/common.sh"
LAB="$(lab_dir 03)"

remove_lab "$LAB"
mkdir -p "$LAB/lower1/etc" "$LAB/lower1/data" "$LAB/lower2"

# lower1 plays the base layer of an image ...
printf 'motd from lower1\n' >"$LAB/lower1/etc/motd"
printf 'hello from lower1\n' >"$LAB/lower1/greeting.txt"
printf 'a from lower1\n' >"$LAB/lower1/data/a.txt"
printf 'b from lower1\n' >"$LAB/lower1/data/b.txt"
# ... and lower2 the layer above it: it shadows greeting.txt and adds notes.txt.
printf 'hello from lower2\n' >"$LAB/lower2/greeting.txt"
printf 'notes from lower2\n' >"$LAB/lower2/notes.txt"

echo "lab 03 ready in $LAB (lower1/ and lower2/ created)"
