"""Chapter 2: cgroups — how ``docker run -m 64m --cpus 0.5 --pids-limit 50`` becomes kernel limits.

A cgroup is a directory in a special filesystem; its files are the knobs. Limiting a container is
``mkdir``, writing numbers into files, and writing the container's pid into ``cgroup.procs``. Two
layouts exist and minidocker drives both, choosing at run time (``detect``):

* **v1** (this chapter's VM): one hierarchy per controller, ``/sys/fs/cgroup/memory/minidocker/<id>``,
  ``/sys/fs/cgroup/cpu/minidocker/<id>``, ... (``V1Cgroup``);
* **v2** (every current distro): one tree, ``/sys/fs/cgroup/minidocker/<id>`` (``V2Cgroup``).

Docker puts containers under ``docker/``; we use ``minidocker/`` so both can run side by side::

    from minidocker import cgroups
    res, warnings = cgroups.verify(cgroups.Resources(memory=cgroups.parse_bytes("64m")), cgroups.sysinfo())
    cg = cgroups.open_cgroup(container_id)      # V1Cgroup or V2Cgroup
    cg.create(); cg.apply(res); cg.add(pid)
    ...                                         # the container runs, exits
    killed_by_oom = cg.oom_killed()
    cg.kill_all(); cg.remove(); cgroups.cleanup_parent()

Every write, mkdir and rmdir emits a trace event, e.g.
``write /sys/fs/cgroup/memory/minidocker/<id>/memory.limit_in_bytes = 67108864``.

What the files hold for each flag is in shared/docker-layout.md section 11 (v1 table, v2 list).

Devices: only Docker's default list of device nodes may be opened (``devices.DEFAULT_ALLOWED_DEVICES``;
mknod of any node is allowed, opening it is not). On v1 ``devices.deny``/``devices.allow`` are
written exactly like runc does; on v2, which has no such files, ``apply`` attaches an eBPF program
built from the same list to the container's cgroup (``devices_bpf``, again like runc).

Left out on purpose:

* ``name=systemd`` on v1 and the systemd cgroup driver (``system.slice/docker-<id>.scope``):
  we are the cgroupfs driver only.
* kernel memory, swappiness, OOM-kill-disable, realtime CPU, per-device blkio limits, hugetlb.
"""

from __future__ import annotations

import os

from minidocker.cgroups import base
from minidocker.cgroups.base import Cgroup, CgroupWriteError, Version, detect, read
from minidocker.cgroups.resources import (
    Resources,
    SysInfo,
    parse_bytes,
    parse_cpus,
    parse_swap,
    parse_uint_list,
    verify,
)

TYPE_CHECKING = False  # not imported from typing: see minidocker/__init__.py
if TYPE_CHECKING:
    from typing import Any

    from minidocker.cgroups.devices import DEFAULT_ALLOWED_DEVICES, DeviceRule
    from minidocker.cgroups.devices_bpf import DeviceFilterError
    from minidocker.cgroups.v1 import V1Cgroup
    from minidocker.cgroups.v2 import V2Cgroup


def __getattr__(name: str) -> Any:
    """The drivers are imported when first used: ``run``'s CLI needs neither (the monitor makes
    the cgroup), and a v1 host never loads the v2 one (kernel.bpf, the eBPF device filter)."""
    if name in ("DEFAULT_ALLOWED_DEVICES", "DeviceRule"):
        from minidocker.cgroups import devices

        return getattr(devices, name)
    if name == "V1Cgroup":
        from minidocker.cgroups.v1 import V1Cgroup

        return V1Cgroup
    if name == "V2Cgroup":
        from minidocker.cgroups.v2 import V2Cgroup

        return V2Cgroup
    if name == "DeviceFilterError":
        from minidocker.cgroups.devices_bpf import DeviceFilterError

        return DeviceFilterError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Cgroup",
    "CgroupWriteError",
    "DEFAULT_ALLOWED_DEVICES",
    "DeviceFilterError",
    "DeviceRule",
    "Resources",
    "SysInfo",
    "V1Cgroup",
    "V2Cgroup",
    "Version",
    "cleanup_parent",
    "detect",
    "open_cgroup",
    "parse_bytes",
    "parse_cpus",
    "parse_swap",
    "parse_uint_list",
    "sysinfo",
    "verify",
]

DEFAULT_ROOT = "/sys/fs/cgroup"
DEFAULT_PARENT = "minidocker"


def open_cgroup(container_id: str, *, parent: str = DEFAULT_PARENT, root: str = DEFAULT_ROOT) -> Cgroup:
    """The cgroup of one container, ``<parent>/<id>`` in the hierarchy found at ``root``.

    Nothing is created yet (call ``create``); opening is cheap and also used to find, kill and remove
    the cgroup of a container that is already running.

    >>> open_cgroup("abc").name
    'minidocker/abc'
    """
    if not container_id or "/" in container_id or container_id in (".", ".."):
        raise ValueError(f"bad container id for a cgroup name: {container_id!r}")
    name = f"{parent.strip('/')}/{container_id}" if parent.strip("/") else container_id
    if detect(root) == "v2":
        from minidocker.cgroups.v2 import V2Cgroup

        return V2Cgroup(name, root)
    from minidocker.cgroups.v1 import V1Cgroup

    return V1Cgroup(name, root)


def cleanup_parent(*, parent: str = DEFAULT_PARENT, root: str = DEFAULT_ROOT) -> list[str]:
    """``rmdir`` the shared ``<parent>`` directories where no container cgroup is left; returns them.

    A parent still holding a container (EBUSY/ENOTEMPTY) is kept: another container uses it.
    """
    parts = parent.strip("/").split("/") if parent.strip("/") else []
    if not parts:
        return []
    if detect(root) == "v2":
        hierarchies = [root]
    else:
        from minidocker.cgroups.v1 import V1Cgroup

        probe = V1Cgroup(parent.strip("/"), root)
        hierarchies = [p[: -len(probe.name) - 1] for p in probe.paths()]
    removed: list[str] = []
    for hierarchy in hierarchies:
        for depth in range(len(parts), 0, -1):
            d = os.path.join(hierarchy, *parts[:depth])
            try:
                if base.rmdir(d):
                    removed.append(d)
            except CgroupWriteError:
                break  # still in use below; its ancestors are too
    return removed


def sysinfo(root: str = DEFAULT_ROOT) -> SysInfo:
    """What this kernel's cgroups can enforce, the way Docker's ``pkg/sysinfo`` checks it.

    v1: the control files in each hierarchy's root; v2: the root's ``cgroup.controllers`` (Docker
    assumes swap limits whenever the memory controller exists on v2).
    """
    ncpu = len(os.sched_getaffinity(0))
    if detect(root) == "v2":
        ctl = set(read(os.path.join(root, "cgroup.controllers")).split())
        return SysInfo(
            memory_limit="memory" in ctl,
            swap_limit="memory" in ctl,
            memory_reservation="memory" in ctl,
            cpu_shares="cpu" in ctl,
            cpu_cfs="cpu" in ctl,
            cpuset="cpuset" in ctl,
            cpus=read(os.path.join(root, "cpuset.cpus.effective")),
            mems=read(os.path.join(root, "cpuset.mems.effective")),
            pids_limit="pids" in ctl,
            blkio_weight="io" in ctl,
            ncpu=ncpu,
        )

    def has(*rel: str) -> bool:
        return os.path.exists(os.path.join(root, *rel))

    blkio = os.path.join(root, "blkio")
    bfq = os.path.isdir(blkio) and any(f.startswith("blkio.bfq.") for f in os.listdir(blkio))
    return SysInfo(
        memory_limit=has("memory", "memory.limit_in_bytes"),
        swap_limit=has("memory", "memory.memsw.limit_in_bytes"),
        memory_reservation=has("memory", "memory.soft_limit_in_bytes"),
        cpu_shares=has("cpu", "cpu.shares"),
        cpu_cfs=has("cpu", "cpu.cfs_quota_us"),
        cpuset=has("cpuset", "cpuset.cpus"),
        cpus=read(os.path.join(root, "cpuset", "cpuset.cpus")),
        mems=read(os.path.join(root, "cpuset", "cpuset.mems")),
        pids_limit=has("pids"),
        blkio_weight=has("blkio", "blkio.weight") or bfq,  # Docker 20.10 knew only blkio.weight (CFQ)
        ncpu=ncpu,
    )
