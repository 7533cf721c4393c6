"""cgroup v2 (unified): one tree, one directory per container, as runc's ``libcontainer/cgroups/fs2``.

A container ``<id>`` is ``/sys/fs/cgroup/minidocker/<id>/``. Every modern distro is v2-only.

>>> V2Cgroup("minidocker/abc", "/sys/fs/cgroup").path()
'/sys/fs/cgroup/minidocker/abc'
>>> cpu_weight(512), cpu_weight(1024), io_weight(500)
(20, 39, 4950)

What differs from v1 (the kernel rules behind the code):

* Controllers are opt-in per level: a controller's files appear in a child only when the PARENT
  lists it in ``cgroup.subtree_control``, and a parent may enable only what its own
  ``cgroup.controllers`` shows. So ``create`` writes ``+memory +pids ...`` into every ancestor from
  the root down.
* "No internal processes": a non-root cgroup that enables controllers for its children may not hold
  processes itself (EBUSY on ``subtree_control`` or on ``cgroup.procs``). Our ``minidocker/`` parent
  therefore never holds a task; containers live in the leaves. The root cgroup is exempt.
* New names and units: ``memory.max``, ``memory.swap.max`` (swap ONLY, Docker's memory-swap minus
  memory), ``memory.low``, ``cpu.weight`` (1..10000, converted from shares), ``cpu.max``
  (``"<quota> <period>"`` or ``"max <period>"``), ``io.weight``, ``pids.max``.
* cpuset: an empty ``cpuset.cpus`` means "inherit the parent's effective set": no copy needed.
* ``cgroup.kill`` (Linux ≥5.14) SIGKILLs the whole subtree atomically; ``cgroup.freeze`` freezes it.
* Devices: v2 has no devices.allow/deny files. Like runc, ``apply`` compiles the same rule list v1
  writes (``devices.DEFAULT_ALLOWED_DEVICES``) into an eBPF program (``BPF_PROG_TYPE_CGROUP_DEVICE``,
  see ``devices_bpf``) and attaches it to the container's directory with ``BPF_F_ALLOW_MULTI``. No
  fd is kept: the attachment belongs to the cgroup and goes away with its ``rmdir``. It needs no
  controller at all, so it works on any cgroup2 directory (also the empty ``unified`` tree of a
  hybrid host). Trace: ``bpf(BPF_PROG_LOAD, cgroup_device, 69 insns)`` then
  ``bpf(BPF_PROG_ATTACH, /sys/fs/cgroup/minidocker/<id>, BPF_CGROUP_DEVICE)``.
"""

from __future__ import annotations

import errno
import os
import signal

from minidocker import trace
from minidocker.cgroups import base, devices_bpf
from minidocker.cgroups.base import Cgroup, CgroupWriteError, read, read_keyed, read_pids, write
from minidocker.cgroups.devices import DEFAULT_ALLOWED_DEVICES
from minidocker.cgroups.resources import DEFAULT_CFS_PERIOD, Resources
from minidocker.errors import InvalidInput, MinidockerError
from minidocker.kernel import bpf

CONTROLLERS = ("cpuset", "cpu", "io", "memory", "pids")  # the ones Docker's resources need


def cpu_weight(shares: int) -> int:
    """runc's ``ConvertCPUSharesToCgroupV2Value``: shares [2, 262144] → weight [1, 10000]."""
    return 0 if shares == 0 else 1 + ((shares - 2) * 9999) // 262142


def io_weight(blkio_weight: int) -> int:
    """runc's ``ConvertBlkIOToIOWeightValue``: blkio weight [10, 1000] → io.weight [1, 10000]."""
    return 0 if blkio_weight == 0 else 1 + (blkio_weight - 10) * 9999 // 990


def swap_max(memory_swap: int, memory: int) -> str:
    """runc's ``ConvertMemorySwapToCgroupV2Value`` + fs2 ``setMemory``: the ``memory.swap.max`` text.

    "" means do not write. v2 limits swap alone, Docker's ``--memory-swap`` is memory+swap.

    >>> swap_max(128 << 20, 64 << 20), swap_max(-1, 64 << 20), swap_max(64 << 20, 64 << 20), swap_max(0, 1)
    ('67108864', 'max', '0', '')
    """
    if memory == -1 and memory_swap == 0:
        return "max"
    if memory_swap == -1:
        return "max"
    if memory_swap == 0:
        return ""
    if memory in (0, -1):
        raise InvalidInput("unable to set swap limit without memory limit")
    if memory_swap < memory:
        raise InvalidInput("memory+swap limit should be >= memory limit")
    return str(memory_swap - memory)


def _num(v: int) -> str:
    return "max" if v == -1 else str(v) if v else ""


class V2Cgroup(Cgroup):
    """A container cgroup in the unified hierarchy mounted at ``root``."""

    version = "v2"

    def path(self, controller: str | None = None) -> str:
        return os.path.join(self.root, self.name)

    def paths(self) -> list[str]:
        return [self.path()]

    def _file(self, name: str) -> str:
        return os.path.join(self.path(), name)

    # --- create -------------------------------------------------------------------------------------
    def create(self) -> None:
        def make() -> None:
            current = self.root
            for part in self.name.split("/"):
                enable_controllers(current)
                current = os.path.join(current, part)
                base.mkdir(current)

        base.mkdir_path(make)

    # --- limits -------------------------------------------------------------------------------------
    def apply(self, resources: Resources, *, devices: bool = True) -> None:
        """Write the limit files; ``devices``: attach the device filter (``restrict_devices``)."""
        r = resources
        parent = os.path.dirname(self.path())
        for f, value, noun in (("cpus", r.cpuset_cpus, "CPUs"), ("mems", r.cpuset_mems, "memory nodes")):
            if not value:
                continue
            try:
                write(self._file(f"cpuset.{f}"), value)
            except CgroupWriteError as e:
                # EINVAL: not in the parent's set; ERANGE: beyond the CPUs this kernel knows
                if e.errno not in (errno.EINVAL, errno.ERANGE):
                    raise
                avail = read(os.path.join(parent, f"cpuset.{f}.effective"))
                raise InvalidInput(
                    f"Requested {noun} are not available - requested {value}, available: {avail}",
                    subject=self.path(),
                ) from None
        if devices:
            self.restrict_devices()

        if r.memory or r.memory_swap or r.memory_reservation:
            swap = swap_max(r.memory_swap, r.memory)
            if swap:
                f = self._file("memory.swap.max")
                # no swap controller (swap accounting off): "max" and "0" are what we have anyway
                if os.path.exists(f) or swap not in ("max", "0"):
                    write(f, swap)
            if _num(r.memory):
                write(self._file("memory.max"), _num(r.memory))
            if _num(r.memory_reservation):
                write(self._file("memory.low"), _num(r.memory_reservation))

        if r.cpu_shares:
            write(self._file("cpu.weight"), str(cpu_weight(r.cpu_shares)))
        quota, period = r.cpu_quota_period()
        if quota or period:
            text = str(quota) if quota > 0 else "max"
            write(self._file("cpu.max"), f"{text} {period or DEFAULT_CFS_PERIOD}")

        if r.pids_limit:
            write(self._file("pids.max"), str(r.pids_limit) if r.pids_limit > 0 else "max")

        if r.blkio_weight:
            if os.path.exists(self._file("io.weight")):
                write(self._file("io.weight"), str(io_weight(r.blkio_weight)))
            else:  # only BFQ's file: it takes the blkio value as is
                write(self._file("io.bfq.weight"), str(r.blkio_weight))

    def restrict_devices(self, allow: tuple[str, ...] = DEFAULT_ALLOWED_DEVICES) -> None:
        """Deny every device except ``allow``: an eBPF program on the cgroup (v1's deny-all + allow list).

        Attaching again replaces the program. A directory that is not on a cgroup2 filesystem (the
        plain-directory fake cgroupfs of the unit tests) can hold no program: skipped with a trace
        event. A real v2 root always is one (``detect`` chose this driver from the mount table).
        """
        if os.path.isdir(self.path()) and not bpf.is_cgroup2(self.path()):
            trace.emit(f"device filter skipped: {self.path()} is not on a cgroup2 filesystem")
            return
        devices_bpf.attach(self.path(), allow)

    # --- tasks --------------------------------------------------------------------------------------
    def add(self, pid: int) -> None:
        try:
            write(self._file("cgroup.procs"), str(pid))
        except CgroupWriteError as e:
            if e.errno == errno.EBUSY:
                raise MinidockerError(
                    f"{e} (cgroup v2 'no internal processes' rule: {self.path()} has controllers "
                    "enabled for children, so it cannot hold processes)",
                    subject=self.path(),
                ) from None
            raise

    def procs(self) -> list[int]:
        return read_pids(self._file("cgroup.procs"))

    def oom_killed(self) -> bool:
        """``oom_kill`` in memory.events (hierarchical: counts kills in the whole subtree)."""
        return read_keyed(self._file("memory.events")).get("oom_kill", 0) > 0

    def freeze(self) -> None:
        self._freeze("1")

    def thaw(self) -> None:
        self._freeze("0")

    def _freeze(self, value: str) -> None:
        write(self._file("cgroup.freeze"), value)
        events = self._file("cgroup.events")
        if not base.wait_for(events, value, key="frozen"):
            raise MinidockerError(f"{self.path()} did not reach frozen {value}", subject=self.path())

    def kill_all(self, sig: int = signal.SIGKILL) -> None:
        """SIGKILL through ``cgroup.kill`` when the kernel has it (atomic, no fork race); else one by one."""
        kill_file = self._file("cgroup.kill")
        if sig == signal.SIGKILL and os.path.exists(kill_file):
            write(kill_file, "1")
        else:
            self._signal_each(sig)

    def remove(self, *, timeout: float = 5.0) -> None:
        """``rmdir``; the kernel detaches and frees the device program with the cgroup."""
        base.rmdir(self.path(), timeout=timeout)


def enable_controllers(cgroup_dir: str, wanted: tuple[str, ...] = CONTROLLERS) -> list[str]:
    """Enable ``wanted`` controllers for the children of ``cgroup_dir``; returns those now enabled.

    Only controllers in ``cgroup.controllers`` can be enabled; one ``+name`` per write, so a refusal
    names its controller. EBUSY is the "no internal processes" rule and is fatal; any other refusal
    (e.g. ``cpu`` with realtime tasks in the subtree) leaves that controller off.
    """
    available = read(os.path.join(cgroup_dir, "cgroup.controllers")).split()
    control = os.path.join(cgroup_dir, "cgroup.subtree_control")
    enabled = read(control).split()
    for c in wanted:
        if c not in available or c in enabled:
            continue
        try:
            write(control, f"+{c}")
        except CgroupWriteError as e:
            if e.errno == errno.EBUSY:
                raise MinidockerError(
                    f"{e} (cgroup v2 'no internal processes' rule: {cgroup_dir} holds processes, "
                    "so it cannot enable controllers for its children)",
                    subject=cgroup_dir,
                ) from None
            trace.emit(f"controller {c} left disabled in {cgroup_dir}: {e}")
            continue
        enabled.append(c)
    return [c for c in wanted if c in enabled]
