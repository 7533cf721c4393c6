"""The userland proxy: what ``docker-proxy`` does, in a forked process per published port.

DNAT cannot reach everything. Traffic to 127.0.0.1 never passes PREROUTING, and the OUTPUT jump
skips 127.0.0.0/8 (DNAT of loopback traffic needs ``route_localnet``, which dockerd does not turn
on either). So each published port also gets a plain socket relay bound to hostIP:hostPort: the
kernel hands it every connection the DNAT rules did not rewrite. Holding that socket is also how
a port "in use" is noticed: the bind fails before any rule exists::

    sock = listen("tcp", "127.0.0.1", 0)            # bound and listening (port 0: any free one)
    pid = spawn(sock, "tcp", ("10.88.0.2", 80))     # the relay runs in a child, sock is its own
    ...
    stop(pid)                                       # SIGTERM, then reaped if it is our child

TCP: one thread per direction per connection, half-closes passed on (EOF -> shutdown(SHUT_WR)).
UDP: one connected socket per client address towards the container, replies sent back from the
published socket, forgotten after 90 s of silence (docker-proxy's UDPConnTrackTimeout).
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import threading

from minidocker import trace
from minidocker.errors import Conflict

PROXY_COMM = "md-proxy"  # /proc/<pid>/comm of a relay: a recorded pid is only signalled if it matches
UDP_TIMEOUT = 90.0
BUF = 65536

Target = tuple[str, int]


def listen(proto: str, host_ip: str, host_port: int) -> socket.socket:
    """A bound (and, for TCP, listening) socket on host_ip:host_port; port 0 lets the kernel pick a
    free one from ``net.ipv4.ip_local_port_range``, which is Docker's ephemeral range too.
    A taken port raises :class:`Conflict` with docker-proxy's wording."""
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    v6 = ":" in host_ip
    sock = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, kind)
    try:
        if proto == "tcp":
            # TIME_WAIT leftovers of an earlier run may not keep us from binding (Go sets it too)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if v6:  # [::]:port next to 0.0.0.0:port, as docker-proxy's two listeners
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host_ip or "0.0.0.0", host_port))
        if proto == "tcp":
            sock.listen(128)
    except OSError as e:
        sock.close()
        why = "address already in use" if e.errno == errno.EADDRINUSE else (e.strerror or str(e)).lower()
        where = f"[{host_ip}]:{host_port}" if v6 else f"{host_ip or '0.0.0.0'}:{host_port}"
        raise Conflict(
            f"Error starting userland proxy: listen {proto}{6 if v6 else 4} {where}: bind: {why}",
            subject=f"{host_ip}:{host_port}",
        ) from None
    return sock


def v6_listenable() -> bool:
    """libnetwork's ``IsV6Listenable``: can we listen on [::1]:0? (False when the kernel runs with
    ``ipv6.disable=1``.) Docker then adds a ``::`` binding next to each ``0.0.0.0`` one."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
            s.listen(1)
    except OSError:
        return False
    return True


def serve(sock: socket.socket, proto: str, target: Target) -> None:
    """Relay forever (until the process is signalled); the caller's thread does the accepting."""
    if proto == "tcp":
        _serve_tcp(sock, target)
    else:
        _serve_udp(sock, target)


def _serve_tcp(sock: socket.socket, target: Target) -> None:
    while True:
        try:
            client, _ = sock.accept()
        except InterruptedError:
            continue
        except OSError:
            return  # closed under us: shutting down
        threading.Thread(target=_tcp_pair, args=(client, target), daemon=True).start()


def _tcp_pair(client: socket.socket, target: Target) -> None:
    try:
        upstream = socket.create_connection(target, timeout=10)
        upstream.settimeout(None)
    except OSError:
        client.close()  # the container does not answer: the client sees a reset/close, as with docker-proxy
        return
    t = threading.Thread(target=_copy, args=(upstream, client), daemon=True)
    t.start()
    _copy(client, upstream)
    t.join()
    client.close()
    upstream.close()


def _copy(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(BUF):
            dst.sendall(data)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)  # pass the half-close on: HTTP/1.0 clients rely on it


def _serve_udp(sock: socket.socket, target: Target) -> None:
    peers: dict[tuple[str, int], socket.socket] = {}
    lock = threading.Lock()

    def replies(client: tuple[str, int], up: socket.socket) -> None:
        up.settimeout(UDP_TIMEOUT)
        try:
            while True:
                data = up.recv(BUF)
                sock.sendto(data, client)
        except OSError:
            pass
        with lock:
            peers.pop(client, None)
        up.close()

    while True:
        try:
            data, client = sock.recvfrom(BUF)
        except InterruptedError:
            continue
        except OSError:
            return
        with lock:
            up = peers.get(client)
            if up is None:
                up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                up.connect(target)
                peers[client] = up
                threading.Thread(target=replies, args=(client, up), daemon=True).start()
        with contextlib.suppress(OSError):
            up.send(data)


def spawn(sock: socket.socket, proto: str, target: Target) -> int:
    """Fork a relay process that owns ``sock``; returns its pid (the caller closes its copy).

    The child keeps nothing else of ours: stdio goes to /dev/null (a ``$(minidocker run -d)``
    must not wait for it) and every other descriptor is closed (the monitor's lock, the report
    pipe). PR_SET_PDEATHSIG ties it to the forking process, so a killed monitor takes it along.
    """
    from minidocker.kernel import ns

    parent = os.getpid()
    pid = os.fork()
    if pid:
        trace.emit(
            f"portmap: proxy pid {pid} for {sock.getsockname()[0]}:{sock.getsockname()[1]}"
            f" -> {target[0]}:{target[1]}/{proto}"
        )
        return pid
    try:
        ns.set_pdeathsig(signal.SIGKILL)
        if os.getppid() != parent:
            os._exit(0)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)  # the monitor ignores them; a relay must not
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        keep = sock.fileno()
        os.closerange(3, keep)
        os.closerange(keep + 1, 1 << 16)
        with contextlib.suppress(OSError), open("/proc/self/comm", "w") as f:
            f.write(PROXY_COMM)
        serve(sock, proto, target)
    finally:
        os._exit(0)


def is_proxy(pid: int) -> bool:
    """``pid`` is (still) one of our relays, not a recycled pid."""
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip() == PROXY_COMM
    except OSError:
        return False


def stop(pid: int) -> None:
    """End a relay: SIGKILL (it holds no state worth a graceful end), reaped when it is our child."""
    if pid <= 0 or not is_proxy(pid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    trace.emit(f"portmap: proxy pid {pid} stopped")
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def run_foreground(listeners: list[tuple[socket.socket, str, Target]]) -> int:
    """``portmap start|forward``: relay every listener in this process until SIGINT/SIGTERM.
    Returns the signal number that ended it. The signals are blocked first so that only this
    thread takes them (the relay threads inherit the mask)."""
    wanted = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, wanted)
    for sock, proto, target in listeners:
        threading.Thread(target=serve, args=(sock, proto, target), daemon=True).start()
    try:
        return signal.sigwait(wanted)
    finally:
        for sock, _, _ in listeners:
            sock.close()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, wanted)
