"""pyroute2 imported on the other core while ``run`` prepares the container.

Importing pyroute2 0.9's ``IPRoute`` pulls in asyncio, multiprocessing, unittest.mock and ~180
other modules: 70-150 ms of CPU, more than the rest of a bridge network's work put together, and
all of it on the critical path if the monitor imports it when the container's process is waiting
for its ``eth0``. So ``run`` forks this helper first thing (before its own imports), the helper
imports pyroute2 while the CLI imports the run path, creates the container and forks the monitor,
and the monitor mounts the overlay and sets up the cgroups; then the monitor hands it the netlink
work and waits for the answer::

    helper.start()                          # CLI, `run` on a bridge network: fork, child imports
    ...                                     # the rest of `run`, in parallel
    helper.call("plug", pid, "mdbr0", ...)  # monitor: netlink.plug(...) runs in the helper (or
                                            # here, if no helper was started or it is gone)

Requests are ``[number, function, args, kwargs]`` in JSON over a ``SOCK_SEQPACKET`` pair (one
message each way), answers ``{"id": number, "ok": result, "trace": [...]}`` or ``{"id": number,
"err": message, ...}``: only the functions in :data:`CALLS`, only plain values. :func:`submit`
sends without waiting (:meth:`Pending.result` waits), so the caller's own work can overlap. The trace events of the work travel back and are
emitted by the caller, so ``--trace`` reads in order.

Lifetime: the helper dies with the CLI that forked it (``PR_SET_PDEATHSIG``), and exits when the
last holder of the other end closes it (the monitor's lean re-exec closes it: it is
close-on-exec). It never holds a lock (it is forked before any), never touches the data root.
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


def submit(name: str, *args: Any, **kwargs: Any) -> Pending:
    """Send ``netlink.<name>(...)`` to the helper and return at once; :meth:`Pending.result`
    waits for it (and runs it here if there is no helper). Lets kernel waits overlap: the
    helper deletes a bridge (an RCU grace period) while we run iptables-restore (another)."""
    global _seq
    if name not in CALLS:
        raise ValueError(f"not a helper call: {name}")
    seq = 0
    if _sock is not None:
        _seq += 1
        with contextlib.suppress(OSError):
            _sock.send(json.dumps([_seq, name, args, kwargs]).encode())
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
    from minidocker.network import netlink

    gc.disable()  # a short life: no collection passes over the ~190 modules it imports
    netlink.warm()  # the point of this process: pyroute2 imported, the host socket open
    while True:
        data = sock.recv(1 << 16)
        if not data:
            return
        seq, name, args, kwargs = json.loads(data)
        answer: dict[str, Any]
        with trace.capture() as events:
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
        sock.send(json.dumps(answer).encode())
