"""The eBPF device filter in a real kernel (root): what a process in the cgroup may open or mknod.

Needs a cgroup2 mount: ``/sys/fs/cgroup`` on a v2-only host, ``/sys/fs/cgroup/unified`` on a hybrid
one. Device programs need no controller, so the empty ``unified`` tree is enough, and the whole
``V2Cgroup`` path (create, apply, add, remove) runs there. Each test has its own parent
``minidocker-test-<random>``; the fixture kills the children and ``rmdir``s everything, even on failure.

A child (a Python process gated on stdin) is moved into the cgroup, then tries opens and mknods and
prints what it got as JSON: ``"ok"`` or the errno name.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from minidocker import cgroups, trace
from minidocker.cgroups import base, devices_bpf
from minidocker.kernel import bpf

pytestmark = pytest.mark.root

ROOT = "/sys/fs/cgroup"

CHILD = r"""
import errno, json, os, sys
sys.stdin.readline()  # the parent has moved us into the cgroup
tmp = sys.argv[1]
out = {}

def attempt(name, fn):
    try:
        fn()
        out[name] = "ok"
    except OSError as e:
        out[name] = errno.errorcode.get(e.errno, str(e.errno))

def opener(path, flags):
    return lambda: os.close(os.open(path, flags))

def pty():
    m, s = os.openpty()  # /dev/ptmx (5:2), then /dev/pts/N (136:N)
    os.close(m)
    os.close(s)

attempt("null_rw", opener("/dev/null", os.O_RDWR))
attempt("null_r", opener("/dev/null", os.O_RDONLY))
attempt("null_w", opener("/dev/null", os.O_WRONLY))
attempt("zero_r", opener("/dev/zero", os.O_RDONLY))
attempt("urandom_r", opener("/dev/urandom", os.O_RDONLY))
attempt("pty", pty)
attempt("loop_control", opener("/dev/loop-control", os.O_RDWR))
attempt("mknod_mem", lambda: os.mknod(os.path.join(tmp, "mem"), 0o20600, os.makedev(1, 1)))
attempt("open_mem", opener(os.path.join(tmp, "mem"), os.O_RDONLY))
attempt("mknod_loop0", lambda: os.mknod(os.path.join(tmp, "loop0"), 0o60600, os.makedev(7, 0)))
attempt("open_loop0", opener(os.path.join(tmp, "loop0"), os.O_RDONLY))
attempt("regular_file", lambda: open(os.path.join(tmp, "f"), "w").close())
print(json.dumps(out))
"""


def _v2_root() -> str | None:
    for root in (ROOT, os.path.join(ROOT, "unified")):
        if os.path.isdir(root) and base.mount_fstype(root) == "cgroup2":
            return root
    return None


class Harness:
    def __init__(self, root: str) -> None:
        self.root = root
        self.parent = f"minidocker-test-{uuid.uuid4().hex[:8]}"
        self.cgroups: list[cgroups.Cgroup] = []
        self.children: list[subprocess.Popen[str]] = []

    def cgroup(self, name: str = "c1") -> cgroups.V2Cgroup:
        cg = cgroups.open_cgroup(name, parent=self.parent, root=self.root)
        assert isinstance(cg, cgroups.V2Cgroup)
        self.cgroups.append(cg)
        return cg

    def probe(self, cg: cgroups.Cgroup, tmp: Path) -> dict[str, str]:
        """Run CHILD inside ``cg`` with ``tmp`` for its device nodes; its verdicts."""
        tmp.mkdir()
        p = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(tmp)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.children.append(p)
        cg.add(p.pid)
        try:
            out, err = p.communicate("go\n", timeout=30)
        finally:
            shutil.rmtree(tmp)  # no device nodes left behind, even in pytest's temp dirs
        assert p.returncode == 0, err
        result: dict[str, str] = json.loads(out)
        return result

    def teardown(self) -> None:
        for p in self.children:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=10)
        for cg in self.cgroups:
            try:
                cg.kill_all()
            except Exception:
                pass
            try:
                cg.remove(timeout=5)
            except Exception:
                pass
        cgroups.cleanup_parent(parent=self.parent, root=self.root)
        d = os.path.join(self.root, self.parent)
        if os.path.isdir(d):  # last resort
            for sub, _dirs, _files in os.walk(d, topdown=False):
                base.rmdir(sub, timeout=5)


@pytest.fixture
def h() -> Iterator[Harness]:
    root = _v2_root()
    if root is None:
        pytest.skip("no cgroup2 mount on this host")
    harness = Harness(root)
    yield harness
    harness.teardown()
    assert not os.path.exists(os.path.join(root, harness.parent))


ALLOWED = ("null_rw", "null_r", "null_w", "zero_r", "urandom_r", "pty", "mknod_mem", "mknod_loop0")
DENIED = ("loop_control", "open_mem", "open_loop0")


def test_docker_list_enforced_through_v2cgroup(h: Harness, tmp_path: Path) -> None:
    cg = h.cgroup()
    cg.create()
    with trace.capture() as events:
        cg.apply(cgroups.Resources())  # devices=True by default
    assert events[-2:] == [
        "bpf(BPF_PROG_LOAD, cgroup_device, 69 insns)",
        f"bpf(BPF_PROG_ATTACH, {cg.path()}, BPF_CGROUP_DEVICE)",
    ]
    assert len(devices_bpf.attached(cg.path())) == 1
    got = h.probe(cg, tmp_path / "in")
    assert {k: got[k] for k in ALLOWED} == dict.fromkeys(ALLOWED, "ok")
    # mknod of anything is allowed (c *:* m, b *:* m); opening what it made is not
    assert {k: got[k] for k in DENIED} == dict.fromkeys(DENIED, "EPERM")
    assert got["regular_file"] == "ok"  # not a device: never asked


def test_without_the_filter_everything_opens(h: Harness, tmp_path: Path) -> None:
    """The control: the same child in a cgroup applied with devices=False (``--privileged``)."""
    cg = h.cgroup()
    cg.create()
    cg.apply(cgroups.Resources(), devices=False)
    assert devices_bpf.attached(cg.path()) == []
    got = h.probe(cg, tmp_path / "in")
    # the devices' own answers now (ENXIO for 1:1 on a kernel without /dev/mem), never the cgroup's EPERM
    assert [k for k in DENIED if got[k] == "EPERM"] == []
    assert got["loop_control"] == "ok"


def test_access_bits_read_only_rule(h: Harness, tmp_path: Path) -> None:
    cg = h.cgroup()
    cg.create()
    cg.restrict_devices(("c 1:3 r",))
    got = h.probe(cg, tmp_path / "in")
    assert (got["null_r"], got["null_rw"], got["null_w"]) == ("ok", "EPERM", "EPERM")
    assert got["zero_r"] == "EPERM" and got["mknod_mem"] == "EPERM"


def test_reapply_replaces_and_rmdir_frees(h: Harness) -> None:
    cg = h.cgroup()
    cg.create()
    cg.apply(cgroups.Resources())
    (first,) = devices_bpf.attached(cg.path())
    cg.apply(cgroups.Resources())
    (second,) = devices_bpf.attached(cg.path())  # still one program: the old one was detached
    assert second != first
    cg.remove()
    # the cgroup took the only reference: once it is released, the program is freed
    deadline = time.monotonic() + 10
    while True:
        try:
            fd = bpf.prog_get_fd_by_id(second)
        except FileNotFoundError:
            break
        os.close(fd)
        assert time.monotonic() < deadline, f"program {second} still loaded after rmdir"
        time.sleep(0.05)


def test_attach_to_a_missing_cgroup_is_an_error(h: Harness) -> None:
    cg = h.cgroup("never-created")
    with pytest.raises(devices_bpf.DeviceFilterError) as e:
        cg.restrict_devices()
    assert e.value.path == cg.path() and e.value.errno == 2


def test_verifier_refusal_says_why() -> None:
    """A program that exits without a verdict in r0 never reaches a cgroup: the verifier's log is the error."""
    with pytest.raises(OSError, match="verifier:.*R0 !read_ok"):
        bpf.prog_load(bytes.fromhex("9500000000000000"))  # just "exit"
