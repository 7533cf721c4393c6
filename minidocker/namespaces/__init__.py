"""Chapter 1: namespaces and the container's process.

A container is an ordinary process that the kernel shows a different world: its own mount table
(mnt), hostname (uts), IPC objects (ipc), process numbers (pid: it is PID 1), network stack (net)
and cgroup root (cgroup); a root directory it cannot leave (pivot_root); and a root user cut down
to 14 capabilities. ::

    from minidocker.namespaces import Bind, ProcessSpec, start

    spec = ProcessSpec(args=["sh", "-c", "hostname; echo $$"], rootfs=merged, hostname="web",
                       binds=[Bind(f"{cdir}/hostname", "/etc/hostname")], stdio=(devnull, w, w))
    started = start(spec, on_created=join_cgroup_and_network)
    code = started.wait()          # "web", "1"; 0

Modules: ``spec`` (what to run: ProcessSpec, mount plan, Docker's default lists), ``caps``
(capability sets), ``users`` (``-u`` against the image's /etc/passwd), ``rootfs`` (mounts, masks,
pivot_root, run inside the container), ``process`` (the fork/unshare/sync/exec sequence, ``--init``),
``enter`` (``docker exec``: setns into a running container; imported from there, ``from
minidocker.namespaces.enter import ExecSpec, enter``, so a start does not load it), ``child`` (what both share: the report
pipe, the privilege drop, the final execve).
The syscalls themselves are in ``minidocker.kernel.ns``.
"""

from __future__ import annotations

from minidocker.namespaces.child import Started, exit_code
from minidocker.namespaces.process import start
from minidocker.namespaces.spec import Bind, ProcessSpec, default_namespaces

__all__ = ["Bind", "ProcessSpec", "Started", "default_namespaces", "exit_code", "start"]
