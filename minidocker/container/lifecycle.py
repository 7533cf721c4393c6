"""The container lifecycle: create, start (through a monitor), stop, kill, wait, rm, reconcile.

Every container verb goes through a :class:`Runtime` (``ctx.runtime`` in the CLI)::

    rt = Runtime(Stores.open("/var/lib/minidocker"), "/run/minidocker")
    c = rt.create(RunOptions(image="busybox", cmd=["sh", "-c", "echo hi"], network="none"))
    handle = rt.start(c, foreground=True)      # forks the monitor; returns once the command runs
    code = handle.wait()                       # 0, and "hi" was printed and logged
    rt.remove(c.id)

Where things live (design.md §3):

* ``<data-root>/containers/<id>/``: config.v2.json, hostconfig.json, json log, etc files (Docker's);
* ``<exec-root>/containers/<id>/monitor.lock``: the monitor holds an exclusive ``flock`` on it for
  its whole life. That one fact answers "is the monitor alive?" without pids (which the kernel
  reuses): a shared lock that can be taken means nobody holds it. ``wait`` and ``stop`` block on it.

Crash recovery (:meth:`Runtime.reconcile`): a container recorded as running whose monitor is gone is
killed (its cgroup), marked exited, and its mounts and cgroup are removed, by whichever command
looks at it next.
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import os
import signal
import time
from collections.abc import Callable

from minidocker import trace
from minidocker.container.hostconfig import no_new_privileges, seccomp_profile
from minidocker.container.prepare import Prepared
from minidocker.container.state import ZERO_TIME, Container, now_rfc3339
from minidocker.container.store import ContainerStore
from minidocker.errors import (
    CannotExecute,
    CommandNotFound,
    Conflict,
    InvalidInput,
    MinidockerError,
    NotFound,
)
from minidocker.image.store import Stores
from minidocker.kernel import sockets
from minidocker.record import Record, record
from minidocker.storage.overlay2 import remove_tree

TYPE_CHECKING = False  # not imported from typing: see minidocker/__init__.py
if TYPE_CHECKING:
    from typing import Any

    from minidocker.container.create import RunOptions

EXIT_UNKNOWN = 255  # the monitor died and nobody saw the exit (containerd's "unknown" status)


class NotRunning(Conflict):
    """``Container <id> is not running`` (the docker CLI exits 1 for it)."""

    exit_code = 1


@record
class StartHandle(Record):
    """A started container, as seen from the process that started it."""

    container_id: str
    pid: int  # the container's PID 1, host view
    monitor_pid: int
    master_fd: int | None = None  # pty master (``-t``): the CLI resizes it on SIGWINCH

    def wait(self) -> int:
        """Foreground runs: the monitor's exit status is the container's exit code."""
        while True:
            try:
                _, status = os.waitpid(self.monitor_pid, 0)
                break
            except InterruptedError:
                continue
        if self.master_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.master_fd)
        if os.WIFSIGNALED(status):
            return 128 + os.WTERMSIG(status)
        return os.WEXITSTATUS(status)


class Runtime:
    """Every container verb goes through one of these (``ctx.runtime`` in the CLI)."""

    def __init__(self, stores: Stores, exec_root: str) -> None:
        self.stores = stores
        self.exec_root = exec_root
        self.containers = ContainerStore(stores.root, stores.lock)

    # -- paths ----------------------------------------------------------------------------------
    def exec_dir(self, container_id: str) -> str:
        return os.path.join(self.exec_root, "containers", container_id)

    def lock_path(self, container_id: str) -> str:
        return os.path.join(self.exec_dir(container_id), "monitor.lock")

    # -- reading --------------------------------------------------------------------------------
    def get(self, ref: str) -> Container:
        """Full id, exact name or unique id prefix (``daemon.GetContainer``), reconciled."""
        return self.reconcile(self.containers.get(ref))

    def list(self) -> builtins.list[Container]:
        """Every container, newest first, reconciled."""
        return [self.reconcile(c) for c in self.containers.list()]

    def update(
        self,
        container_id: str,
        change: Callable[[Container], None],
        *,
        sync: bool | Callable[[Container], bool] = True,
    ) -> Container:
        """Read-modify-write config.v2.json under the data-root lock (the monitor and the CLI both
        write it: each change starts from what is on disk, so none is lost). ``sync`` (see
        :meth:`ContainerStore.save`) may be decided from the changed record."""
        with self.stores.lock.held():
            c = self.containers.load(container_id)
            change(c)
            self.containers.save(c, sync=sync(c) if callable(sync) else sync)
        return c

    # -- the monitor's lock -----------------------------------------------------------------------
    def monitor_alive(self, container_id: str) -> bool:
        try:
            fd = os.open(self.lock_path(container_id), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def wait_monitor(self, container_id: str, timeout: float | None = None) -> bool:
        """Block until the container's monitor is gone (True) or ``timeout`` seconds pass (False)."""
        try:
            fd = os.open(self.lock_path(container_id), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return True
        try:
            if timeout is None:
                fcntl.flock(fd, fcntl.LOCK_SH)
                return True
            deadline = time.monotonic() + timeout
            delay = 0.002
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                    return True
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        return False
                    time.sleep(delay)
                    delay = min(delay * 2, 0.05)
        finally:
            os.close(fd)

    # -- reconcile --------------------------------------------------------------------------------
    def reconcile(self, c: Container) -> Container:
        """A container whose recorded state is true on this host.

        Recorded running but no monitor holds its lock: the monitor (or the host) died. Whatever is
        left of the container is killed, the state says exited, mounts and cgroup are removed.
        """
        if not c.state.running or self.monitor_alive(c.id):
            return c
        killed = False
        with self.stores.lock.held():
            try:
                c = self.containers.load(c.id)
            except NotFound:
                return c
            if not c.state.running or self.monitor_alive(c.id):
                return c
            trace.emit(lambda: f"reconcile {c.id}: monitor gone, container marked exited")
            killed = self._kill_leftovers(c)

            def exited(x: Container) -> None:
                x.state.running = x.state.paused = x.state.restarting = False
                x.state.pid = 0
                x.state.exit_code = 128 + signal.SIGKILL if killed else EXIT_UNKNOWN
                x.state.finished_at = now_rfc3339()

            c = self.update(c.id, exited)
        self.teardown(c)
        if c.host_config.auto_remove:
            with contextlib.suppress(NotFound):
                self.remove(c.id, force=True)
        return c

    def _kill_leftovers(self, c: Container) -> bool:
        from minidocker import cgroups

        killed = False
        with contextlib.suppress(MinidockerError, ValueError, OSError):
            cg = cgroups.open_cgroup(c.id)
            if cg.exists() and cg.procs():
                cg.kill_all(signal.SIGKILL)
                killed = True
        return killed

    def teardown(self, c: Container, *, keep_exec_dir: bool = False) -> None:
        """Undo a start: the cgroup, the overlay mount, the exec-root dir. Idempotent."""
        from minidocker import cgroups

        with contextlib.suppress(MinidockerError, ValueError, OSError):
            cg = cgroups.open_cgroup(c.id)
            if cg.exists():
                # an empty cgroup stays empty (no process is left to fork into it): no freeze,
                # kill and thaw round (~1 ms) for the usual case, a container that has exited
                if cg.procs():
                    cg.kill_all(signal.SIGKILL)
                cg.remove()
            cgroups.cleanup_parent()
        with contextlib.suppress(MinidockerError, OSError):
            mount = self.stores.layers.get_mount(c.id)
            self.stores.driver.put(mount.mount_id)
        self._release_ports(c)
        self._release_network(c)
        if not keep_exec_dir:
            remove_tree(self.exec_dir(c.id))

    def _release_ports(self, c: Container) -> None:
        """Published ports' proxies and rules (chapter 7), from the state file the monitor wrote."""
        state = os.path.join(self.exec_dir(c.id), "portmap.json")  # minidocker.portmap.STATE_FILE
        if os.path.exists(state):
            from minidocker import portmap

            with contextlib.suppress(MinidockerError, OSError):
                portmap.unpublish(state)
        if c.network_settings.ports:

            def forget(x: Container) -> None:
                x.network_settings.ports = None

            with contextlib.suppress(MinidockerError, OSError):
                self.update(c.id, forget)

    def _release_network(self, c: Container) -> None:
        """veths, /run/netns entry and addresses back (chapter 6); config.v2.json forgets them."""
        mode = c.host_config.network_mode
        if (mode in ("none", "host") or mode.startswith("container:")) and not c.network_settings.sandbox_key:
            return  # nothing was wired: spare the network chapter's import on every stop
        from minidocker import network

        released = []
        with contextlib.suppress(MinidockerError, OSError):
            released = network.release(self.stores, c.id)
        if not released and not c.network_settings.sandbox_key:
            return
        if c.host_config.auto_remove and not c.state.running:
            return  # --rm: the record goes next (a record left by a failed rm is cleared next time)

        def forget(x: Container) -> None:
            from minidocker.container.state import EndpointSettings

            ns = x.network_settings
            ns.sandbox_id = ns.sandbox_key = ""
            for name, ep in (ns.networks or {}).items():  # cleanOperationalData: config stays
                ns.networks[name] = EndpointSettings(  # type: ignore[index]
                    ipam_config=ep.ipam_config, aliases=ep.aliases, network_id=ep.network_id
                )

        with contextlib.suppress(MinidockerError, OSError):
            self.update(c.id, forget)

    def _volumes(self):  # noqa: ANN202 (VolumeStore, imported lazily)
        from minidocker.container.volumes import VolumeStore

        return VolumeStore(self.stores.root, self.stores.lock)

    def _release_mounts(self, c: Container, *, remove_anonymous: bool) -> None:
        if not c.mount_points:
            return
        from minidocker.container import mounts as mnt

        with contextlib.suppress(MinidockerError, OSError):
            mnt.release(c, self._volumes(), remove_anonymous=remove_anonymous)

    # -- create ---------------------------------------------------------------------------------
    def create(self, opts: RunOptions) -> tuple[Container, builtins.list[str]]:
        """``docker create``: config.v2.json, hostconfig.json and the RW layer. Returns the
        container and the warnings to print (Docker's resource warnings)."""
        # (imported here, not at the top: `run` forks its monitor before it parses its flags into
        # RunOptions, and the monitor needs neither this module's create half nor the image service)
        from minidocker import cgroups
        from minidocker.cgroups.resources import Resources
        from minidocker.container.create import container_config, host_config
        from minidocker.image import images

        image_id = images.resolve(self.stores, opts.image)
        image = self.stores.images.get(image_id)
        cfg = container_config(opts, image.get("config"))
        if not cfg.get("Cmd") and not cfg.get("Entrypoint"):
            raise InvalidInput("No command specified", subject=opts.image)
        hc = host_config(opts, cgroup_v2=cgroups.detect() == "v2")
        res, warnings = cgroups.verify(Resources.from_object(hc), cgroups.sysinfo())
        for f in ("memory", "memory_swap", "cpu_shares", "nano_cpus", "pids_limit", "memory_reservation"):
            setattr(hc, f, getattr(res, f))
        if opts.name is not None:
            from minidocker.container.store import validate_name

            validate_name(opts.name)
        network = hc.network_mode
        if network.startswith("container:"):
            other = self.get(network.split(":", 1)[1])
            hc.network_mode = f"container:{other.id}"
            if not cfg.get("Hostname"):
                cfg["Hostname"] = other.config.get("Hostname") or ""  # the network's owner names it
        elif network not in ("default", "bridge", "none", "host"):
            from minidocker.network import NetworkStore

            net = NetworkStore(self.stores.root, self.stores.lock).get(network)  # NotFound
            hc.network_mode = net["Name"]
        mount_points: dict[str, dict[str, Any]] = {}
        if opts.binds or cfg.get("Volumes"):  # (the volumes code is imported only when needed)
            from minidocker.container import mounts as mnt

            binds, mount_points = mnt.plan_mounts(self._volumes(), list(opts.binds), cfg.get("Volumes"))
            hc.binds = binds
        if opts.ip or opts.network_aliases:  # chapter 6: only a user network's endpoint takes them
            from minidocker import network as netpkg

            netpkg.check_endpoint_options(hc.network_mode, opts.ip, opts.network_aliases)
        c = self.containers.create(image_id=image_id, config=cfg, host_config=hc, name=opts.name)
        try:
            if (opts.ip or opts.network_aliases) and c.network_settings.networks:
                ep = c.network_settings.networks[hc.network_mode]  # IPAMConfig, Aliases: what start asks for
                ep.ipam_config = {"IPv4Address": opts.ip} if opts.ip else None
                ep.aliases = list(opts.network_aliases) or None
                self.containers.save(c)
            if mount_points or no_new_privileges(hc) or seccomp_profile(hc):
                c.mount_points = mount_points
                c.no_new_privileges = no_new_privileges(hc)  # parseSecurityOpt records it
                c.seccomp_profile = seccomp_profile(hc)  # and the profile ("unconfined", JSON)
                self.containers.save(c)
            # a --rm container's layers are deleted when it exits: the init layer's short mount
            # (populated, then unmounted, in here) needs no syncfs of the whole disk at unmount
            # (Overlay2Driver.volatile_mounts). Not the container's root: its mount options are
            # visible inside (/proc/self/mountinfo) and must read as Docker's.
            with self.stores.driver.volatile_mounts(bool(hc.auto_remove)):
                self.stores.layers.create_rw_layer(c.id, self.stores.top_layer(image_id))
        except BaseException:
            with contextlib.suppress(Exception):
                self._release_mounts(c, remove_anonymous=True)
            with contextlib.suppress(Exception):
                self.containers.remove(c.id)
            raise
        return c, warnings

    # -- start ----------------------------------------------------------------------------------
    def prepare(self, *, foreground: bool = False, stdin: bool = False) -> Prepared:
        """Fork the monitor of a container that is about to be created (``run``): it warms up on
        the other core while we ``create`` (:mod:`minidocker.container.prepare`). Pass it to
        :meth:`start`, or :meth:`Prepared.cancel` it."""
        from minidocker.container.prepare import fork_monitor

        # forked before create takes the data-root lock: nothing of ours is held across the fork
        return fork_monitor(lambda: self, foreground=foreground, stdin=stdin)

    def start(
        self,
        c: Container,
        *,
        foreground: bool = False,
        stdin: bool = False,
        prepared: Prepared | None = None,
    ) -> StartHandle:
        """Fork the container's monitor and return once the command runs.

        ``foreground``: the monitor also copies the container's output to our stdout/stderr (and,
        with a tty and ``stdin``, our stdin to the container), and its exit status is the
        container's exit code (:meth:`StartHandle.wait`). Otherwise the monitor detaches.
        Errors (command not found: 127, cannot execute: 126, ours: 125) are raised here after
        everything the attempt set up is undone; the state keeps Docker's ``Error``/``ExitCode``.
        """
        from minidocker.cgroups.warm import warm_attach_until_readable

        try:
            c = self.reconcile(c)
            if c.state.running:
                if prepared is not None:
                    prepared.cancel()
                return StartHandle(c.id, c.state.pid, 0)
            if c.state.removal_in_progress or c.state.dead:
                raise Conflict(f"container {c.id} is marked for removal and cannot be started", subject=c.id)
        except BaseException:
            if prepared is not None:
                prepared.cancel()
            raise
        netmode = c.host_config.network_mode
        if netmode not in ("none", "host") and not netmode.startswith("container:"):
            from minidocker.network import helper  # chapter 6: pyroute2 loads on the other core

            helper.start()  # (`run` started it earlier)
        if prepared is not None:  # forked before create (`run`), warm by now: go
            ours, pid = prepared.sock, prepared.pid
            with contextlib.suppress(OSError):  # it died: its report below is empty (125)
                ours.sendall(f"go {c.id}\n".encode())
        else:
            ours, theirs = sockets.socketpair()
            # Nothing of ours may be held across the fork: the data-root lock is per open file.
            pid = os.fork()
            if pid == 0:  # the monitor: never returns
                ours.close()
                from minidocker.container import monitor

                monitor.run(self, c.id, theirs, foreground=foreground, stdin=stdin)
            theirs.close()
        chunks: builtins.list[bytes] = []
        master = None
        try:
            # idle until the monitor reports: spend it on the kernel's cgroup-attach grace period,
            # so the container's first cgroup.procs write does not wait for one (cgroups.warm)
            warm_attach_until_readable(ours.fileno())
            while True:
                data, fds = sockets.recv_fds(ours, 4096, 1)
                if fds:
                    master = fds[0]
                if not data:
                    break
                chunks.append(data)
        finally:
            ours.close()
        if prepared is not None:
            prepared.stop_warming()  # the monitor has made its cgroup.procs writes by now
        if netmode not in ("none", "host") and not netmode.startswith("container:"):
            helper.release()  # the monitor has its own copy; a next start gets a helper of its own
        report = b"".join(chunks).decode(errors="replace")
        kind, _, rest = report.partition(" ")
        if kind != "ok":
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            code_text, _, message = rest.partition(" ")
            if not report:
                message, code_text = "the container's monitor died while starting it", "125"
            code = int(code_text) if code_text.isdigit() else 125
            if code == 127:
                raise CommandNotFound(message, subject=c.id)
            if code == 126:
                raise CannotExecute(message, subject=c.id)
            raise MinidockerError(message, subject=c.id)
        return StartHandle(c.id, int(rest), pid, master)

    # -- signals --------------------------------------------------------------------------------
    def kill(self, c: Container, sig: int = signal.SIGKILL) -> None:
        """``docker kill``: send ``sig`` to the container's PID 1."""
        c = self.reconcile(c)
        if not c.state.running or not c.state.pid:
            raise NotRunning(f"Cannot kill container: {c.id}: Container {c.id} is not running", subject=c.id)
        trace.emit(lambda: f"kill({c.state.pid}, {_signame(sig)})")
        try:
            os.kill(c.state.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self, c: Container, timeout: int | None = None) -> None:
        """``docker stop``: STOPSIGNAL (default SIGTERM), wait ``timeout`` s (default the
        container's StopTimeout or 10), then SIGKILL. A PID 1 without a handler ignores SIGTERM,
        so e.g. ``sleep`` takes the whole timeout, as in Docker. Stopping a stopped one is a no-op."""
        c = self.reconcile(c)
        if not c.state.running:
            return

        def manual(x: Container) -> None:
            x.has_been_manually_stopped = True

        c = self.update(c.id, manual)
        from minidocker.container.create import parse_signal

        sig = parse_signal(c.config.get("StopSignal") or "SIGTERM")
        if timeout is None:
            st = c.config.get("StopTimeout")
            timeout = int(st) if st is not None else 10
        with contextlib.suppress(ProcessLookupError):
            if c.state.pid:
                trace.emit(lambda: f"kill({c.state.pid}, {signal.Signals(sig).name})")
                os.kill(c.state.pid, sig)
        if timeout >= 0 and self.wait_monitor(c.id, float(timeout)):
            return
        self._kill_hard(c)

    def _kill_hard(self, c: Container) -> None:
        with contextlib.suppress(ProcessLookupError):
            if c.state.pid:
                trace.emit(lambda: f"kill({c.state.pid}, SIGKILL)")
                os.kill(c.state.pid, signal.SIGKILL)
        if not self.wait_monitor(c.id, 30.0):
            raise MinidockerError(f"container {c.id}: monitor did not finish after SIGKILL", subject=c.id)

    def wait(self, c: Container) -> int:
        """``docker wait``: block until the container is not running; its exit code.

        A ``--rm`` container's record is gone by the time its monitor lets go of the lock, so the
        monitor first writes the exit code into the lock file (:func:`record_exit_for_waiters`):
        the descriptor we block on still reads it after the exec dir was removed."""
        recorded = None
        try:
            fd = os.open(self.lock_path(c.id), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            pass
        else:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH)  # until the monitor is gone
                text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
                recorded = int(text) if text.isdigit() else None
            finally:
                os.close(fd)
        try:
            return self.reconcile(self.containers.load(c.id)).state.exit_code
        except NotFound:
            return recorded if recorded is not None else c.state.exit_code

    def restart(self, c: Container, timeout: int | None = None) -> StartHandle:
        self.stop(c, timeout)
        return self.start(self.containers.load(c.id))

    # -- remove ---------------------------------------------------------------------------------
    def remove(self, ref: str, *, force: bool = False, volumes: bool = False) -> Container:
        """``docker rm``: refuses a running container unless ``force`` (then SIGKILL first)."""

        c = self.get(ref)
        if c.state.running:
            if not force:
                raise Conflict(
                    f"You cannot remove a running container {c.id}. "
                    "Stop the container before attempting removal or force remove",
                    subject=c.id,
                )
            self._kill_hard(c)
            try:
                c = self.reconcile(self.containers.load(c.id))
            except NotFound:
                return c  # it was a --rm container: its monitor removed it
        return self.remove_stopped(c, volumes=volumes)

    def remove_stopped(self, c: Container, *, volumes: bool = False) -> Container:
        """The rest of :meth:`remove`, for a container already loaded and known to be stopped
        (its monitor, for ``--rm``: no second read of the record it has just written)."""
        self.teardown(c)
        with contextlib.suppress(NotFound, FileNotFoundError):
            self.stores.layers.remove_rw_layer(c.id)
        # --rm removes the anonymous volumes too (dockerd's autoRemove passes RemoveVolume: true)
        self._release_mounts(c, remove_anonymous=volumes or c.host_config.auto_remove)
        with contextlib.suppress(NotFound):
            self.containers.remove(c.id)
        return c


def record_exit_for_waiters(lock_path: str, code: int) -> None:
    """The monitor of a ``--rm`` container, before the record goes: the exit code into its own
    lock file, for :meth:`Runtime.wait` (nothing else reads the file's content)."""
    with contextlib.suppress(OSError):
        fd = os.open(lock_path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.pwrite(fd, f"{code}\n".encode(), 0)
        finally:
            os.close(fd)


def _signame(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return str(sig)


def start_error_state(c: Container, code: int, message: str) -> None:
    """What Docker records when a start fails: still ``created`` (or exited if it ran before),
    with ``Error`` and ``ExitCode`` set (``docker ps -a`` then shows ``Created``)."""
    c.state.running = False
    c.state.pid = 0
    c.state.error = message
    c.state.exit_code = code
    if c.state.started_at != ZERO_TIME:
        c.state.finished_at = now_rfc3339()
