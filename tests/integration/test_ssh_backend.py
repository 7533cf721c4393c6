"""The VM path without a VM: ``vagrant up && tox -e integration`` pieces, proven on this machine.

* A part of the integration suite runs through testinfra's SSH backend against a private OpenSSH
  server on 127.0.0.1 (its own port, host key, config and a temporary authorized key for root;
  the system's ssh service is not involved), exactly as ``tox -e integration`` runs it against
  the Vagrant VM (``--hosts=ssh://… --ssh-config=… --sudo``).
* ``scripts/integration-target.sh`` (what the tox env calls) picks that SSH target when it is
  not root and ``vagrant status`` says the project's VM is running, and the local host as root.
* The Vagrantfile passes ``vagrant validate`` (Debian's vagrant; ``ruby -c`` where it is missing).

These tests drive processes on the machine running pytest, so they only run with the local
backend (the default); over SSH they skip.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.integration import helpers

pytestmark = pytest.mark.root

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SSHD = "/usr/sbin/sshd"
# A representative slice: the CLI and its roots, image store round trips, a container's whole life
# (namespaces, cgroup, overlay mount, json log, exit codes; the fixture checks the host is clean),
# all asserted on host state read over SSH. Every host.run is one SSH session (~0.2 s here, with
# a shared connection), so the slice stays small: ~1 min of CI.
OVER_SSH = (
    "tests/integration/test_infra.py::test_md_runs_the_cli_against_its_own_roots",
    "tests/integration/test_image_cli.py::test_buildbase_images_history_inspect",
    "tests/integration/test_image_cli.py::test_tag_and_rmi_semantics",
    "tests/integration/test_run.py::test_run_prints_output_and_exits_with_the_containers_code",
    "tests/integration/test_info.py::test_version_has_client_and_server",
)


@pytest.fixture(autouse=True)
def _local_only(host: Any) -> None:
    if not helpers.is_local(host):
        pytest.skip("starts local processes (sshd, pytest, vagrant): runs with the local backend only")


def _require(path_or_cmd: str, why: str) -> str:
    found = path_or_cmd if os.path.isabs(path_or_cmd) else shutil.which(path_or_cmd)
    if not found or not os.access(found, os.X_OK):
        msg = f"{path_or_cmd} is not installed ({why}; run scripts/provision.sh)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class SshServer:
    root: str
    port: int
    config: str  # the client's ssh_config, with Host "mdssh"
    log: str
    proc: subprocess.Popen[bytes]


def _run(*args: str) -> None:
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)


@pytest.fixture
def sshd(scratch: Any, host: Any) -> Iterator[SshServer]:
    """A private sshd on 127.0.0.1:<free port> that lets root in with a key made here."""
    _require(SSHD, "openssh-server")
    root = scratch("sshd")
    _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "mdtest-host", "-f", f"{root}/host_key")
    _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "mdtest-client", "-f", f"{root}/id")
    with open(f"{root}/id.pub") as src, open(f"{root}/authorized_keys", "w") as dst:
        dst.write(src.read())
    port = _free_port()
    with open(f"{root}/sshd_config", "w") as f:
        f.write(
            f"ListenAddress 127.0.0.1\nPort {port}\nHostKey {root}/host_key\nPidFile {root}/sshd.pid\n"
            f"AuthorizedKeysFile {root}/authorized_keys\nAllowUsers root\n"
            "PermitRootLogin prohibit-password\nPubkeyAuthentication yes\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nLogLevel VERBOSE\n"
        )
    with open(f"{root}/host_key.pub") as f:
        host_key = " ".join(f.read().split()[:2])
    with open(f"{root}/known_hosts", "w") as f:
        f.write(f"mdssh {host_key}\n")
    config = f"{root}/ssh_config"
    with open(config, "w") as f:
        f.write(
            f"Host mdssh\n  HostName 127.0.0.1\n  Port {port}\n  User root\n  IdentityFile {root}/id\n"
            f"  IdentitiesOnly yes\n  BatchMode yes\n  HostKeyAlias mdssh\n"
            f"  UserKnownHostsFile {root}/known_hosts\n  StrictHostKeyChecking yes\n"
            # one shared connection, as the tox env sets up for the VM
            f"  ControlMaster auto\n  ControlPath {root}/cm-%C\n  ControlPersist 120\n"
        )
    # sshd wants its privilege-separation directory (the ssh service would have made it)
    made_privsep = not os.path.isdir("/run/sshd")
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    log = f"{root}/sshd.log"
    proc = subprocess.Popen([SSHD, "-D", "-f", f"{root}/sshd_config", "-E", log], stdin=subprocess.DEVNULL)
    server = SshServer(root, port, config, log, proc)
    try:
        deadline = time.monotonic() + 10
        while subprocess.run(["ssh", "-F", config, "mdssh", "true"], capture_output=True).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"sshd did not come up:\n{_read(log)}")
            time.sleep(0.1)
        yield server
    finally:
        # close the shared connection first, so no session child of sshd is left behind
        subprocess.run(["ssh", "-F", config, "-O", "exit", "mdssh"], capture_output=True)
        deadline = time.monotonic() + 10
        while _children(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if made_privsep:
            with contextlib.suppress(OSError):  # a system sshd started meanwhile may use it
                os.rmdir("/run/sshd")
    assert not _children(proc.pid)
    assert not helpers.processes_mentioning(host, root), "sshd or the ssh master outlived the test"


def _children(pid: int) -> list[str]:
    r = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return r.stdout.split()


def _read(path: str) -> str:
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def test_integration_tests_pass_over_ssh(sshd: SshServer, host: Any) -> None:
    """Run the slice above in a child pytest, its ``host`` being ssh://mdssh (root@127.0.0.1)."""
    junit = f"{sshd.root}/junit.xml"
    cmd = [
        sys.executable, "-m", "pytest", *OVER_SSH,
        "--hosts=ssh://mdssh", f"--ssh-config={sshd.config}",
        "-p", "no:cacheprovider", "-q", f"--junitxml={junit}",
    ]  # fmt: skip
    # a clean pytest, not an xdist worker of this one
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "XDIST_"))}
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    output = result.stdout[-4000:] + result.stderr[-2000:]
    assert result.returncode == 0, output
    assert re.search(rf"\b{len(OVER_SSH)} passed\b", result.stdout), output
    assert " skipped" not in result.stdout.splitlines()[-1], output
    # and it really was SSH: sshd let root in with the test key (the shared connection)
    log = _read(sshd.log)
    assert re.search(r"Accepted publickey for root from 127\.0\.0\.1 port \d+ ssh2: ED25519", log), log
    assert "mdtest-client" in _read(f"{sshd.root}/authorized_keys")


def _fake_vagrant(directory: str, state: str) -> str:
    """A ``vagrant`` stand-in on PATH: ``status`` reports ``state``, ``ssh-config`` a block."""
    path = f"{directory}/vagrant"
    with open(path, "w") as f:
        f.write(
            "#!/bin/sh\n"
            'case "$1" in\n'
            f'  status) echo "1700000000,default,metadata,provider,virtualbox"; echo "1700000000,default,state,{state}";;\n'
            "  ssh-config) printf 'Host %s\\n  HostName 127.0.0.1\\n  Port 2222\\n  User vagrant\\n' \"$2\";;\n"
            "  *) exit 0;;\n"
            "esac\n"
        )
    os.chmod(path, 0o755)
    return path


def _pick(directory: str, *, as_nobody: bool, state: str) -> subprocess.CompletedProcess[str]:
    bindir = f"{directory}/bin-{state}"
    os.makedirs(bindir, exist_ok=True)
    _fake_vagrant(bindir, state)
    env = {
        **os.environ,
        "PATH": f"{bindir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "MINIDOCKER_TARGET_DRY_RUN": "1",
        "MINIDOCKER_SSH_CONFIG": f"{directory}/cfg/ssh-config",
    }
    env.pop("MINIDOCKER_TARGET", None)
    prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if as_nobody else []
    cmd = [
        *prefix,
        "bash",
        f"{REPO}/scripts/integration-target.sh",
        "python",
        "-m",
        "pytest",
        "tests/integration",
    ]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)


def test_tox_integration_picks_the_running_vagrant_vm(scratch: Any) -> None:
    directory = scratch("vagrant-pick")
    os.chmod(directory, 0o777)  # nobody writes the ssh config there
    # not root, VM running: the SSH backend with vagrant's ssh-config
    r = _pick(directory, as_nobody=True, state="running")
    assert r.returncode == 0, r.stderr
    config = f"{directory}/cfg/ssh-config"
    assert r.stdout.splitlines() == [
        "target=vagrant",
        "python -m pytest tests/integration --hosts=ssh://default "
        f"--ssh-config={shlex.quote(config)} --sudo ",
    ]
    text = _read(config)
    assert text.startswith("Host default\n  HostName 127.0.0.1\n  Port 2222\n")
    assert "ControlMaster auto" in text
    # not root, VM not running: refuse, saying what to do
    r = _pick(directory, as_nobody=True, state="poweroff")
    assert r.returncode == 2 and "vagrant up && tox -e integration" in r.stderr
    # root on Linux: this machine, whatever vagrant says
    r = _pick(directory, as_nobody=False, state="running")
    assert r.returncode == 0 and r.stdout.splitlines()[0] == "target=local"


def test_vagrantfile_is_valid(scratch: Any) -> None:
    """``vagrant validate`` (provider settings ignored: no hypervisor here) on a copy of the
    Vagrantfile, and a broken copy must fail, so the check can fail."""
    directory = scratch("vagrantfile")
    with open(f"{REPO}/Vagrantfile") as f:
        text = f.read()
    good, bad = f"{directory}/good", f"{directory}/bad"
    for d, content in ((good, text), (bad, text.replace("config.vm.box = BOX", "config.vm.boxx = BOX"))):
        os.makedirs(d)
        with open(f"{d}/Vagrantfile", "w") as f:
            f.write(content)
    if shutil.which("vagrant"):
        env = {**os.environ, "VAGRANT_HOME": f"{directory}/home", "VAGRANT_CHECKPOINT_DISABLE": "1"}

        def validate(d: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                ["vagrant", "validate", "--ignore-provider"],
                cwd=d, env=env, capture_output=True, text=True, timeout=120,
            )  # fmt: skip

        ok, broken = validate(good), validate(bad)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert "Vagrantfile validated successfully" in ok.stdout
        assert broken.returncode != 0 and "boxx" in broken.stdout + broken.stderr
        return
    ruby = _require("ruby", "vagrant or ruby, to check the Vagrantfile")
    ok_rb = subprocess.run([ruby, "-c", f"{good}/Vagrantfile"], capture_output=True, text=True)
    assert ok_rb.returncode == 0, ok_rb.stderr
    with open(f"{bad}/Vagrantfile", "a") as f:
        f.write("\nend\n")
    assert subprocess.run([ruby, "-c", f"{bad}/Vagrantfile"], capture_output=True).returncode != 0
