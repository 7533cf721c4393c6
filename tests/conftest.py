"""Suite-wide pytest configuration: markers, the root rule, and tidy-up of Docker's global dirs.

* ``@pytest.mark.root``: needs root on the target host. Skipped when not root here (unless
  the suite targets another host with ``--hosts``). Every test under tests/integration gets it
  automatically; ``tox -e integration`` refuses outright when not root, so a non-root run never
  passes by skipping everything.
* ``@pytest.mark.docker``: needs a real dockerd (the ``dockerd`` fixtures start one); added
  automatically to tests that use those fixtures. ``-m "not docker"`` leaves them out.
* ``@pytest.mark.registry``: needs a real docker-registry.
"""

from __future__ import annotations

import os

import pytest

MARKERS = {
    "root": "needs root (integration)",
    "docker": "needs a real dockerd (started by the fixture)",
    "registry": "needs a real docker-registry",
}

# Directories a test run creates outside its scratch dirs (dockerd's plugin socket dir, the
# shim socket dir of its managed containerd, mount(8)'s utab dir). Removed at the end when they did not exist at the
# start and are empty.
DOCKER_GLOBAL_DIRS = (
    "/run/docker/plugins",
    "/run/docker",
    "/run/containerd/s",
    "/run/containerd",
    "/run/mount",  # util-linux mount(8) state dir (utab)
)


def pytest_configure(config: pytest.Config) -> None:
    for name, doc in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {doc}")


def _targets_remote_host(config: pytest.Config) -> bool:
    hosts: str = getattr(config.option, "hosts", None) or ""
    return bool(hosts) and not all(h.strip().startswith("local://") for h in hosts.split(","))


@pytest.hookimpl(trylast=True)  # after tests/integration/conftest.py has added its markers
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0 or _targets_remote_host(config):
        return
    skip = pytest.mark.skip(reason="needs root (run as root, e.g. `sudo tox -e integration`)")
    for item in items:
        if item.get_closest_marker("root"):
            item.add_marker(skip)


def _is_controller(session: pytest.Session) -> bool:
    return not hasattr(session.config, "workerinput")  # xdist workers have it


def pytest_sessionstart(session: pytest.Session) -> None:
    if _is_controller(session):
        session.config.stash[_absent_key] = [d for d in DOCKER_GLOBAL_DIRS if not os.path.exists(d)]


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # pytest exits 5 when it collected no test; tox sets MINIDOCKER_ALLOW_NO_TESTS so that an
    # env whose tests are all still to be written (or deselected) does not fail the run.
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED and os.environ.get("MINIDOCKER_ALLOW_NO_TESTS"):
        session.exitstatus = pytest.ExitCode.OK
    if not _is_controller(session) or _targets_remote_host(session.config) or os.geteuid() != 0:
        return
    for d in session.config.stash.get(_absent_key, []):
        try:
            os.rmdir(d)  # only if empty
        except OSError:
            pass


_absent_key = pytest.StashKey[list[str]]()
