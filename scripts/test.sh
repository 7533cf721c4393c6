#!/usr/bin/env bash
# The project's test command (README "Quick start", and what .ci/run runs):
#
#   sudo scripts/test.sh
#
# Runs `tox -e lint,type,unit,integration,labs` with the tox that scripts/provision.sh installed, then prints
# one combined closing line from both pytest runs' JUnit reports, e.g.
#   total: 42 passed, 0 failed, 3 skipped
# Exit status: tox's (non-zero if any env failed, or if an env could not run at all).
#
#   TOX_ENVS=unit scripts/test.sh          other envs (default: lint,type,unit,integration,labs)
#   scripts/test.sh -- -k overlay -x       extra arguments go to pytest (tox posargs)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
VENV="${MINIDOCKER_VENV:-/opt/minidocker-venv}"
ENVS="${TOX_ENVS:-lint,type,unit,integration,labs}"

if [ "$(id -u)" -ne 0 ]; then
    echo "scripts/test.sh: the integration tests need root. Run: sudo scripts/test.sh" >&2
    exit 2
fi

if [ -x "$VENV/bin/tox" ]; then
    TOX=("$VENV/bin/tox")
elif command -v tox >/dev/null 2>&1; then
    TOX=(tox)
else
    echo "scripts/test.sh: tox not found; run: sudo scripts/provision.sh" >&2
    exit 2
fi
PY="$VENV/bin/python"
[ -x "$PY" ] || PY=python3

WORKDIR="$REPO/.tox"
IFS=, read -r -a env_list <<< "$ENVS"
for e in "${env_list[@]}"; do rm -f "$WORKDIR/junit-$e.xml"; done

start=$(date +%s)
rc=0
"${TOX[@]}" --workdir "$WORKDIR" -e "$ENVS" "$@" || rc=$?
elapsed=$(( $(date +%s) - start ))

reports=()
for e in "${env_list[@]}"; do
    [ -f "$WORKDIR/junit-$e.xml" ] && reports+=("$WORKDIR/junit-$e.xml")
done

echo "test.sh: tox -e $ENVS finished in ${elapsed}s with exit status $rc"
"$PY" - "${reports[@]}" <<'EOF'
import sys
import xml.etree.ElementTree as ET

passed = failed = skipped = 0
for path in sys.argv[1:]:
    root = ET.parse(path).getroot()
    n = 0
    for case in root.iter("testcase"):
        n += 1
        tags = {child.tag for child in case}
        if tags & {"failure", "error"}:
            failed += 1
        elif "skipped" in tags:
            skipped += 1
        else:
            passed += 1
    print(f"  {path}: {n} tests")
print(f"total: {passed} passed, {failed} failed, {skipped} skipped")
EOF
exit "$rc"
