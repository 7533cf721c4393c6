"""pyroute2 imported on the other core while ``run`` prepares the container.

Importing pyroute2 0.9's ``IPRoute`` pulls in asyncio, multiprocessing, unittest.mock and ~180
other modules: 70-150 ms of CPU, more than the rest of a bridge network's work put together, and
all of it on the critical path if the monitor imports it when the container's process is waiting
for its ``eth0``. So ``run`` forks this helper first thing (before its own imports), the helper
imports pyroute2 while the CLI imports the run path, creates the container and forks the monitor,
and the monitor mounts the overlay and sets up the cgroups; then the monitor hands it the netlink
work and waits for the answer::

    helper.start()                          # CLI, `run` on a bridge network: connect to a warm
                                            # helper, or fork one (the child imports)
    ...                                     # the rest of `run`, in parallel
    helper.call("plug", pid, "mdbr0", ...)  # monitor: netlink.plug(...) runs in the helper (or
                                            # here, if no helper was started or it is gone)

Requests are ``[number, function, args, kwargs, linger]`` in JSON over a ``SOCK_SEQPACKET``
connection (one message each way), answers ``{"id": number, "ok": result, "trace": [...]}`` or
``{"id": number, "err": message, ...}``: only the functions in :data:`CALLS`, only plain values.
:func:`submit` sends without waiting (:meth:`Pending.result` waits), so the caller's own work can
overlap. The trace events of the work travel back and are emitted by the caller, so ``--trace``
reads in order.

Kept warm: the helper also listens on an abstract unix socket (:func:`address`: the protocol and
this installation's path, so two checkouts never share one) and serves every ``run`` that connects,
one request at a time, until nothing has been connected for the default bridge's grace period
(``$MINIDOCKER_BRIDGE_LINGER``, 2 s; :mod:`minidocker.network.reaper`) as the last process to let
go saw it (each request carries it: ``linger``). Containers run one after another then import
pyroute2 once, not once each: :func:`start` connects to a warm helper when there is one and forks
only when there is none, and a process that never called it (a detached container's monitor, the
reaper, ``network create``) looks for one at its first call. dockerd keeps its netlink warm for its
whole life; this keeps it warm while it is being used.

An abstract socket has no file permissions, so both ends check the other (``SO_PEERCRED``,
:func:`_trusted`): the helper serves only its own user (root) in its own pid and mount
namespaces, and a client talks only to such a helper, never to another user's socket squatting
on the name. A helper that finds the name taken (a live helper; or the first of concurrent runs
won it) serves its own CLI only, as it did before it listened.

Lifetime: until it listens, the helper dies with the CLI that forked it (``PR_SET_PDEATHSIG``).
It exits when the last holder of a connection closes it (the monitor's lean re-exec closes its
copy: it is close-on-exec) and, listening, once the grace period has passed with no new one. It
never holds a lock (it is forked before any), never touches the data root.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
from typing import Any

from minidocker import trace
from minidocker.errors import MinidockerError

CALLS = frozenset({"plug", "ensure_bridge", "delete_link", "link_exists"})
PROTOCOL = "1"  # in the socket's name: a helper of another protocol is never asked

_sock: socket.socket | None = None
_pid = 0
_seq = 0  # the last request's number: answers carry it back


def start() -> None:
    """Fork the helper (once: until :func:`release`). Call it before taking any lock: the child
    keeps a copy of every file descriptor open at the time of the fork."""
    global _sock, _pid
    if _sock is not None:
        return
    _reap()
    warm = connect()
    if warm is not None:  # a helper is warm (another run's): no fork, no pyroute2 import
        _sock, _pid = warm, 0
        return
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            ours.close()
            _serve(theirs, parent)
        except BaseException:  # noqa: BLE001 (the caller falls back to doing the work itself)
            code = 1
        finally:
            os._exit(code)
    theirs.close()
    _sock, _pid = ours, pid


def running() -> bool:
    return _sock is not None


def address() -> str:
    """The abstract socket's name (a leading NUL: no file, gone with the last process holding
    it): the protocol and this installation's directory, so only the same code answers."""
    here = os.path.dirname(os.path.abspath(__file__))
    name = f"\0minidocker-netlink/{PROTOCOL}/{here}"
    if len(name) > 107:  # sun_path is 108 bytes
        import zlib

        name = f"\0minidocker-netlink/{PROTOCOL}/{zlib.crc32(here.encode()):08x}"
    return name


def _trusted(sock: socket.socket) -> bool:
    """The process at the other end (``SO_PEERCRED``) is our user's and sees the same pids and
    mounts as we do: a request names a container by its pid, which must mean the same process on
    both sides (a ``run`` in a nested pid namespace sharing the host's network would otherwise
    reach the host's helper with a pid of its own)."""
    import struct

    pid, uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
    if uid != os.geteuid() or pid <= 0:  # (0: the peer is in an ancestor pid namespace)
        return False
    try:
        return all(
            os.readlink(f"/proc/{pid}/ns/{n}") == os.readlink(f"/proc/self/ns/{n}") for n in ("pid", "mnt")
        )
    except OSError:
        return False


def connect() -> socket.socket | None:
    """A connection to the warm helper, or None (there is none, or the name is held by a process
    of another user or namespace: an abstract socket has no permissions, so the peer is checked)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        s.connect(address())
    except OSError:  # nobody listens
        s.close()
        return None
    if not _trusted(s):
        s.close()
        return None
    return s


_done: list[int] = []  # released helpers, reaped when they have exited


def release() -> None:
    """The CLI, once the monitor it forked holds its own copy: let go of ours (without waiting:
    the helper exits when the monitor closes the other copy), so the next monitor this process
    starts gets a helper of its own."""
    global _sock, _pid
    if _sock is None:
        return
    _sock.close()
    if _pid:
        _done.append(_pid)
    _sock, _pid = None, 0
    _reap()


def _reap() -> None:
    for pid in list(_done):
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == 0:
                continue
        _done.remove(pid)


def call(name: str, *args: Any, **kwargs: Any) -> Any:
    """``netlink.<name>(*args, **kwargs)``, in the helper when there is one, else here."""
    return submit(name, *args, **kwargs).result()


class Pending:
    """A call the helper is working on while the caller does something else (one at a time)."""

    def __init__(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], seq: int) -> None:
        self.name, self.args, self.kwargs, self.seq = name, args, kwargs, seq  # seq 0: not sent

    def result(self) -> Any:
        global _sock
        if self.seq and _sock is not None:
            answer: dict[str, Any] = {}
            while answer.get("id") != self.seq:  # an answer nobody collected (an error between
                try:  # a submit and its result) is skipped
                    data = _sock.recv(1 << 20)
                except OSError:
                    data = b""
                if not data:
                    break
                answer = json.loads(data)
            if answer.get("id") == self.seq:
                for event in answer.get("trace") or ():
                    trace.emit(event)
                if "err" in answer:
                    raise MinidockerError(answer["err"], subject=answer.get("subject") or self.name)
                return answer["ok"]
        if _sock is not None:  # the helper is gone (its CLI exited, or it failed to import)
            with contextlib.suppress(OSError):
                _sock.close()
            _sock = None
        from minidocker.network import netlink  # work here from now on

        return getattr(netlink, self.name)(*self.args, **self.kwargs)


def _linger() -> float:
    """How long a listening helper stays after this process's connection closes: the default
    bridge's grace period, as this process sees it (a request carries it)."""
    from minidocker.network.reaper import linger_seconds

    return linger_seconds()


_looked = False  # submit() without start(): a warm helper was looked for already


def _look() -> None:
    global _sock, _looked
    _looked = True
    _sock = connect()


def submit(name: str, *args: Any, **kwargs: Any) -> Pending:
    """Send ``netlink.<name>(...)`` to the helper and return at once; :meth:`Pending.result`
    waits for it (and runs it here if there is no helper). Lets kernel waits overlap: the
    helper deletes a bridge (an RCU grace period) while we run iptables-restore (another)."""
    global _seq
    if name not in CALLS:
        raise ValueError(f"not a helper call: {name}")
    seq = 0
    if _sock is None and not _looked:  # once per process: the work goes to a warm helper if any
        _look()
    if _sock is not None:
        _seq += 1
        with contextlib.suppress(OSError):
            _sock.send(json.dumps([_seq, name, args, kwargs, _linger()]).encode())
            seq = _seq
    return Pending(name, args, kwargs, seq)


def _serve(sock: socket.socket, parent: int) -> None:
    import gc

    # The CLI's objects are never collected here: a socket or file of the CLI's finalised in this
    # process would close a descriptor number that by then is one of ours (and copy-on-write
    # fewer pages).
    gc.freeze()
    from minidocker.kernel import ns

    for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU):
        signal.signal(sig, signal.SIG_IGN)
    ns.set_pdeathsig(signal.SIGKILL)
    if os.getppid() != parent:  # the CLI exited before the line above
        return
    # Nothing of the CLI's but our socket: not its pipes (`$(minidocker run -d …)` must not wait
    # for us), not a socket whose EOF it waits for (the monitor's report), not a lock file.
    keep = sock.fileno()
    os.closerange(3, keep)
    os.closerange(keep + 1, os.sysconf("SC_OPEN_MAX"))
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    if devnull > 2:
        os.close(devnull)
    # Listen before importing: a `run` that starts meanwhile queues its requests here instead of
    # forking a helper of its own that imports pyroute2 on the same two cores.
    listener = _listen()
    if listener is not None:
        ns.set_pdeathsig(0)  # serving other runs now: outlive the one that forked us
        os.chdir("/")  # and hold no directory of theirs (an unmount would find it busy)
    gc.disable()  # no collection passes over the ~190 modules it imports
    from minidocker.network import netlink

    netlink.warm()  # the point of this process: pyroute2 imported, the host socket open
    gc.freeze()  # (what is there now lives as long as we do)
    gc.enable()
    _loop(sock, listener)


def _listen() -> socket.socket | None:
    """The warm helper's socket, or None if the name is taken (by a live helper: an abstract
    name is released with its last holder, so there is no stale one to clean up)."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        listener.bind(address())
        listener.listen(64)
    except OSError:
        listener.close()
        return None
    return listener


class _Client:
    """One connection: its socket, the note its first answer carries, its grace period."""

    __slots__ = ("linger", "note", "sock")

    def __init__(self, sock: socket.socket, note: str, linger: float) -> None:
        self.sock, self.note, self.linger = sock, note, linger


def _loop(first: socket.socket, listener: socket.socket | None) -> None:
    """Answer requests on every connection, one at a time, until none is left and (listening)
    none came for the grace period of the run that closed the last one."""
    import select
    import time

    poller = select.poll()
    clients = {first.fileno(): _Client(first, "forked by this run", _linger())}
    poller.register(first, select.POLLIN)
    if listener is not None:
        poller.register(listener, select.POLLIN)
    deadline = 0.0
    while clients or listener is not None:
        timeout = None if clients else max(0.0, deadline - time.monotonic()) * 1000
        events = poller.poll(timeout)
        if not events and not clients:
            return  # idle for the grace period (exiting releases the name)
        for fd, _ in events:
            if listener is not None and fd == listener.fileno():
                with contextlib.suppress(OSError):
                    conn, _ = listener.accept()
                    if not _trusted(conn):  # only our own user's runs, in our namespaces
                        conn.close()
                        continue
                    clients[conn.fileno()] = _Client(conn, "warm: pyroute2 imported before this run", 0.0)
                    poller.register(conn, select.POLLIN)
                continue
            client = clients[fd]
            try:
                data = client.sock.recv(1 << 16)
            except OSError:
                data = b""
            if data:
                try:
                    answer, client.linger = _answer(data, client.note)
                except (ValueError, TypeError):  # not a request of this protocol: drop the sender
                    data = b""
            if data:
                client.note = ""
                with contextlib.suppress(OSError):
                    client.sock.send(answer)
                continue
            poller.unregister(fd)
            client.sock.close()
            del clients[fd]
            deadline = time.monotonic() + client.linger


def _answer(data: bytes, note: str) -> tuple[bytes, float]:
    """The answer to one request, and the grace period its sender asked for."""
    seq, name, args, kwargs, linger = json.loads(data)
    from minidocker.network import netlink

    answer: dict[str, Any]
    with trace.capture() as events:
        if note:  # the connection's first answer says which helper served it
            trace.emit(f"netlink helper {os.getpid()}: {note}")
        try:
            if name not in CALLS:
                raise MinidockerError(f"not a helper call: {name}", subject=name)
            answer = {"ok": getattr(netlink, name)(*args, **kwargs)}
        except MinidockerError as e:
            answer = {"err": str(e), "subject": e.subject or name}
        except Exception as e:  # noqa: BLE001 (reported to the caller)
            answer = {"err": f"{name}: {e}", "subject": name}
    answer["trace"] = events
    answer["id"] = seq
    return json.dumps(answer).encode(), float(linger)
