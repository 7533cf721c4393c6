"""Fixtures for the black-box integration suite (root).

Tests drive everything through testinfra's ``host``: ``host.run``, ``host.file``,
``host.mount_point``... and the fixtures below, which use ``host`` too. So the suite runs on
this machine by default and against another one with ``--hosts=ssh://HOST`` (one host only),
e.g. the Vagrant VM: ``vagrant ssh-config > .vagrant/ssh-config`` then
``pytest tests/integration --hosts=ssh://default --ssh-config=.vagrant/ssh-config --sudo``.
(Checked against sshd on 127.0.0.1: the whole suite passes over SSH. Every ``host.run`` is an
ssh connection, so add ``ControlMaster auto`` / ``ControlPath`` / ``ControlPersist 60`` to
that ssh config for speed.) Remotely, ``md`` runs ``minidocker`` from the target's PATH
(``scripts/provision.sh`` links /usr/local/bin/minidocker) unless ``$MINIDOCKER_BIN`` says.

Fixtures:

``host`` (session)
    The one target host (testinfra ``Host``).
``scratch`` (function)
    ``scratch("what")`` makes a fresh ``/var/tmp/mdtest-what.XXXXXX`` dir on the host; every dir
    made is unmounted and removed at teardown, pass or fail.
``data_root`` / ``exec_root`` (function)
    Paths for this test's minidocker state: ``<scratch>/data`` and ``<scratch>/exec``, inside a
    fresh scratch dir. They do NOT exist yet (minidocker creates them, as dockerd does).
``md`` (function)
    ``md("images", "-q")`` runs ``minidocker --data-root D --exec-root E images -q`` with
    ``host.run`` and returns the CommandResult; ``md.ok(...)`` asserts rc 0 and returns stdout;
    ``md.fail(...)`` asserts a non-zero rc (``rc=`` for a specific one) and returns the result.
``dockerd`` (function) / ``dockerd_module`` (module)
    A running real dockerd on throwaway roots (see ``helpers.DockerDaemon``):
    ``dockerd.ok("images")``, ``dockerd.docker(...)``, ``dockerd.data_root``,
    ``dockerd.stop()`` (keeps the data root for byte comparison), ``dockerd.start()`` again.
    Start-up is ~1 s and stop ~1 s, so per-test daemons are affordable; use the module one for
    read-only checks.
``registry`` (function)
    A real ``docker-registry`` on a free 127.0.0.1 port with its own storage (``registry.address``);
    ``registry_auth`` is the same with htpasswd Basic auth for user ``mdtest``/``s3cret``.
``busybox_rootfs_tar`` (session)
    Path (on the host) of a deterministic busybox rootfs tar: ``dockerd.ok("import", "-c",
    'CMD ["sh"]', tar, "busybox:latest")`` or ``dockerd.ok("import", "-", "x", stdin=tar)``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import testinfra

from tests.integration import helpers
from tests.integration.helpers import DockerDaemon, Minidocker, RegistryServer

INTEGRATION_DIR = os.path.dirname(os.path.abspath(__file__))
# The default bridge lingers 2 s after its last container (minidocker.network.reaper): tests check
# the host right after `rm`, so it goes at once here; tests of the grace period pass their own value.
os.environ.setdefault("MINIDOCKER_BRIDGE_LINGER", "0")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if not str(item.path).startswith(INTEGRATION_DIR + os.sep):
            continue
        item.add_marker(pytest.mark.root)
        names = getattr(item, "fixturenames", ())
        if "dockerd" in names or "dockerd_module" in names:
            item.add_marker(pytest.mark.docker)
        if "registry" in names or "registry_auth" in names:
            item.add_marker(pytest.mark.registry)


@pytest.fixture(scope="session")
def host(request: pytest.FixtureRequest) -> Any:
    """The single target host, built from testinfra's own options (default ``local://``).

    Overrides pytest-testinfra's module-scoped, host-parametrised ``host`` so session fixtures
    can use it too. ``testinfra.get_hosts`` caches, so this is the same object testinfra would
    hand out.
    """
    opt = request.config.option
    specs = opt.hosts.split(",") if getattr(opt, "hosts", None) else [None]
    hosts = testinfra.get_hosts(
        specs,
        connection=getattr(opt, "connection", None),
        ssh_config=getattr(opt, "ssh_config", None),
        ssh_identity_file=getattr(opt, "ssh_identity_file", None),
        sudo=getattr(opt, "sudo", False),
        sudo_user=getattr(opt, "sudo_user", None),
        ansible_inventory=getattr(opt, "ansible_inventory", None),
        force_ansible=getattr(opt, "force_ansible", False),
    )
    if len(hosts) != 1:
        raise pytest.UsageError("the integration suite targets exactly one host (--hosts=ONE)")
    target = hosts[0]
    uid = target.run("id -u").stdout.strip()
    if uid != "0":
        pytest.exit(
            f"integration tests need root on the target host (uid there is {uid!r}); "
            "run them as root (sudo) or pass --sudo",
            returncode=2,
        )
    return target


@pytest.fixture
def scratch(host: Any) -> Iterator[Callable[[str], str]]:
    made: list[str] = []

    def make(what: str = "tmp") -> str:
        path = helpers.make_temp_dir(host, what)
        made.append(path)
        return path

    yield make
    errors = []
    for path in reversed(made):
        try:
            helpers.remove_tree(host, path)
        except Exception as e:  # keep cleaning the others
            errors.append(f"{path}: {e}")
    if errors:
        pytest.fail("scratch cleanup failed:\n" + "\n".join(errors))


@pytest.fixture
def test_root(scratch: Callable[[str], str], request: pytest.FixtureRequest) -> str:
    """One fresh scratch dir for this test's minidocker state."""
    name = "".join(c if c.isalnum() else "-" for c in request.node.name)[:40]
    return scratch(f"md-{name}")


@pytest.fixture
def data_root(test_root: str) -> str:
    return f"{test_root}/data"


@pytest.fixture
def exec_root(test_root: str) -> str:
    return f"{test_root}/exec"


@pytest.fixture
def md(host: Any, data_root: str, exec_root: str) -> Minidocker:
    return Minidocker(
        host=host, binary=helpers.minidocker_binary(host), data_root=data_root, exec_root=exec_root
    )


def _require_dockerd(host: Any) -> None:
    if host.run("command -v dockerd >/dev/null 2>&1").rc != 0:
        msg = "dockerd is not installed on the target host (run scripts/provision.sh)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


def _daemon(host: Any, what: str) -> Iterator[DockerDaemon]:
    _require_dockerd(host)
    daemon = DockerDaemon(host, helpers.make_temp_dir(host, what))
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.cleanup()


@pytest.fixture
def dockerd(host: Any) -> Iterator[DockerDaemon]:
    yield from _daemon(host, "dockerd")


@pytest.fixture(scope="module")
def dockerd_module(host: Any) -> Iterator[DockerDaemon]:
    yield from _daemon(host, "dockerd-mod")


@pytest.fixture(scope="session")
def busybox_rootfs_tar(host: Any) -> Iterator[str]:
    root = helpers.make_temp_dir(host, "busybox")
    try:
        yield helpers.build_busybox_rootfs_tar(host, f"{root}/busybox-rootfs.tar")
    finally:
        helpers.remove_tree(host, root)


def _registry(host: Any, what: str, htpasswd: tuple[str, str] | None) -> Iterator[RegistryServer]:
    if host.run("command -v docker-registry >/dev/null 2>&1").rc != 0:
        pytest.skip("docker-registry is not installed on the target host (run scripts/provision.sh)")
    server = RegistryServer(host, helpers.make_temp_dir(host, what), htpasswd)
    try:
        yield server.start()
    finally:
        server.stop()
        helpers.remove_tree(host, server.root)


@pytest.fixture
def registry(host: Any) -> Iterator[RegistryServer]:
    yield from _registry(host, "registry", None)


@pytest.fixture
def registry_auth(host: Any) -> Iterator[RegistryServer]:
    yield from _registry(host, "registry-auth", ("mdtest", "s3cret"))
