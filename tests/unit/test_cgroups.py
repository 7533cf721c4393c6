"""cgroups chapter without root: flag parsing, Docker's checks, and both drivers on a fake cgroupfs.

The fake cgroupfs is a directory tree under tmp_path plus a small "kernel" (``FakeKernel``) behind
``minidocker.cgroups.base._sys_*``: mkdir fills a new cgroup with control files, writes are checked
the way the kernel checks them (empty cpuset → ENOSPC, memsw < limit → EINVAL, v2's no internal
processes rule → EBUSY...), rmdir refuses a cgroup with tasks or children.
"""

from __future__ import annotations

import errno
import os
import signal
from pathlib import Path

import pytest

from minidocker import cgroups, trace
from minidocker.cgroups import base
from minidocker.cgroups.resources import Resources, SysInfo, parse_bytes, parse_cpus, parse_swap, verify
from minidocker.cgroups.v1 import DEFAULT_ALLOWED_DEVICES, MEMORY_UNLIMITED, V1Cgroup
from minidocker.cgroups.v2 import V2Cgroup, cpu_weight, io_weight, swap_max
from minidocker.errors import InvalidInput, MinidockerError, NotFound

V1_HIERARCHIES = ("cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "systemd")
V2_CONTROLLERS = "cpuset cpu io memory pids"


# ----------------------------------------------------------------------------------------------------
# the fake kernel
# ----------------------------------------------------------------------------------------------------
class FakeKernel:
    """Enough cgroupfs semantics for the drivers: control files appear on mkdir, writes are checked."""

    def __init__(
        self,
        root: Path,
        version: str,
        *,
        swapaccount: bool = True,
        cfq: bool = False,
        v2_controllers: str = V2_CONTROLLERS,
        comount_cpu: bool = False,
    ) -> None:
        self.root, self.version = root, version
        self.swapaccount, self.cfq = swapaccount, cfq
        self.killed: list[tuple[int, int]] = []
        self.rmdir_busy: dict[str, int] = {}  # path -> how many rmdir calls still fail with EBUSY
        if version == "v1":
            for h in V1_HIERARCHIES:
                if comount_cpu and h in ("cpu", "cpuacct"):
                    continue
                (root / h).mkdir(parents=True)
                self._populate_v1(root / h, h, is_root=True)
            if comount_cpu:  # cpu,cpuacct co-mounted, with the two symlinks distros add
                (root / "cpu,cpuacct").mkdir(parents=True)
                self._populate_v1(root / "cpu,cpuacct", "cpu,cpuacct", is_root=True)
                (root / "cpu").symlink_to("cpu,cpuacct")
                (root / "cpuacct").symlink_to("cpu,cpuacct")
        else:
            root.mkdir(parents=True, exist_ok=True)
            self._files(
                root,
                {
                    "cgroup.controllers": v2_controllers,
                    "cgroup.subtree_control": "",
                    "cgroup.procs": "1",
                    "cpuset.cpus.effective": "0-1",
                    "cpuset.mems.effective": "0",
                },
            )

    # -- files ---------------------------------------------------------------------------------------
    @staticmethod
    def _files(d: Path, files: dict[str, str]) -> None:
        for name, content in files.items():
            (d / name).write_text(content + "\n" if content else "")

    def _populate_v1(self, d: Path, hierarchy: str, *, is_root: bool) -> None:
        files = {"cgroup.procs": "", "tasks": "", "cgroup.clone_children": "0", "notify_on_release": "0"}
        ctl = set(hierarchy.split(","))
        if "cpu" in ctl:
            files.update({"cpu.shares": "1024", "cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "-1"})
        if "cpuacct" in ctl:
            files["cpuacct.usage"] = "0"
        if "cpuset" in ctl:  # the gotcha: empty in every new child
            files.update(
                {
                    "cpuset.cpus": "0-1" if is_root else "",
                    "cpuset.mems": "0" if is_root else "",
                    "cpuset.effective_cpus": "0-1" if is_root else "",
                    "cpuset.effective_mems": "0" if is_root else "",
                }
            )
        if "memory" in ctl:
            files.update(
                {
                    "memory.limit_in_bytes": MEMORY_UNLIMITED,
                    "memory.soft_limit_in_bytes": MEMORY_UNLIMITED,
                    "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0",
                    "memory.failcnt": "0",
                }
            )
            if self.swapaccount:
                files["memory.memsw.limit_in_bytes"] = MEMORY_UNLIMITED
        if "devices" in ctl:
            files.update({"devices.allow": "", "devices.deny": "", "devices.list": "a *:* rwm"})
        if "freezer" in ctl and not is_root:
            files["freezer.state"] = "THAWED"
        if "blkio" in ctl:
            files["blkio.reset_stats"] = ""
            if self.cfq:
                files["blkio.weight"] = "500"
            elif not is_root:
                files["blkio.bfq.weight"] = "100"
            else:
                files["blkio.bfq.io_service_bytes"] = ""
        if "pids" in ctl and not is_root:
            files.update({"pids.max": "max", "pids.current": "0"})
        self._files(d, files)

    def _populate_v2(self, d: Path) -> None:
        enabled = (d.parent / "cgroup.subtree_control").read_text().split()
        files = {
            "cgroup.procs": "",
            "cgroup.controllers": " ".join(enabled),
            "cgroup.subtree_control": "",
            "cgroup.events": "populated 0\nfrozen 0",
            "cgroup.freeze": "0",
            "cgroup.kill": "",
        }
        for c in enabled:
            files.update(self._v2_controller_files(c))
        self._files(d, files)

    @staticmethod
    def _v2_controller_files(c: str) -> dict[str, str]:
        return {
            "memory": {
                "memory.max": "max",
                "memory.swap.max": "max",
                "memory.low": "0",
                "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0",
            },
            "cpu": {"cpu.weight": "100", "cpu.max": "max 100000"},
            "cpuset": {"cpuset.cpus": "", "cpuset.mems": "", "cpuset.cpus.effective": "0-1"},
            "pids": {"pids.max": "max"},
            "io": {"io.weight": "default 100"},
        }[c]

    def _hierarchy_root(self, p: Path) -> Path:
        if self.version == "v2":
            return self.root
        rel = p.relative_to(self.root)
        return self.root / rel.parts[0]

    # -- syscalls ------------------------------------------------------------------------------------
    def mkdir(self, path: str) -> None:
        p = Path(path)
        os.mkdir(p)
        if self.version == "v2":
            self._populate_v2(p)
        else:
            self._populate_v1(p, os.path.realpath(self._hierarchy_root(p)).rsplit("/", 1)[1], is_root=False)

    def rmdir(self, path: str) -> None:
        p = Path(path)
        if not p.is_dir():
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        if self.rmdir_busy.get(path, 0) > 0:
            self.rmdir_busy[path] -= 1
            raise OSError(errno.EBUSY, "Device or resource busy", path)
        if any(c.is_dir() for c in p.iterdir()) or (p / "cgroup.procs").read_text().split():
            raise OSError(errno.EBUSY, "Device or resource busy", path)
        for f in p.iterdir():
            f.unlink()
        os.rmdir(p)

    def kill(self, pid: int, sig: int) -> None:
        self.killed.append((pid, sig))
        if sig == signal.SIGKILL:
            self._drop_pid(pid)

    def _drop_pid(self, pid: int) -> None:
        for procs in self.root.rglob("cgroup.procs"):
            pids = procs.read_text().split()
            if str(pid) in pids:
                procs.write_text("".join(f"{x}\n" for x in pids if x != str(pid)))

    def write(self, path: str, value: str) -> None:
        p = Path(path)
        if not p.exists():
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        name, d = p.name, p.parent
        if name == "cgroup.procs":
            self._add_pid(d, value)
        elif name == "cpuset.cpus" or name == "cpuset.mems":
            parent = (d.parent / name).read_text().strip()
            if self.version == "v2":
                parent = (d.parent / f"{name}.effective").read_text().strip()
            try:
                ok = cgroups.parse_uint_list(value) <= cgroups.parse_uint_list(parent)
            except InvalidInput:
                ok = False
            if not ok:
                big = any(int(x) >= 64 for x in value.replace("-", ",").split(",") if x.isdigit())
                # the kernel: ERANGE past nr_cpu_ids, EINVAL outside the parent's set
                raise OSError(errno.ERANGE if big else errno.EINVAL, "Invalid argument", path)
            p.write_text(value + "\n")
        elif name == "cpu.shares":
            p.write_text(f"{min(max(int(value), 2), 262144)}\n")
        elif name == "memory.limit_in_bytes":
            memsw = d / "memory.memsw.limit_in_bytes"
            if memsw.exists() and int(value) > int(memsw.read_text()):
                raise OSError(errno.EINVAL, "Invalid argument", path)
            p.write_text(value + "\n")
        elif name == "memory.memsw.limit_in_bytes":
            if int(value) != -1 and int(value) < int((d / "memory.limit_in_bytes").read_text()):
                raise OSError(errno.EINVAL, "Invalid argument", path)
            p.write_text(value + "\n")
        elif name == "devices.deny":
            assert value == "a", "the fake knows only deny-all"
            (d / "devices.list").write_text("")
        elif name == "devices.allow":
            with open(d / "devices.list", "a") as f:
                f.write(value + "\n")
        elif name == "cgroup.subtree_control":
            self._subtree_control(d, value)
        elif name == "cgroup.freeze":
            (d / "cgroup.events").write_text(f"populated 0\nfrozen {value}\n")
            p.write_text(value + "\n")
        elif name == "cgroup.kill":
            for pid in (d / "cgroup.procs").read_text().split():
                self.kill(int(pid), signal.SIGKILL)
        else:
            p.write_text(value + "\n")

    def _add_pid(self, d: Path, value: str) -> None:
        if self.version == "v1":
            cpus = d / "cpuset.cpus"
            if cpus.exists() and not (cpus.read_text().strip() and (d / "cpuset.mems").read_text().strip()):
                raise OSError(errno.ENOSPC, "No space left on device", str(d))
        elif d != self.root and (d / "cgroup.subtree_control").read_text().split():
            raise OSError(errno.EBUSY, "Device or resource busy", str(d))
        self._drop_pid_in(self._hierarchy_root(d), value)
        with open(d / "cgroup.procs", "a") as f:
            f.write(value + "\n")

    def _drop_pid_in(self, hierarchy: Path, pid: str) -> None:  # a task is in one cgroup per hierarchy
        for procs in hierarchy.rglob("cgroup.procs"):
            pids = procs.read_text().split()
            if pid in pids:
                procs.write_text("".join(f"{x}\n" for x in pids if x != pid))

    def _subtree_control(self, d: Path, value: str) -> None:
        available = (d / "cgroup.controllers").read_text().split()
        enabled = (d / "cgroup.subtree_control").read_text().split()
        for token in value.split():
            c = token[1:]
            if c not in available:
                raise OSError(errno.ENOENT, "No such file or directory", str(d))
            if d != self.root and (d / "cgroup.procs").read_text().split():
                raise OSError(errno.EBUSY, "Device or resource busy", str(d))
            if token[0] == "+" and c not in enabled:
                enabled.append(c)
                for child in (x for x in d.iterdir() if x.is_dir()):
                    self._files(child, self._v2_controller_files(c))
                    (child / "cgroup.controllers").write_text(" ".join(enabled) + "\n")
        (d / "cgroup.subtree_control").write_text(" ".join(enabled) + "\n")

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(base, "_sys_write", self.write)
        monkeypatch.setattr(base, "_sys_mkdir", self.mkdir)
        monkeypatch.setattr(base, "_sys_rmdir", self.rmdir)
        monkeypatch.setattr(base, "_sys_kill", self.kill)


@pytest.fixture
def v1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeKernel:
    k = FakeKernel(tmp_path / "cgroup", "v1")
    k.install(monkeypatch)
    return k


@pytest.fixture
def v2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeKernel:
    k = FakeKernel(tmp_path / "cgroup", "v2")
    k.install(monkeypatch)
    return k


def rd(p: Path | str) -> str:
    return Path(p).read_text().strip()


DOCKER_FLAGS = Resources(
    memory=64 << 20,
    memory_swap=128 << 20,
    cpu_shares=512,
    nano_cpus=500_000_000,
    cpuset_cpus="0",
    pids_limit=50,
)


# ----------------------------------------------------------------------------------------------------
# parsing (docker CLI)
# ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("100", 100),
        ("64m", 64 << 20),
        ("64M", 64 << 20),
        ("1g", 1 << 30),
        ("512k", 512 << 10),
        ("512kb", 512 << 10),
        ("512KiB", 512 << 10),
        ("1.5g", 3 << 29),
        ("2 MB", 2 << 20),
        ("1t", 1 << 40),
        ("0.5k", 512),
        ("10b", 10),
    ],
)
def test_parse_bytes_like_go_units(text: str, value: int) -> None:
    assert parse_bytes(text) == value


@pytest.mark.parametrize("text", ["", "m", "-1", "64x", "1e3", " 64m", "64mm", "1.2.3"])
def test_parse_bytes_errors(text: str) -> None:
    with pytest.raises(InvalidInput) as e:
        parse_bytes(text)
    if text == "1.2.3":
        assert str(e.value) == 'strconv.ParseFloat: parsing "1.2.3": invalid syntax'
    else:
        assert str(e.value) == f"invalid size: '{text}'"


def test_parse_swap_allows_minus_one() -> None:
    assert parse_swap("-1") == -1
    assert parse_swap("1g") == 1 << 30
    with pytest.raises(InvalidInput, match="invalid size: '-2'"):
        parse_swap("-2")


@pytest.mark.parametrize(
    ("text", "nano"),
    [("0.5", 500_000_000), ("1", 1_000_000_000), ("1.25", 1_250_000_000), ("3/2", 1_500_000_000), ("0", 0)],
)
def test_parse_cpus(text: str, nano: int) -> None:
    assert parse_cpus(text) == nano


def test_parse_cpus_errors() -> None:
    with pytest.raises(InvalidInput, match="^failed to parse abc as a rational number$"):
        parse_cpus("abc")
    with pytest.raises(InvalidInput, match="^value is too precise$"):
        parse_cpus("0.0000000005")
    with pytest.raises(InvalidInput, match="rational"):
        parse_cpus("")


# ----------------------------------------------------------------------------------------------------
# verify (dockerd's verifyPlatformContainerResources)
# ----------------------------------------------------------------------------------------------------
INFO = SysInfo(cpus="0-1", mems="0", ncpu=2)


@pytest.mark.parametrize(
    ("res", "message"),
    [
        (Resources(memory=1 << 20), "Minimum memory limit allowed is 6MB"),
        (
            Resources(memory=64 << 20, memory_swap=32 << 20),
            "Minimum memoryswap limit should be larger than memory limit, see usage",
        ),
        (
            Resources(memory_swap=64 << 20),
            "You should always set the Memory limit when using Memoryswap limit, see usage",
        ),
        (Resources(memory_reservation=1 << 20), "Minimum memory reservation allowed is 6MB"),
        (
            Resources(memory=64 << 20, memory_reservation=128 << 20),
            "Minimum memory limit can not be less than memory reservation limit, see usage",
        ),
        (
            Resources(nano_cpus=10**9, cpu_period=100000),
            "Conflicting options: Nano CPUs and CPU Period cannot both be set",
        ),
        (
            Resources(nano_cpus=10**9, cpu_quota=50000),
            "Conflicting options: Nano CPUs and CPU Quota cannot both be set",
        ),
        (
            Resources(nano_cpus=3 * 10**9),
            "Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available",
        ),
        (
            Resources(cpu_period=500),
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
        ),
        (Resources(cpu_quota=999), "CPU cfs quota can not be less than 1ms (i.e. 1000)"),
        (Resources(cpuset_cpus="99"), "Requested CPUs are not available - requested 99, available: 0-1"),
        (Resources(cpuset_cpus="0-2"), "Requested CPUs are not available - requested 0-2, available: 0-1"),
        (Resources(cpuset_cpus="a"), "Invalid value a for cpuset cpus: invalid format: a"),
        (Resources(cpuset_mems="1"), "Requested memory nodes are not available - requested 1, available: 0"),
        (Resources(blkio_weight=5), "Range of blkio weight is from 10 to 1000"),
    ],
)
def test_verify_errors_are_dockers(res: Resources, message: str) -> None:
    with pytest.raises(InvalidInput) as e:
        verify(res, INFO)
    assert str(e.value) == message


def test_verify_accepts_the_docker_layout_example() -> None:
    assert verify(DOCKER_FLAGS, INFO) == (DOCKER_FLAGS, [])


def test_verify_drops_what_the_kernel_lacks_with_dockers_warnings() -> None:
    res = Resources(memory=64 << 20, memory_swap=128 << 20, cpu_shares=512, pids_limit=50, blkio_weight=300)
    info = SysInfo(swap_limit=False, cpu_shares=False, pids_limit=False, blkio_weight=False, ncpu=2)
    got, warnings = verify(res, info)
    assert got == Resources(memory=64 << 20, memory_swap=-1)
    assert warnings == [
        "Your kernel does not support swap limit capabilities or the cgroup is not mounted. "
        "Memory limited without swap.",
        "Your kernel does not support CPU shares or the cgroup is not mounted. Shares discarded.",
        "Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.",
        "Your kernel does not support PIDs limit capabilities or the cgroup is not mounted. "
        "PIDs limit discarded.",
    ]
    with pytest.raises(InvalidInput, match="^NanoCPUs can not be set"):
        verify(Resources(nano_cpus=10**9), SysInfo(cpu_cfs=False, ncpu=2))


def test_cpu_quota_period_from_nano_cpus() -> None:
    assert Resources(nano_cpus=500_000_000).cpu_quota_period() == (50000, 100000)
    assert Resources(cpu_period=50000, cpu_quota=25000).cpu_quota_period() == (25000, 50000)


def test_resources_from_a_hostconfig_like_object() -> None:
    class HC:
        memory = 1 << 30
        pids_limit = 7
        privileged = False  # not a resource: ignored

    assert Resources.from_object(HC()) == Resources(memory=1 << 30, pids_limit=7)


# ----------------------------------------------------------------------------------------------------
# detect
# ----------------------------------------------------------------------------------------------------
def _mountinfo(tmp_path: Path, lines: list[str]) -> str:
    p = tmp_path / "mountinfo"
    p.write_text("".join(line + "\n" for line in lines))
    return str(p)


def test_detect_v2_only_host(tmp_path: Path) -> None:
    mi = _mountinfo(
        tmp_path,
        [
            "22 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw",
            "26 22 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate",
        ],
    )
    assert base.detect("/sys/fs/cgroup", mountinfo=mi) == "v2"


def test_detect_hybrid_host_like_this_vm(tmp_path: Path) -> None:
    mi = _mountinfo(
        tmp_path,
        [
            "25 22 0:22 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755",
            "26 25 0:23 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw",
            "27 25 0:24 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory",
        ],
    )
    assert base.detect("/sys/fs/cgroup", mountinfo=mi) == "v1"
    assert base.detect("/sys/fs/cgroup/unified", mountinfo=mi) == "v2"


def test_detect_last_mount_wins_and_escapes(tmp_path: Path) -> None:
    mi = _mountinfo(
        tmp_path,
        [
            "25 22 0:22 / /sys/fs/cgroup rw - tmpfs tmpfs rw",
            "30 25 0:30 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw",
            "31 22 0:31 / /mnt/my\\040cg rw - cgroup2 cgroup2 rw",
        ],
    )
    assert base.detect("/sys/fs/cgroup", mountinfo=mi) == "v2"
    assert base.mount_fstype("/mnt/my cg", mi) == "cgroup2"


def test_detect_fake_trees_by_their_files(v1: FakeKernel, tmp_path: Path) -> None:
    assert cgroups.detect(str(v1.root)) == "v1"
    FakeKernel(tmp_path / "two", "v2")
    assert cgroups.detect(str(tmp_path / "two")) == "v2"


def test_open_cgroup_picks_the_driver(v1: FakeKernel, tmp_path: Path) -> None:
    FakeKernel(tmp_path / "two", "v2")
    assert isinstance(cgroups.open_cgroup("x", root=str(v1.root)), V1Cgroup)
    cg = cgroups.open_cgroup("x", root=str(tmp_path / "two"))
    assert isinstance(cg, V2Cgroup) and cg.path() == str(tmp_path / "two" / "minidocker" / "x")
    assert cgroups.open_cgroup("x", parent="", root=str(v1.root)).name == "x"
    for bad in ("", "a/b", ".."):
        with pytest.raises(ValueError):
            cgroups.open_cgroup(bad, root=str(v1.root))


# ----------------------------------------------------------------------------------------------------
# v1 driver
# ----------------------------------------------------------------------------------------------------
def v1cg(k: FakeKernel, cid: str = "abc", parent: str = "minidocker") -> cgroups.Cgroup:
    return cgroups.open_cgroup(cid, parent=parent, root=str(k.root))


def test_v1_docker_layout_table(v1: FakeKernel) -> None:
    cg = v1cg(v1)
    with trace.capture() as events:
        cg.create()
        cg.apply(DOCKER_FLAGS)
    r = v1.root
    d = "minidocker/abc"
    assert rd(r / "memory" / d / "memory.limit_in_bytes") == "67108864"
    assert rd(r / "memory" / d / "memory.memsw.limit_in_bytes") == "134217728"
    assert rd(r / "memory" / d / "memory.soft_limit_in_bytes") == MEMORY_UNLIMITED  # unset
    assert rd(r / "cpu" / d / "cpu.shares") == "512"
    assert rd(r / "cpu" / d / "cpu.cfs_period_us") == "100000"
    assert rd(r / "cpu" / d / "cpu.cfs_quota_us") == "50000"
    assert rd(r / "cpuset" / d / "cpuset.cpus") == "0"
    assert rd(r / "cpuset" / d / "cpuset.mems") == "0"  # inherited
    assert rd(r / "pids" / d / "pids.max") == "50"
    assert rd(r / "devices" / d / "devices.list").splitlines() == list(DEFAULT_ALLOWED_DEVICES)
    assert f"write {r}/memory/{d}/memory.limit_in_bytes = 67108864" in events
    assert f"write {r}/devices/{d}/devices.deny = a" in events
    assert f"mkdir {r}/memory/minidocker" in events and f"mkdir {r}/memory/{d}" in events
    # systemd's named hierarchy is not ours
    assert not (r / "systemd" / "minidocker").exists()
    # memory first, then swap: memsw may never be below the limit
    order = [e for e in events if "limit_in_bytes" in e]
    assert order[0].endswith("memory.limit_in_bytes = 67108864")


def test_v1_cpuset_is_copied_from_the_parent_at_every_level(v1: FakeKernel) -> None:
    cg = v1cg(v1, parent="minidocker/nested")
    cg.create()
    for rel in ("minidocker", "minidocker/nested", "minidocker/nested/abc"):
        assert rd(v1.root / "cpuset" / rel / "cpuset.cpus") == "0-1"
        assert rd(v1.root / "cpuset" / rel / "cpuset.mems") == "0"
    cg.add(42)  # would be ENOSPC with empty cpus/mems
    assert cg.procs() == [42]


def test_v1_add_without_cpuset_copy_is_the_kernel_gotcha(v1: FakeKernel) -> None:
    base.mkdir(str(v1.root / "cpuset" / "bare"))
    with pytest.raises(MinidockerError, match="No space left on device"):
        base.write(str(v1.root / "cpuset" / "bare" / "cgroup.procs"), "42")


def test_v1_add_puts_the_pid_in_every_hierarchy(v1: FakeKernel) -> None:
    cg = v1cg(v1)
    cg.create()
    cg.add(4242)
    for h in ("cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids"):
        assert rd(v1.root / h / "minidocker" / "abc" / "cgroup.procs") == "4242"
    assert cg.procs() == [4242]


def test_v1_cpuset_not_available(v1: FakeKernel) -> None:
    cg = v1cg(v1)
    cg.create()
    for cpus in ("99", "0-2"):  # ERANGE, EINVAL
        with pytest.raises(InvalidInput) as e:
            cg.apply(Resources(cpuset_cpus=cpus))
        assert str(e.value) == f"Requested CPUs are not available - requested {cpus}, available: 0-1"


def test_v1_cpu_shares_read_back(v1: FakeKernel) -> None:
    cg = v1cg(v1)
    cg.create()
    with pytest.raises(InvalidInput, match="^the maximum allowed cpu-shares is 262144$"):
        cg.apply(Resources(cpu_shares=300000))
    with pytest.raises(InvalidInput, match="^the minimum allowed cpu-shares is 2$"):
        cg.apply(Resources(cpu_shares=1))


def test_v1_cpu_period_and_quota_as_given(v1: FakeKernel) -> None:
    cg = v1cg(v1)
    cg.create()
    cg.apply(Resources(cpu_period=50000, cpu_quota=20000))
    cpu = v1.root / "cpu" / "minidocker" / "abc"
    assert (rd(cpu / "cpu.cfs_period_us"), rd(cpu / "cpu.cfs_quota_us")) == ("50000", "20000")


def test_v1_memory_update_raises_swap_first(v1: FakeKernel) -> None:
    """``docker update -m 256m --memory-swap 512m`` on a 64m/128m container: memsw must go first."""
    cg = v1cg(v1)
    cg.create()
    cg.apply(DOCKER_FLAGS)
    with trace.capture() as events:
        cg.apply(Resources(memory=256 << 20, memory_swap=512 << 20), devices=False)
    writes = [e.rsplit("/", 1)[1] for e in events]
    assert writes == ["memory.memsw.limit_in_bytes = 536870912", "memory.limit_in_bytes = 268435456"]
    # and down again: memory first
    with trace.capture() as events:
        cg.apply(Resources(memory=32 << 20, memory_swap=64 << 20), devices=False)
    assert [e.rsplit("/", 1)[1] for e in events] == [
        "memory.limit_in_bytes = 33554432",
        "memory.memsw.limit_in_bytes = 67108864",
    ]


def test_v1_without_swap_accounting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    k = FakeKernel(tmp_path / "cg", "v1", swapaccount=False)
    k.install(monkeypatch)
    cg = v1cg(k)
    cg.create()
    cg.apply(Resources(memory=64 << 20, memory_swap=-1))  # what verify leaves after its warning
    assert rd(k.root / "memory" / "minidocker" / "abc" / "memory.limit_in_bytes") == "67108864"
    with pytest.raises(MinidockerError, match="does not support swap limit capabilities"):
        cg.apply(Resources(memory=64 << 20, memory_swap=128 << 20))
    info = cgroups.sysinfo(str(k.root))
    assert not info.swap_limit
    assert verify(Resources(memory=64 << 20, memory_swap=128 << 20), info)[0].memory_swap == -1


def test_v1_blkio_weight_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for cfq, name in ((True, "blkio.weight"), (False, "blkio.bfq.weight")):
        k = FakeKernel(tmp_path / name, "v1", cfq=cfq)
        k.install(monkeypatch)
        cg = v1cg(k)
        cg.create()
        cg.apply(Resources(blkio_weight=300))
        assert rd(k.root / "blkio" / "minidocker" / "abc" / name) == "300"
        assert cgroups.sysinfo(str(k.root)).blkio_weight


def test_v1_pids_limit_negative_is_max(v1: FakeKernel) -> None:
    cg = v1cg(v1)
    cg.create()
    cg.apply(Resources(pids_limit=10))
    cg.apply(Resources(pids_limit=-1), devices=False)
    assert rd(v1.root / "pids" / "minidocker" / "abc" / "pids.max") == "max"


def test_v1_oom_killed(v1: FakeKernel) -> None:
    cg = v1cg(v1)
    cg.create()
    control = v1.root / "memory" / "minidocker" / "abc" / "memory.oom_control"
    assert not cg.oom_killed()
    control.write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    assert cg.oom_killed()
    control.write_text("oom_kill_disable 0\nunder_oom 1\n")  # kernel < 4.13: no counter
    assert cg.oom_killed()


def test_v1_freeze_thaw_and_kill_all(v1: FakeKernel) -> None:
    cg = v1cg(v1)
    cg.create()
    cg.add(11)
    cg.add(12)
    state = v1.root / "freezer" / "minidocker" / "abc" / "freezer.state"
    cg.freeze()
    assert rd(state) == "FROZEN"
    cg.thaw()
    assert rd(state) == "THAWED"
    with trace.capture() as events:
        cg.kill_all(signal.SIGTERM)
    assert v1.killed == [(11, signal.SIGTERM), (12, signal.SIGTERM)]
    assert "kill(11, SIGTERM)" in events
    assert events[0].endswith("freezer.state = FROZEN") and events[-1].endswith("freezer.state = THAWED")
    cg.kill_all()
    assert cg.procs() == []


def test_v1_remove_retries_while_tasks_exit_then_cleanup_parent(v1: FakeKernel) -> None:
    a, b = v1cg(v1, "a"), v1cg(v1, "b")
    a.create()
    b.create()
    v1.rmdir_busy[str(v1.root / "memory" / "minidocker" / "a")] = 3
    a.remove(timeout=2)
    assert not a.exists() and b.exists()
    assert cgroups.cleanup_parent(root=str(v1.root)) == []  # b still uses minidocker/
    b.remove()
    removed = cgroups.cleanup_parent(root=str(v1.root))
    assert len(removed) == 8
    assert not list(v1.root.rglob("minidocker"))


def test_v1_remove_fails_with_the_pids_left(v1: FakeKernel) -> None:
    cg = v1cg(v1)
    cg.create()
    cg.add(77)
    with pytest.raises(MinidockerError, match="pids still inside: 77"):
        cg.remove(timeout=0.05)


def test_v1_comounted_cpu_cpuacct_is_one_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    k = FakeKernel(tmp_path / "cg", "v1", comount_cpu=True)
    k.install(monkeypatch)
    cg = v1cg(k)
    assert len(cg.paths()) == 7  # cpuset devices memory cpu pids blkio freezer
    cg.create()
    cg.apply(DOCKER_FLAGS)
    assert rd(k.root / "cpu,cpuacct" / "minidocker" / "abc" / "cpu.shares") == "512"
    cg.add(5)
    cg.kill_all()
    cg.remove()
    assert len(cgroups.cleanup_parent(root=str(k.root))) == 7


def test_v1_sysinfo(v1: FakeKernel) -> None:
    info = cgroups.sysinfo(str(v1.root))
    assert info.memory_limit and info.swap_limit and info.cpu_cfs and info.cpuset and info.pids_limit
    assert (info.cpus, info.mems) == ("0-1", "0")


# ----------------------------------------------------------------------------------------------------
# v2 driver
# ----------------------------------------------------------------------------------------------------
def test_v2_conversions() -> None:
    assert [cpu_weight(s) for s in (2, 512, 1024, 262144)] == [1, 20, 39, 10000]
    assert [io_weight(w) for w in (10, 500, 1000)] == [1, 4950, 10000]
    assert swap_max(128 << 20, 64 << 20) == str(64 << 20)
    assert swap_max(64 << 20, 64 << 20) == "0"
    assert swap_max(-1, 64 << 20) == "max"
    assert swap_max(0, 64 << 20) == ""
    with pytest.raises(InvalidInput):
        swap_max(32 << 20, 64 << 20)


def test_v2_create_enables_controllers_from_the_root_down(v2: FakeKernel) -> None:
    cg = cgroups.open_cgroup("abc", root=str(v2.root))
    with trace.capture() as events:
        cg.create()
    assert rd(v2.root / "cgroup.subtree_control").split() == ["cpuset", "cpu", "io", "memory", "pids"]
    assert (
        rd(v2.root / "minidocker" / "cgroup.subtree_control").split()
        == rd(v2.root / "cgroup.subtree_control").split()
    )
    assert rd(v2.root / "minidocker" / "abc" / "cgroup.subtree_control") == ""  # a leaf: tasks live here
    assert f"write {v2.root}/cgroup.subtree_control = +memory" in events
    with trace.capture() as events:
        cg.create()  # idempotent, and no needless writes
    assert events == []


def test_v2_docker_layout_list(v2: FakeKernel) -> None:
    cg = cgroups.open_cgroup("abc", root=str(v2.root))
    cg.create()
    with trace.capture() as events:
        cg.apply(DOCKER_FLAGS)
    d = v2.root / "minidocker" / "abc"
    assert rd(d / "memory.max") == "67108864"
    assert rd(d / "memory.swap.max") == "67108864"  # swap alone: 128m - 64m
    assert rd(d / "memory.low") == "0"  # no reservation asked
    assert rd(d / "cpu.weight") == "20"
    assert rd(d / "cpu.max") == "50000 100000"
    assert rd(d / "cpuset.cpus") == "0"
    assert rd(d / "pids.max") == "50"
    assert not (d / "devices.list").exists()  # v2: eBPF, left out
    assert f"write {d}/memory.swap.max = 67108864" in events
    assert events.index(f"write {d}/memory.swap.max = 67108864") < events.index(
        f"write {d}/memory.max = 67108864"
    )


@pytest.mark.parametrize(
    ("res", "file", "value"),
    [
        (Resources(cpu_quota=20000), "cpu.max", "20000 100000"),
        (Resources(cpu_period=50000), "cpu.max", "max 50000"),
        (Resources(cpu_quota=25000, cpu_period=50000), "cpu.max", "25000 50000"),
        (Resources(memory=64 << 20, memory_swap=64 << 20), "memory.swap.max", "0"),
        (Resources(memory=64 << 20, memory_swap=-1), "memory.swap.max", "max"),
        (Resources(memory=64 << 20, memory_reservation=32 << 20), "memory.low", "33554432"),
        (Resources(blkio_weight=500), "io.weight", "4950"),
        (Resources(cpu_shares=1024), "cpu.weight", "39"),
        (Resources(pids_limit=-1), "pids.max", "max"),
    ],
)
def test_v2_values(v2: FakeKernel, res: Resources, file: str, value: str) -> None:
    cg = cgroups.open_cgroup("abc", root=str(v2.root))
    cg.create()
    cg.apply(res)
    assert rd(v2.root / "minidocker" / "abc" / file) == value


def test_v2_cpuset_not_available(v2: FakeKernel) -> None:
    cg = cgroups.open_cgroup("abc", root=str(v2.root))
    cg.create()
    with pytest.raises(InvalidInput) as e:
        cg.apply(Resources(cpuset_cpus="99"))
    assert str(e.value) == "Requested CPUs are not available - requested 99, available: 0-1"


def test_v2_missing_controller(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what cgroup.controllers offers is enabled; a limit for a missing one is an error."""
    k = FakeKernel(tmp_path / "cg", "v2", v2_controllers="memory pids")
    k.install(monkeypatch)
    cg = cgroups.open_cgroup("abc", root=str(k.root))
    cg.create()
    assert rd(k.root / "cgroup.subtree_control").split() == ["memory", "pids"]
    cg.apply(Resources(memory=64 << 20, pids_limit=5))
    with pytest.raises(NotFound, match="cpu.weight"):
        cg.apply(Resources(cpu_shares=512))
    info = cgroups.sysinfo(str(k.root))
    assert info.memory_limit and info.pids_limit and not info.cpu_shares and not info.blkio_weight


def test_v2_no_swap_controller_is_fine_for_max_and_zero(v2: FakeKernel) -> None:
    cg = cgroups.open_cgroup("abc", root=str(v2.root))
    cg.create()
    (v2.root / "minidocker" / "abc" / "memory.swap.max").unlink()  # swapaccount=0
    cg.apply(Resources(memory=64 << 20, memory_swap=-1))
    cg.apply(Resources(memory=64 << 20, memory_swap=64 << 20))
    with pytest.raises(NotFound):
        cg.apply(Resources(memory=64 << 20, memory_swap=128 << 20))


def test_v2_no_internal_processes(v2: FakeKernel) -> None:
    cg = cgroups.open_cgroup("abc", root=str(v2.root))
    cg.create()
    parent = V2Cgroup("minidocker", str(v2.root))
    with pytest.raises(MinidockerError, match="no internal processes"):
        parent.add(99)
    # and the other way round: a parent holding a task cannot enable controllers below it
    (v2.root / "other").mkdir()
    FakeKernel._files(
        v2.root / "other",
        {"cgroup.procs": "5", "cgroup.controllers": "memory", "cgroup.subtree_control": ""},
    )
    with pytest.raises(MinidockerError, match="no internal processes"):
        cgroups.open_cgroup("x", parent="other", root=str(v2.root)).create()


def test_v2_tasks_oom_freeze_kill_remove(v2: FakeKernel) -> None:
    cg = cgroups.open_cgroup("abc", root=str(v2.root))
    cg.create()
    cg.add(21)
    cg.add(22)
    assert cg.procs() == [21, 22]
    assert not cg.oom_killed()
    (v2.root / "minidocker" / "abc" / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    assert cg.oom_killed()
    cg.freeze()
    assert "frozen 1" in rd(v2.root / "minidocker" / "abc" / "cgroup.events")
    cg.thaw()
    with trace.capture() as events:
        cg.kill_all()
    assert events == [f"write {v2.root}/minidocker/abc/cgroup.kill = 1"]
    assert v2.killed == [(21, signal.SIGKILL), (22, signal.SIGKILL)]
    cg.remove()
    assert cgroups.cleanup_parent(root=str(v2.root)) == [str(v2.root / "minidocker")]
    assert sorted(p.name for p in v2.root.iterdir()) == sorted(
        [
            "cgroup.controllers",
            "cgroup.subtree_control",
            "cgroup.procs",
            "cpuset.cpus.effective",
            "cpuset.mems.effective",
        ]
    )


def test_v2_kill_all_other_signals_go_one_by_one(v2: FakeKernel) -> None:
    cg = cgroups.open_cgroup("abc", root=str(v2.root))
    cg.create()
    cg.add(31)
    cg.kill_all(signal.SIGTERM)
    assert v2.killed == [(31, signal.SIGTERM)]


def test_write_errors_name_path_and_value(v1: FakeKernel) -> None:
    cg = v1cg(v1)
    cg.create()
    f = v1.root / "memory" / "minidocker" / "abc" / "memory.memsw.limit_in_bytes"
    with pytest.raises(InvalidInput) as e:  # EINVAL is the user's value: InvalidInput
        base.write(str(f), "1")
    assert str(e.value) == f"write {f} = 1: Invalid argument"
    assert isinstance(e.value, base.CgroupWriteError) and e.value.errno == errno.EINVAL
    with pytest.raises(NotFound):
        base.write(str(f.parent / "memory.nope"), "1")


def test_mkdir_path_retries_a_parent_that_died_under_it() -> None:
    """A concurrent ``cleanup_parent`` can remove the shared parent while ``create`` copies its
    ``cpuset.cpus``: reads and writes of a dying cgroup answer ENODEV; ``create`` tries again."""
    calls: list[int] = []

    def flaky() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise OSError(errno.ENODEV, "No such device")
        if len(calls) == 2:
            raise base.CgroupWriteError("write x: No such device", path="x", value="0", err=errno.ENODEV)

    base.mkdir_path(flaky)
    assert len(calls) == 3

    def refused() -> None:
        raise OSError(errno.EACCES, "Permission denied")

    with pytest.raises(PermissionError):
        base.mkdir_path(refused)
