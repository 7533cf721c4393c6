"""Keep ``cgroup.procs`` writes fast while a container is being started (issue 3, "Speed").

Every write to any ``cgroup.procs`` takes the kernel's global ``cgroup_threadgroup_rwsem`` for
writing. That percpu rwsem is idle almost always; its first writer must wait for an RCU grace
period (``rcu_sync_enter``: 5-15 ms on this VM) before it may go on, and for about one more grace
period after the last writer left it stays in the fast state (a second write then takes ~0.05 ms).
The container's first ``cgroup.add`` therefore cost 5-15 ms of every ``run`` -- runc pays it too.

The CLI has nothing to do while its monitor sets the container up, so it pays that wait instead,
in parallel: it writes its own pid into the cgroup it is already in (a no-op move, which still
takes the rwsem) every few milliseconds until the monitor reports, so the monitor's writes find
the rwsem warm::

    from minidocker.cgroups.warm import warm_attach_until_readable
    warm_attach_until_readable(report_socket.fileno(), timeout=30.0)   # then read the report

Nothing is moved anywhere (the pid goes where it is), and any error just stops the warming.

The first of those writes is the slow one, and it holds ``cgroup_mutex`` during its grace period:
started only once the monitor had its ``go``, it blocked the monitor's cgroup ``mkdir``s for
those 5-20 ms (``strace -T``: ``mkdir`` 12 ms beside the CLI's 20 ms ``write``). So ``run`` warms
in the background (:class:`Warmer`: a thread, asleep in the kernel for that first write while the
CLI goes on), started early enough that the grace period is over before the monitor touches
cgroups::

    warmer = Warmer.start()      # run's fast path, once it knows it is a run (cli.runcore)
    ...                          # imports, fork of the monitor, create
    warmer.stop()                # the monitor reported: its cgroup writes are done

Timestamps in ``--trace`` (benchmarks/README.md, round 5) showed how early that must be. Started
right after the monitor's fork, with both cores busy (the CLI creating, the monitor importing), a
thread at the default priority waited a median 3 ms for a core before its first write began, and
the grace period (11-13 ms here) still held ``cgroup_mutex`` when the monitor came to ``mkdir``
its cgroups: blocked a median 3.7-4.7 ms. At nice -20 (below) it began at once, and the
``mkdir`` still waited ~2.4 ms. Started ~15 ms before the fork, while the CLI imports the
container chapter, the grace period is over by the fork. The thread holds no lock while it
sleeps or writes, so the fork copies nothing half-held (the monitor simply has no such thread).

The thread runs at nice -20 (it inherits the caller's nice, which is put back at once; refused
without ``CAP_SYS_NICE``, then it runs at ours): it needs the CPU for microseconds every few
milliseconds, and gets it when it wakes.
"""

from __future__ import annotations

import _thread  # not threading: its import costs ~1 ms of every run
import contextlib
import os
import select
import time

from minidocker import trace

DEFAULT_ROOT = "/sys/fs/cgroup"
INTERVAL_S = 0.003  # well under one grace period (the warm state lasts ~1 GP after a write)
PRIORITY = -20  # the warming thread's nice: it must not wait for a core (see above)


def own_procs_file(root: str = DEFAULT_ROOT, *, proc_cgroup: str = "/proc/self/cgroup") -> str | None:
    """The ``cgroup.procs`` of the cgroup this process is in, in one hierarchy (a v1 controller's
    if there is one, else v2's); ``None`` when none can be found.

    >>> own_procs_file("/nonexistent") is None
    True
    """
    try:
        with open(proc_cgroup, encoding="ascii") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    candidates = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers.startswith("name="):
            continue
        if controllers:  # v1: /sys/fs/cgroup/<controller>/<path>
            candidates.append(os.path.join(root, controllers.split(",")[0], path.lstrip("/"), "cgroup.procs"))
        else:  # v2: the unified tree (pure v2, or hybrid's "unified" mount)
            candidates.append(os.path.join(root, path.lstrip("/"), "cgroup.procs"))
            candidates.append(os.path.join(root, "unified", path.lstrip("/"), "cgroup.procs"))
    for c in candidates:
        if os.path.exists(c):
            return c
    return None


def _poke(path: str, pid: bytes) -> bool:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        os.write(fd, pid)
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


def warm_attach_until_readable(fd: int, *, timeout: float | None = None, root: str = DEFAULT_ROOT) -> bool:
    """Keep ``cgroup.procs`` writes warm until ``fd`` is readable (or ``timeout`` seconds passed).

    Returns whether ``fd`` became readable. Without a usable ``cgroup.procs`` (not root, no cgroupfs,
    a refused write) it just waits for ``fd``.
    """
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    path = own_procs_file(root)
    pid = str(os.getpid()).encode()
    if path is not None:
        trace.emit(lambda: f"keeping cgroup attach warm: write {path} = {pid.decode()} (no-op move)")
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        if path is not None and not _poke(path, pid):
            path = None  # not allowed here: plain waiting from now on
        wait_ms = int(INTERVAL_S * 1000) if path is not None else -1
        if deadline is not None:
            left = max(0, int((deadline - time.monotonic()) * 1000))
            wait_ms = left if wait_ms < 0 else min(wait_ms, left)
        try:
            if poller.poll(wait_ms):
                return True
        except InterruptedError:
            continue
        if deadline is not None and time.monotonic() >= deadline:
            return False


class Warmer:
    """Keeps ``cgroup.procs`` writes warm from a background thread until :meth:`stop` (or
    ``limit`` seconds). The thread holds no lock of ours and touches nothing but that file: a
    process forked meanwhile just has no such thread, and ``os._exit`` ends it with the CLI."""

    def __init__(self, path: str, limit: float) -> None:
        self._path = path
        self._limit = limit
        self._stopped = False
        self._poke = _poke
        # the thread sleeps on this lock between writes: stop() releases it, so the thread ends at
        # once instead of at its next wake-up (no thread left running beside the CLI, or a fork)
        self._wake = _thread.allocate_lock()
        self._wake.acquire()

    @classmethod
    def start(cls, *, limit: float = 5.0, root: str = DEFAULT_ROOT) -> Warmer | None:
        """A running warmer, or None where there is no usable ``cgroup.procs`` (then nothing runs)."""
        path = own_procs_file(root)
        if path is None:
            return None
        warmer = cls(path, limit)
        ours = os.getpriority(os.PRIO_PROCESS, 0)  # Linux: this thread's nice, which a new one inherits
        try:
            os.setpriority(os.PRIO_PROCESS, 0, PRIORITY)
        except OSError:  # EACCES: not root (no CAP_SYS_NICE); it then runs at our priority
            pass
        try:
            _thread.start_new_thread(warmer._run, ())
        finally:
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, 0, ours)
        return warmer

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self._wake.release()

    def _run(self) -> None:
        pid = str(os.getpid()).encode()
        deadline = time.monotonic() + self._limit
        while not self._stopped and time.monotonic() < deadline:
            if not self._poke(self._path, pid):
                return
            if self._wake.acquire(timeout=INTERVAL_S):  # released: stopped
                return
