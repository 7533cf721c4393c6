#!/usr/bin/env bash
# Provision a host for minidocker: CI, the Vagrant VM, or a bare Debian/Ubuntu machine.
#
#   sudo scripts/provision.sh
#
# Idempotent and fast when everything is already there. It:
#   1. installs the apt packages below (apt-get update only when something is missing and the
#      lists are older than an hour), WITHOUT starting docker/containerd/registry services:
#      a temporary policy-rc.d blocks service starts during the install, and on systemd hosts
#      those units are disabled and stopped afterwards (a running system containerd would be
#      picked up by the tests' own dockerds instead of their private one);
#   2. sets the sysctls minidocker needs (net.ipv4.ip_forward=1), persisted in
#      /etc/sysctl.d/90-minidocker.conf, and makes sure overlayfs is available;
#   3. installs minidocker (editable, from this checkout, with the test and dev extras, which
#      include tox) into a venv at /opt/minidocker-venv and links /usr/local/bin/minidocker (a
#      command that starts the interpreter without `site`; see below).
#
# Environment knobs:
#   MINIDOCKER_VENV=/path       venv location (default /opt/minidocker-venv)
#   MINIDOCKER_PYTHON=python3.12  interpreter for the venv (default: python3 on PATH, >= 3.11)
#   MINIDOCKER_KEEP_SERVICES=1  leave system docker/containerd/registry services alone
#   MINIDOCKER_SKIP_APT=1       skip the apt part (packages are known to be there)
#   MINIDOCKER_NO_VAGRANT=1     do not install Debian's vagrant (the Vagrantfile sets this: the VM
#                               needs no vagrant of its own)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MINIDOCKER_VENV:-/opt/minidocker-venv}"
LINK=/usr/local/bin/minidocker
SYSCTL_FILE=/etc/sysctl.d/90-minidocker.conf

PACKAGES=(
    # kernel plumbing used by minidocker and the tests
    iproute2 iptables kmod procps util-linux e2fsprogs coreutils tar gzip
    # the built-in base image and test images come from the host's static busybox
    busybox-static
    # parity references: real dockerd (+ containerd, runc) and a real registry
    docker.io docker-registry
    # later chapters and remote test runs
    openssh-server apache2-utils
    # the labs talk HTTP by hand (05: registry API, 07 and 11: published ports)
    curl wget
    # chapter 5 token-auth and TLS registry tests: test keys, certificates and JWT signatures
    openssl
    # python for the venv (tox makes its own envs from it)
    python3 python3-venv ca-certificates
)
SERVICES=(docker.socket docker.service containerd.service docker-registry.service)
# `vagrant validate` checks the Vagrantfile in the tests (tests/integration/test_ssh_backend.py).
# Measured on Debian 12: 54 packages (ruby and gems), 14 MB download, 80 MB on disk, ~30 s once;
# best effort, since not every release ships it (the test falls back to `ruby -c`).
OPTIONAL_PACKAGES=(vagrant)
[ "${MINIDOCKER_NO_VAGRANT:-}" = 1 ] && OPTIONAL_PACKAGES=()

log() { printf '[provision] %s\n' "$*"; }
die() { printf '[provision] ERROR: %s\n' "$*" >&2; exit 1; }
t0=$(date +%s)

[ "$(id -u)" -eq 0 ] || die "must run as root: sudo $0"
command -v apt-get >/dev/null || die "only Debian/Ubuntu (apt) hosts are supported"

# ---- 1. packages --------------------------------------------------------------------------

missing_packages() {
    local p status
    for p in "${PACKAGES[@]}"; do
        status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
        [ "$status" = installed ] || printf '%s\n' "$p"
    done
}

apt_lists_fresh() {
    # fresh = some index file younger than an hour
    [ -n "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -60 -print -quit 2>/dev/null)" ]
}

POLICY=/usr/sbin/policy-rc.d
policy_created=0
restore_policy() {
    if [ "$policy_created" = 1 ]; then
        rm -f "$POLICY"
    fi
}
trap restore_policy EXIT

if [ "${MINIDOCKER_SKIP_APT:-}" = 1 ]; then
    log "apt: skipped (MINIDOCKER_SKIP_APT=1)"
else
    mapfile -t missing < <(missing_packages)
    if [ "${#missing[@]}" -eq 0 ]; then
        log "apt: all ${#PACKAGES[@]} packages already installed"
    else
        log "apt: installing ${missing[*]}"
        if [ ! -e "$POLICY" ]; then
            # invoke-rc.d asks this script before starting any service: 101 = "not allowed"
            printf '#!/bin/sh\nexit 101\n' > "$POLICY"
            chmod 755 "$POLICY"
            policy_created=1
        fi
        export DEBIAN_FRONTEND=noninteractive
        apt_install() {
            apt-get install -y -qq --no-install-recommends \
                -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
                "${missing[@]}"
        }
        if apt_lists_fresh; then
            log "apt: package lists are fresh, not updating"
            # fresh but maybe without our packages (or stale mirrors): update once and retry
            apt_install || { apt-get update -qq && apt_install; }
        else
            apt-get update -qq
            apt_install
        fi
    fi
fi
for p in "${OPTIONAL_PACKAGES[@]}"; do
    [ "${MINIDOCKER_SKIP_APT:-}" != 1 ] || break
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)" = installed ] && continue
    log "apt: installing $p (optional)"
    install_optional() { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$p" >/dev/null; }
    install_optional || { apt-get update -qq && install_optional; } \
        || log "WARNING: could not install $p; its checks fall back or skip"
done
restore_policy
policy_created=0

# systemd hosts: units got enabled by the packages; tests start their own daemons.
if [ -d /run/systemd/system ] && [ "${MINIDOCKER_KEEP_SERVICES:-}" != 1 ]; then
    for unit in "${SERVICES[@]}"; do
        if systemctl list-unit-files "$unit" >/dev/null 2>&1 \
            && { systemctl is-enabled --quiet "$unit" 2>/dev/null || systemctl is-active --quiet "$unit" 2>/dev/null; }; then
            log "systemd: disabling and stopping $unit"
            systemctl disable --now "$unit" >/dev/null 2>&1 || true
        fi
    done
    # openssh-server is here for the tests' private sshd on 127.0.0.1 (test_ssh_backend.py), not
    # as a login service: when this run installed it, its units stay off. A host (or the Vagrant
    # VM) that already had it keeps its sshd untouched.
    if printf '%s\n' "${missing[@]:-}" | grep -qx openssh-server; then
        log "systemd: openssh-server was installed for the tests; ssh.service stays disabled"
        systemctl disable --now ssh.service ssh.socket >/dev/null 2>&1 || true
    fi
fi

# ---- 2. kernel: sysctls, overlayfs ----------------------------------------------------------

want_sysctl="net.ipv4.ip_forward = 1"
if [ ! -f "$SYSCTL_FILE" ] || ! grep -qxF "$want_sysctl" "$SYSCTL_FILE"; then
    printf '# minidocker: containers on bridges route through the host\n%s\n' "$want_sysctl" > "$SYSCTL_FILE"
    log "sysctl: wrote $SYSCTL_FILE"
fi
if [ "$(cat /proc/sys/net/ipv4/ip_forward 2>/dev/null)" != 1 ]; then
    sysctl -q -w net.ipv4.ip_forward=1 || log "WARNING: could not set net.ipv4.ip_forward=1 (read-only /proc/sys?)"
fi

if ! grep -qw overlay /proc/filesystems; then
    modprobe overlay 2>/dev/null || true
    grep -qw overlay /proc/filesystems || die "overlayfs is not available in this kernel (modprobe overlay failed)"
    log "kernel: loaded the overlay module"
fi

# ---- 3. minidocker in a venv -----------------------------------------------------------------

pick_python() {
    local c
    for c in ${MINIDOCKER_PYTHON:-} python3 python3.13 python3.12 python3.11 /usr/bin/python3; do
        [ -n "$c" ] || continue
        if command -v "$c" >/dev/null 2>&1 \
            && "$c" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            command -v "$c"
            return 0
        fi
    done
    return 1
}

PY=$(pick_python) || die "need Python >= 3.11 with venv (set MINIDOCKER_PYTHON=...)"
stamp="$VENV/.minidocker-provisioned"
want_stamp="editable=compat repo=$REPO python=$("$PY" -c 'import sys; print(sys.version.split()[0])') pyproject=$(sha256sum "$REPO/pyproject.toml" | cut -c1-64)"

if [ -x "$VENV/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want_stamp" ] \
    && "$VENV/bin/python" -c 'import minidocker, tox, pytest' 2>/dev/null; then
    log "venv: $VENV is up to date"
else
    if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
        || [ "$("$VENV/bin/python" -c 'import sys; print(sys.version.split()[0])')" != "$("$PY" -c 'import sys; print(sys.version.split()[0])')" ]; then
        log "venv: creating $VENV with $PY"
        rm -rf "$VENV"
        "$PY" -m venv "$VENV"
    fi
    log "venv: pip install -e '$REPO[test,dev]'"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
    # compat mode: a plain path entry instead of an import hook (the hook costs ~12 ms per start)
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$REPO[test,dev]" \
        --config-settings editable_mode=compat
    printf '%s' "$want_stamp" > "$stamp"
fi

# Bytecode for the editable checkout, as an installed package would have it: environments that set
# PYTHONDONTWRITEBYTECODE (tox does, and so do some hosts) would otherwise recompile ~100 modules on
# every `minidocker` start (~0.1 s of each `run`).
"$VENV/bin/python" -m compileall -q -j 0 "$REPO/minidocker" >/dev/null || log "WARNING: compileall failed"

# The `minidocker` command: pip's console script, rewritten so that the interpreter starts without
# `site` (-S: no .pth files to read and run, no sitecustomize lookup: ~1.5 ms of every command,
# issue 3 "Speed"). The directories site would have added (the venv's site-packages, this checkout)
# are asked from the venv's interpreter now and listed in the script, so every import resolves as
# before. `pip install` puts pip's script back; provisioning again rewrites it.
"$VENV/bin/python" - "$VENV/bin/minidocker" <<'PY'
import json, os, subprocess, sys

bare = json.loads(subprocess.run([sys.executable, "-S", "-c", "import json, sys; print(json.dumps(sys.path))"],
                                 capture_output=True, text=True, check=True).stdout)
added = [p for p in sys.path if p and p not in bare]
script = f"""#!{sys.executable} -S
# minidocker's command, written by scripts/provision.sh in place of pip's console script: the same,
# but the interpreter starts without `site` (~1.5 ms of every command); sys.path gets the
# directories site would have added.
import sys

sys.path += {added!r}
from minidocker.cli.main import main

sys.exit(main())
"""
tmp = sys.argv[1] + ".tmp"
with open(tmp, "w") as f:
    f.write(script)
os.chmod(tmp, 0o755)
os.replace(tmp, sys.argv[1])
PY

if [ -L "$LINK" ] || [ ! -e "$LINK" ]; then
    if [ "$(readlink "$LINK" 2>/dev/null)" != "$VENV/bin/minidocker" ]; then
        ln -sfn "$VENV/bin/minidocker" "$LINK"
        log "linked $LINK -> $VENV/bin/minidocker"
    fi
else
    log "WARNING: $LINK exists and is not a symlink; left alone"
fi

log "done in $(( $(date +%s) - t0 ))s ($(minidocker --version 2>/dev/null || "$VENV/bin/minidocker" --version))"
