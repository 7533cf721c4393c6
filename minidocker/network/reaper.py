"""The default bridge's grace period: it outlives its last container by a few seconds.

Bringing the default bridge up costs a netlink create and an ``iptables-restore``; taking it down a
bridge delete (an RCU grace period, ~35 ms) and another iptables commit. dockerd pays that once
(docker0 stays while the daemon runs); a daemonless runtime that took the bridge down with its last
container paid it on every lone ``run --rm``: +150 ms instead of +40 ms. So the last container's
:func:`minidocker.network.release` leaves the bridge, its address and rules in place, records a
deadline and hands the removal to a detached *reaper*::

    release(stores, cid)         # last endpoint of "bridge": schedule(root, ...) under the lock,
                                 # then spawn() once the lock is released
    ...                          # a `run` within the grace period: allocate() finds the record's
                                 # subnet, plug() finds the bridge: no RTM_NEWLINK, no iptables
    # reaper, at the deadline: data-root lock, host lock; endpoints? leave the bridge to them.
    # none: take the bridge and its rules down, forget the subnet (as release did before)

State: ``<root>/network/minidocker/bridge-linger`` (JSON ``{"deadline": epoch, "reaper": pid}``),
read and written only under the data-root lock. A later release pushes the deadline back; at most
one reaper per data root owns the file (a second one that finds a live owner exits). Everything
the reaper decides, it decides under the data-root lock, the lock every ``allocate`` takes to
record an endpoint: so a ``run`` either recorded its endpoint first (the reaper leaves the bridge)
or finds the subnet forgotten and brings a new bridge up itself.

Crash safety: a killed reaper leaves a bridge without endpoints. The next release of a container
on the default network starts a new reaper (the recorded owner is dead), and ``network prune``
takes an unused default bridge down at once (:func:`minidocker.network.bridge.prune_default`).

The grace period is ``$MINIDOCKER_BRIDGE_LINGER`` seconds (default 2; ``0`` removes the bridge
with its last container, as tests that check the host right after ``rm`` want).

>>> linger_seconds("0.5"), linger_seconds("0"), linger_seconds("junk"), linger_seconds("-1")
(0.5, 0.0, 2.0, 0.0)
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from typing import Any

ENV = "MINIDOCKER_BRIDGE_LINGER"
DEFAULT_LINGER = 2.0
STATE_FILE = "bridge-linger"
_MARK = "minidocker.network.reaper"  # in the reaper's command line: how liveness checks know it


def linger_seconds(raw: str | None = None) -> float:
    """The grace period (seconds, ``0`` = none): ``raw``, or ``$MINIDOCKER_BRIDGE_LINGER``."""
    raw = os.environ.get(ENV, "") if raw is None else raw
    try:
        value = float(raw) if raw else DEFAULT_LINGER
    except ValueError:
        return DEFAULT_LINGER
    return max(0.0, min(value, 3600.0)) if value == value else DEFAULT_LINGER  # NaN: default


def state_path(root: str) -> str:
    return os.path.join(root, "network", "minidocker", STATE_FILE)


def read_state(root: str) -> dict[str, Any] | None:
    try:
        with open(state_path(root)) as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _write_state(root: str, doc: dict[str, Any]) -> None:
    # no fsync: after a reboot the bridge is gone anyway, and a lost file only means no reaper
    tmp = state_path(root) + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f)
    os.rename(tmp, state_path(root))


def clear_state(root: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(state_path(root))


def alive(pid: int) -> bool:
    """Is ``pid`` a reaper (and not some process that reused the number)?"""
    if pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return _MARK.encode() in f.read()
    except OSError:
        return False


def schedule(root: str, grace: float) -> bool:
    """The default network just lost its last endpoint (data-root lock held): push the deadline
    to now + ``grace``. True when no reaper is alive to honour it: the caller :func:`spawn`\\ s one
    after releasing the lock (a forked child must not share the lock's file descriptor)."""
    old = read_state(root) or {}
    owner = int(old.get("reaper") or 0)
    owned = owner != os.getpid() and alive(owner)
    _write_state(root, {"deadline": time.time() + grace, "reaper": owner if owned else 0})
    return not owned


def spawn(root: str, bridge: str, subnet: str, *, internal: bool, trace_on: bool) -> int:
    """Start a detached reaper for the default bridge of data root ``root``; its pid.

    Double fork and ``setsid``: no parent waits for it, no terminal signals reach it. It keeps none
    of our file descriptors (a test reading our output would wait for it otherwise), except
    stderr under ``--trace``: its narration then follows ours. It is a fresh ``python -S``
    (``exec``: nothing of the caller's memory, its own command line for ``ps``), which imports
    pyroute2 only if it has a bridge to delete. ``bridge``/``subnet`` let it clean up even if the
    data root is gone by then (a test's temporary root)."""
    import signal

    import minidocker

    src = os.path.dirname(os.path.dirname(os.path.abspath(minidocker.__file__)))
    code = f"import sys; sys.path[:0] = [{src!r}]; from {_MARK} import main; main()"
    args = json.dumps({"root": root, "bridge": bridge, "subnet": subnet, "internal": internal})
    # -B: it outlives the command that spawned it, so it writes nowhere (a PYTHONPYCACHEPREFIX
    # inside a scratch dir that is gone by then would be re-created)
    argv = [sys.executable, "-B", "-s", "-S", "-c", code, args]
    if trace_on:
        argv.append("--trace")
    r, w = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (a forked child)
        try:
            os.close(r)
            os.setsid()
            grandchild = os.fork()
            if grandchild == 0:
                # "ignore" survives exec, and the monitor ignores SIGTERM, SIGINT and SIGHUP: a
                # reaper must die of them like any process (SIGPIPE: Python ignores it anyway)
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
                    signal.signal(sig, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_SETMASK, set())
                null = os.open(os.devnull, os.O_RDWR)
                for fd in (0, 1) if trace_on else (0, 1, 2):
                    os.dup2(null, fd)
                os.closerange(3, 1 << 20)  # close_range(2): the lock, the helper's socket, pipes
                os.execv(sys.executable, argv)
            os.write(w, str(grandchild).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        text = f.read()
    with contextlib.suppress(ChildProcessError):  # a caller that reaps every child got it first
        os.waitpid(child, 0)
    return int(text or 0)


# -- the reaper process -----------------------------------------------------------------------------
def main() -> None:
    """Entry point of the process :func:`spawn` starts (``argv``: the JSON arguments)."""
    code = 0
    try:
        a = json.loads(sys.argv[1])
        if "--trace" in sys.argv[2:]:
            from minidocker import trace

            trace.to_stream(sys.stderr)
        reap(a["root"], a["bridge"], a["subnet"], internal=bool(a.get("internal")))
    except BaseException:  # noqa: BLE001 (nobody reads our stderr: the next release retries)
        code = 1
        if os.environ.get("MINIDOCKER_DEBUG"):
            import traceback

            traceback.print_exc()
    finally:
        os._exit(code)


def _site() -> None:
    """``-S`` left out site-packages (pyroute2), needed only to delete the bridge."""
    if "site" not in sys.modules:
        import site

        site.main()


def reap(root: str, bridge: str, subnet: str, *, internal: bool = False) -> str:
    """Wait for the deadline, then remove the default bridge if it is still unused. Returns what
    was decided: ``"removed"``, ``"in use"``, ``"taken over"`` (another reaper owns the file) or
    ``"gone"`` (someone else took the bridge down: ``network prune``, a grace-0 release)."""
    from minidocker import trace
    from minidocker.fsutil import DataRootLock
    from minidocker.network import bridge as br
    from minidocker.network import helper, netlink
    from minidocker.network.store import DEFAULT_NETWORK, NetworkStore

    me = os.getpid()
    while True:  # first round: claim the state file (a release meanwhile sees us alive), sleep
        if not os.path.isdir(os.path.join(root, "network", "minidocker")):
            # the data root went away (a test's temporary root): the bridge must not stay
            _site()
            if not helper.call("link_exists", bridge):
                return "gone"
            trace.emit(f"reaper {me}: data root {root} is gone: removing bridge {bridge}")
            with netlink.host_lock():
                br._take_down(
                    {"Id": "", "Options": {br.BRIDGE_NAME_OPT: bridge}, "Internal": internal,
                     "IPAM": {"Config": [{"Subnet": subnet}]}}
                )  # fmt: skip
            return "removed"
        lock = DataRootLock(root)
        with lock.held():
            state = read_state(root)
            if state is None:
                trace.emit(f"reaper {me}: bridge {bridge} no longer lingers: nothing to do")
                return "gone"
            owner = int(state.get("reaper") or 0)
            if owner not in (0, me) and alive(owner):
                trace.emit(f"reaper {me}: reaper {owner} watches bridge {bridge}: exiting")
                return "taken over"
            store = NetworkStore(root, lock)
            net = store.get(DEFAULT_NETWORK)
            users = len(net.get("Endpoints") or {})
            if users:
                clear_state(root)
                trace.emit(f"reaper {me}: bridge {bridge} is used by {users} container(s) again: it stays")
                return "in use"
            left = float(state.get("deadline", 0)) - time.time()
            if left <= 0:
                trace.emit(f"reaper {me}: bridge {bridge} unused for its grace period: removing it")
                _site()
                with netlink.host_lock():
                    br._take_down(net)
                net["IPAM"]["Config"] = []  # the next first use picks a subnet again
                store.save(net)
                clear_state(root)
                return "removed"
            if owner != me:
                state["reaper"] = me
                _write_state(root, state)
            trace.emit(f"reaper {me}: bridge {bridge} lingers {left:.1f} s more")
        time.sleep(left)
