"""cgroup v1: one directory per controller hierarchy, as runc's ``libcontainer/cgroups/fs`` does it.

A container ``<id>`` is ``/sys/fs/cgroup/<controller>/minidocker/<id>/`` in each hierarchy we use
(cpu, cpuacct, cpuset, memory, pids, blkio, devices, freezer); the ``name=systemd`` hierarchy is
systemd's bookkeeping and is left alone. Co-mounted hierarchies (``cpu,cpuacct`` with ``cpu`` and
``cpuacct`` symlinks, as on many distros) are one directory, created and removed once.

>>> cg = V1Cgroup("minidocker/abc", "/sys/fs/cgroup")
>>> cg.path("memory")
'/sys/fs/cgroup/memory/minidocker/abc'

Kernel gotchas handled here:

* cpuset: a new cpuset cgroup starts with EMPTY ``cpuset.cpus`` and ``cpuset.mems``, and adding a
  task to it fails with ENOSPC. runc copies the parent's values into every level it creates
  (``cgroup.clone_children=1`` on the parent would make the kernel do that copy at mkdir, but it is a
  per-parent switch someone else may own, so we copy explicitly as runc does).
* memory: ``memory.memsw.limit_in_bytes`` (memory+swap) must stay >= ``memory.limit_in_bytes``, or
  the write fails with EINVAL, so the order of the two writes depends on the current value. The
  memsw files exist only with swap accounting (``CONFIG_MEMCG_SWAP`` and ``swapaccount=1``).
* cpu: the kernel clamps ``cpu.shares`` to [2, 262144] silently; runc reads it back and errors.
* cfs: lowering ``cpu.cfs_period_us`` may fail with EINVAL while the old quota/new period ratio
  exceeds the parent's; runc then writes the quota and the period again.
* blkio: ``blkio.weight`` belongs to the CFQ scheduler, gone since Linux 5.0; with BFQ the file is
  ``blkio.bfq.weight`` (runc ≥1.0 picks whichever exists).
"""

from __future__ import annotations

import errno
import os
import signal
import time

from minidocker.cgroups import base
from minidocker.cgroups.base import Cgroup, CgroupWriteError, read, read_keyed, read_pids, write
from minidocker.cgroups.devices import DEFAULT_ALLOWED_DEVICES  # shared with v2's eBPF filter
from minidocker.cgroups.resources import Resources
from minidocker.errors import InvalidInput, MinidockerError, NotFound

# runc's order of subsystems (cpuset first: its files must be filled before anything joins)
CONTROLLERS = ("cpuset", "devices", "memory", "cpu", "cpuacct", "pids", "blkio", "freezer")

MEMORY_UNLIMITED = "9223372036854771712"  # what v1 memory files read when unset (LONG_MAX rounded to pages)


class V1Cgroup(Cgroup):
    """A container cgroup on v1 hierarchies mounted under ``root`` (one subdirectory per controller)."""

    version = "v1"

    def hierarchies(self) -> dict[str, str]:
        """controller → hierarchy mount dir, for the controllers mounted under ``root``.

        Co-mounted controllers map to the same real directory; ``paths()`` deduplicates them.
        """
        return {
            c: os.path.join(self.root, c) for c in CONTROLLERS if os.path.isdir(os.path.join(self.root, c))
        }

    def path(self, controller: str | None = None) -> str:
        return os.path.join(self.root, controller or "memory", self.name)

    def paths(self) -> list[str]:
        seen: set[str] = set()
        out: list[str] = []
        real_root = os.path.realpath(self.root)
        for controller, hierarchy in self.hierarchies().items():
            # only the symlinks (``cpu`` -> ``cpu,cpuacct``) need resolving: one realpath of the
            # root instead of one per hierarchy (this runs ~6 times per container start and stop)
            real = (
                os.path.realpath(hierarchy)
                if os.path.islink(hierarchy)
                else os.path.join(real_root, os.path.basename(hierarchy))
            )
            if real not in seen:
                seen.add(real)
                out.append(self.path(controller))
        return out

    def has(self, controller: str) -> bool:
        return os.path.isdir(os.path.join(self.root, controller))

    # --- create -------------------------------------------------------------------------------------
    def create(self) -> None:
        parts = self.name.split("/")
        for top in self.paths():
            hierarchy = top[: -len(self.name) - 1]
            is_cpuset = os.path.exists(os.path.join(hierarchy, "cpuset.cpus"))

            def make(hierarchy: str = hierarchy, is_cpuset: bool = is_cpuset) -> None:
                current = hierarchy
                for part in parts:
                    parent, current = current, os.path.join(current, part)
                    base.mkdir(current)
                    if is_cpuset:
                        self._inherit_cpuset(parent, current)

            base.mkdir_path(make)

    @staticmethod
    def _inherit_cpuset(parent: str, child: str) -> None:
        """Fill an empty ``cpuset.cpus``/``cpuset.mems`` from the parent (else: ENOSPC on add)."""
        for f in ("cpuset.cpus", "cpuset.mems"):
            if read(os.path.join(child, f)) == "":
                write(os.path.join(child, f), read(os.path.join(parent, f)))

    # --- limits -------------------------------------------------------------------------------------
    def apply(self, resources: Resources, *, devices: bool = True) -> None:
        r = resources
        if r.cpuset_cpus or r.cpuset_mems:
            self._apply_cpuset(r)
        if devices and self.has("devices"):
            self.restrict_devices()
        self._apply_memory(r)
        self._apply_cpu(r)
        if r.pids_limit:
            write(
                os.path.join(self.path("pids"), "pids.max"), str(r.pids_limit) if r.pids_limit > 0 else "max"
            )
        if r.blkio_weight:
            d = self.path("blkio")
            name = "blkio.weight" if os.path.exists(os.path.join(d, "blkio.weight")) else "blkio.bfq.weight"
            write(os.path.join(d, name), str(r.blkio_weight))

    def _apply_cpuset(self, r: Resources) -> None:
        d = self.path("cpuset")
        parent = os.path.dirname(d)
        for f, value, noun in (("cpus", r.cpuset_cpus, "CPUs"), ("mems", r.cpuset_mems, "memory nodes")):
            if not value:
                continue
            try:
                write(os.path.join(d, f"cpuset.{f}"), value)
            except CgroupWriteError as e:
                # EINVAL: not in the parent's set; ERANGE: beyond the CPUs this kernel knows
                if e.errno not in (errno.EINVAL, errno.ERANGE):
                    raise
                avail = read(os.path.join(parent, f"cpuset.effective_{f}")) or read(
                    os.path.join(parent, f"cpuset.{f}")
                )
                raise InvalidInput(
                    f"Requested {noun} are not available - requested {value}, available: {avail}", subject=d
                ) from None

    def restrict_devices(self, allow: tuple[str, ...] = DEFAULT_ALLOWED_DEVICES) -> None:
        """Deny every device, then allow Docker's list: one rule per write (the kernel parses one)."""
        d = self.path("devices")
        write(os.path.join(d, "devices.deny"), "a")
        for rule in allow:
            write(os.path.join(d, "devices.allow"), rule)

    def _apply_memory(self, r: Resources) -> None:
        d = self.path("memory")
        limit, memsw = (
            os.path.join(d, "memory.limit_in_bytes"),
            os.path.join(d, "memory.memsw.limit_in_bytes"),
        )
        swap = r.memory_swap
        if swap != 0 and not os.path.exists(memsw):
            if swap == -1:
                swap = 0  # "unlimited swap" is what we already have without swap accounting
            else:
                raise MinidockerError(
                    "Your kernel does not support swap limit capabilities or the cgroup is not mounted. "
                    "(memory.memsw.limit_in_bytes is missing: boot with swapaccount=1)",
                    subject=memsw,
                )

        def set_memory() -> None:
            if r.memory:
                write(limit, str(r.memory))

        def set_swap() -> None:
            if swap:
                write(memsw, str(swap))

        # memsw >= limit at every moment: raise memsw first when it grows beyond the current limit
        current = int(read(limit) or MEMORY_UNLIMITED)
        if r.memory and swap and (swap == -1 or current < swap):
            set_swap()
            set_memory()
        else:
            set_memory()
            set_swap()
        if r.memory_reservation:
            write(os.path.join(d, "memory.soft_limit_in_bytes"), str(r.memory_reservation))

    def _apply_cpu(self, r: Resources) -> None:
        d = self.path("cpu")
        if r.cpu_shares:
            f = os.path.join(d, "cpu.shares")
            write(f, str(r.cpu_shares))
            got = int(read(f) or r.cpu_shares)
            if r.cpu_shares > got:
                raise InvalidInput(f"the maximum allowed cpu-shares is {got}", subject=f)
            if r.cpu_shares < got:
                raise InvalidInput(f"the minimum allowed cpu-shares is {got}", subject=f)
        quota, period = r.cpu_quota_period()
        period_file, quota_file = os.path.join(d, "cpu.cfs_period_us"), os.path.join(d, "cpu.cfs_quota_us")
        period_pending = False
        if period:
            try:
                write(period_file, str(period))
            except CgroupWriteError as e:
                if e.errno != errno.EINVAL or not quota:
                    raise
                period_pending = True  # retried after the quota, see the module docstring
        if quota:
            write(quota_file, str(quota))
            if period_pending:
                write(period_file, str(period))

    # --- tasks --------------------------------------------------------------------------------------
    def add(self, pid: int) -> None:
        for d in self.paths():
            try:
                write(os.path.join(d, "cgroup.procs"), str(pid))
            except CgroupWriteError as e:
                if e.errno == errno.ENOSPC:
                    raise MinidockerError(
                        f"{e} (an empty cpuset.cpus/cpuset.mems cannot hold tasks)", subject=d
                    ) from None
                raise

    def procs(self) -> list[int]:
        pids: set[int] = set()
        for d in self.paths():
            pids.update(read_pids(os.path.join(d, "cgroup.procs")))
        return sorted(pids)

    def oom_killed(self) -> bool:
        """``oom_kill`` of memory.oom_control (Linux ≥4.13), else ``under_oom`` (OOM in progress).

        ``memory.failcnt`` is NOT a sign of an OOM kill: it counts every time usage hit the limit,
        which mostly ends in reclaim (page cache dropped), not in a kill.
        """
        control = read_keyed(os.path.join(self.path("memory"), "memory.oom_control"))
        if "oom_kill" in control:
            return control["oom_kill"] > 0
        return control.get("under_oom", 0) == 1

    def freeze(self) -> None:
        self._freezer("FROZEN")

    def thaw(self) -> None:
        self._freezer("THAWED")

    def _freezer(self, state: str) -> None:
        if not self.has("freezer"):
            raise NotFound("the freezer cgroup is not mounted", subject=self.root)
        f = os.path.join(self.path("freezer"), "freezer.state")
        write(f, state)
        # FROZEN goes through FREEZING while tasks are stopped one by one; wait for the end state
        if not base.wait_for(f, state):
            raise MinidockerError(f"{f} did not reach {state} (still {read(f)})", subject=f)

    def kill_all(self, sig: int = signal.SIGKILL) -> None:
        self._signal_each(sig)

    def remove(self, *, timeout: float = 5.0) -> None:
        first: MinidockerError | None = None
        deadline = time.monotonic() + timeout  # one budget for all hierarchies: tasks exit once
        for d in self.paths():
            try:
                base.rmdir(d, timeout=max(0.0, deadline - time.monotonic()))
            except MinidockerError as e:
                first = first or e
        if first is not None:
            raise first
