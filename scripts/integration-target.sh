#!/usr/bin/env bash
# Run the integration suite where it can run; `tox -e integration` calls this with its pytest command:
#
#   scripts/integration-target.sh python -m pytest tests/integration -n 2 ...
#
# It picks the target host and appends testinfra's options for it:
#   * root on Linux                      -> this machine (testinfra's local backend, no options);
#   * otherwise, a Vagrant VM of this project is running (`vagrant status` says "running")
#                                        -> that VM over SSH: `vagrant ssh-config` is written to
#                                           .vagrant/ssh-config (plus connection sharing) and the
#                                           command gets --hosts=ssh://<machine>
#                                           --ssh-config=.vagrant/ssh-config --sudo;
#   * neither                            -> exit 2 with what to do.
# So `vagrant up && tox -e integration` works from a non-root shell on the host, and
# `sudo tox -e integration` works on a provisioned Linux machine (CI, the VM itself).
#
#   MINIDOCKER_TARGET=local|vagrant      force one target (default: auto, as above)
#   MINIDOCKER_SSH_CONFIG=path           where to write the ssh config (default .vagrant/ssh-config)
#   MINIDOCKER_TARGET_DRY_RUN=1          print the final command instead of running it
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
[ "$#" -gt 0 ] || { echo "usage: $0 PYTEST-COMMAND..." >&2; exit 2; }
target="${MINIDOCKER_TARGET:-auto}"

# The first machine of this project that `vagrant status` reports running, e.g. "default".
running_vagrant_machine() {
    command -v vagrant >/dev/null 2>&1 || return 1
    # machine-readable lines: <timestamp>,<machine>,state,<state>
    vagrant status --machine-readable 2>/dev/null | awk -F, '$3 == "state" && $4 == "running" { print $2; exit }' | grep .
}

if [ "$target" = auto ]; then
    if [ "$(id -u)" -eq 0 ] && [ "$(uname -s)" = Linux ]; then
        target=local
    elif machine=$(running_vagrant_machine); then
        target=vagrant
    else
        echo "tox -e integration: the integration tests need root on a Linux machine, or a running" >&2
        echo "Vagrant VM of this project. Run: sudo tox -e integration   (or: vagrant up && tox -e integration)" >&2
        exit 2
    fi
fi

cmd=("$@")
case "$target" in
    local)
        if [ "$(id -u)" -ne 0 ]; then
            echo "tox -e integration: the local target needs root. Run: sudo tox -e integration" >&2
            exit 2
        fi
        ;;
    vagrant)
        machine="${machine:-$(running_vagrant_machine)}" || {
            echo "tox -e integration: no Vagrant VM of this project is running (vagrant up)" >&2
            exit 2
        }
        config="${MINIDOCKER_SSH_CONFIG:-.vagrant/ssh-config}"
        mkdir -p "$(dirname "$config")"
        {
            vagrant ssh-config "$machine"
            # every host.run is one ssh session: share one connection (ssh uses the first value
            # it finds, so these only fill in what vagrant's block left unset)
            printf 'Host *\n  ControlMaster auto\n  ControlPath %s\n  ControlPersist 60\n' \
                "${TMPDIR:-/tmp}/minidocker-ssh-%C"
        } > "$config.tmp"
        mv "$config.tmp" "$config"
        # rsync-type synced folders only follow the host's edits on `vagrant rsync`
        if [ -z "${MINIDOCKER_TARGET_DRY_RUN:-}" ]; then
            vagrant rsync "$machine" >/dev/null 2>&1 || true
        fi
        cmd+=("--hosts=ssh://$machine" "--ssh-config=$config" "--sudo")
        ;;
    *)
        echo "MINIDOCKER_TARGET must be auto, local or vagrant (got '$target')" >&2
        exit 2
        ;;
esac

if [ -n "${MINIDOCKER_TARGET_DRY_RUN:-}" ]; then
    printf 'target=%s\n' "$target"
    printf '%q ' "${cmd[@]}"
    printf '\n'
    exit 0
fi
exec "${cmd[@]}"
