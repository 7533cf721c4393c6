"""A container's monitor forked ahead of time, so that its start-up work overlaps the CLI's.

``run`` forks the monitor once the CLI has imported what both need (``container.lifecycle``:
the container record, the stores), before it parses its flags (``fast_main``; the click path
forks in ``run_container``, before ``create``). While the CLI imports the rest (flags as
``RunOptions``, the image service) and creates the container (image, configs, init and writable
layers), the monitor
imports the start path (namespaces, json log, etc files), reads Docker's default seccomp filter
(compiled on the first start into ``<exec-root>/seccomp/``) and waits; ``start`` then sends it
the container's id (``go <id>``) and it goes on as a monitor forked there would::

    prepared = fork_monitor(lambda: rt, foreground=True, stdin=False)   # Runtime.prepare
    try:
        c, _ = rt.create(opts)
    except BaseException:
        prepared.cancel()
        raise
    handle = rt.start(c, foreground=True, prepared=prepared)

On two cores this takes the monitor's imports (~10 ms) off the critical path. (Forking before
the CLI's own imports was tried, twice: both processes then import the container chapter, ~20 ms
of CPU more, a loss whenever the other core is busy.) The monitor holds nothing
before ``go`` (no lock, no file of the data root), so ``cancel`` may simply kill it, and it exits
by itself when the CLI's end of the socket closes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import warnings
from collections.abc import Callable

from minidocker.kernel import sockets

TYPE_CHECKING = False  # not imported from typing: see minidocker/__init__.py
if TYPE_CHECKING:
    from minidocker.cgroups.warm import Warmer
    from minidocker.container.lifecycle import Runtime


class Prepared:
    """The monitor's pid and our end of its socket (``go <id>``, then its start report)."""

    def __init__(self, pid: int, sock: sockets.Socket) -> None:
        self.pid = pid
        self.sock = sock
        self.warmer: Warmer | None = None  # cgroups.warm, from the fork until the monitor reports

    def stop_warming(self) -> None:
        if self.warmer is not None:
            self.warmer.stop()
            self.warmer = None

    def cancel(self) -> None:
        """The container will not be started: end the waiting monitor (it holds nothing yet)."""
        self.stop_warming()
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        self.sock.close()
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


def fork_monitor(
    runtime: Callable[[], Runtime],
    *,
    foreground: bool,
    stdin: bool,
    exec_root: str | None = None,
    warmer: Warmer | None = None,
) -> Prepared:
    """Fork the monitor of a container about to be created; ``runtime()`` is called in the
    monitor once the id arrives (not before: opening the stores creates the data root, and the
    flags may still prove bad). Its exec root (``exec_root``, else ``runtime().exec_root``) holds
    the compiled seccomp filter the monitor reads while it waits.
    Flush buffered output first (the child inherits the buffers). The CLI's cgroup warm-up
    (``cgroups.warm.Warmer``: ``warmer`` if one is running already, else one started now) is
    stopped by ``Runtime.start`` or :meth:`Prepared.cancel`."""
    ours, theirs = sockets.socketpair()
    with warnings.catch_warnings():
        # Python 3.12+ warns about fork() in a process with threads. Ours is `run`'s cgroup
        # warm-up (cgroups.warm), already running: it holds no lock, Python's or ours, while it
        # sleeps or writes, so the child copies nothing half-held (and has no such thread).
        warnings.filterwarnings("ignore", r"This process .* is multi-threaded", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # never returns
        ours.close()
        from minidocker.container import monitor

        monitor.run_prepared(runtime, theirs, foreground=foreground, stdin=stdin, exec_root=exec_root)
    theirs.close()
    prepared = Prepared(pid, ours)
    # the first cgroup.procs write waits for an RCU grace period holding cgroup_mutex: paid before
    # the monitor's cgroup mkdirs, not during them (cgroups.warm)
    if warmer is None:
        from minidocker.cgroups.warm import Warmer

        warmer = Warmer.start()
    prepared.warmer = warmer
    return prepared
