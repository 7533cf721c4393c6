"""Names on user-defined networks: containers sharing a user network find each other by name.

Docker answers these names from an embedded DNS server (127.0.0.11 in every container, run by
dockerd). We have no daemon to host a resolver, so we keep **/etc/hosts entries** instead: each
member's hosts file ends with one block naming every other container it shares a user network
with (container name, ``--network-alias`` values, short id), rewritten whenever any member
attaches or goes. A resolver would need a long-lived process per host (or per container) and an
iptables redirect to reach it; hosts entries need nothing running, work with every libc (static
busybox included) and can be read with ``cat``. The price: names appear only in containers that
were already running when the peer came, which is every case here since entries are maintained
on both attach and release. The default ``bridge`` network gets no names, as in Docker.

::

    refresh(stores, [network_id])     # after attach/release: every member's block rewritten

The block in a member's file (absent when it has no peers)::

    # minidocker: containers on shared user-defined networks
    10.231.0.3\tweb web-alias 0123456789ab
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from minidocker import trace
from minidocker.network.store import DEFAULT_NETWORK, NetworkStore

if TYPE_CHECKING:
    from minidocker.image.store import Stores

MARKER = b"# minidocker: containers on shared user-defined networks\n"


def _names(cid: str, r: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for n in [r.get("Name") or "", *(r.get("Aliases") or []), cid[:12]]:
        if n and n not in out:
            out.append(n)
    return out


def peer_records(nets: Iterable[dict[str, Any]], cid: str) -> list[tuple[str, str]]:
    """(ip, names) of every container sharing a user network with ``cid``, in a stable order.

    >>> net = {"Name": "n", "Endpoints": {"a" * 64: {"IPAddress": "10.0.0.2", "Name": "a"},
    ...                                   "b" * 64: {"IPAddress": "10.0.0.3", "Name": "b"}}}
    >>> peer_records([net], "a" * 64)
    [('10.0.0.3', 'b bbbbbbbbbbbb')]
    """
    out: list[tuple[str, str]] = []
    for net in sorted(nets, key=lambda n: n["Name"]):
        eps = net.get("Endpoints") or {}
        if net["Name"] == DEFAULT_NETWORK or cid not in eps:
            continue
        for other, r in sorted(eps.items()):
            if other != cid:
                out.append((r["IPAddress"], " ".join(_names(other, r))))
    return out


def with_block(content: bytes, records: list[tuple[str, str]]) -> bytes:
    """``content`` with our block replaced by ``records`` (removed when there are none).

    >>> with_block(b"127.0.0.1\\tlocalhost\\n", [("10.0.0.3", "b")])
    b'127.0.0.1\\tlocalhost\\n# minidocker: containers on shared user-defined networks\\n10.0.0.3\\tb\\n'
    >>> with_block(_, [])
    b'127.0.0.1\\tlocalhost\\n'
    """
    base = content.split(MARKER, 1)[0]
    if not records:
        return base
    return base + MARKER + b"".join(f"{ip}\t{names}\n".encode() for ip, names in records)


def write_in_place(path: str, data: bytes) -> bool:
    """Replace the content of ``path`` keeping its inode. False if the file is not there.

    The file is bind-mounted over the container's /etc/hosts: a bind mount pins the inode, so
    the usual atomic write (temp file + rename) would leave the container reading the old file
    forever. We write through the existing inode instead: new bytes from offset 0, then cut the
    tail (not truncate-to-zero first), so a reader sees at worst the new content followed by
    part of the old tail for an instant, never an empty file. Writers are serialised by the
    data-root lock held by :func:`refresh`.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except (FileNotFoundError, NotADirectoryError):
        return False
    try:
        view = memoryview(data)
        offset = 0
        while offset < len(data):
            offset += os.pwrite(fd, view[offset:], offset)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)
    return True


def add_own_record(stores: Stores, cid: str, record: bytes) -> None:
    """``network connect`` of a running container: its own line for the new address goes into its
    hosts file (``etchosts.Add``: appended, never removed, not even at disconnect), above our
    block of peers, in place (see :func:`write_in_place`)."""
    path = hosts_path(stores, cid)
    with stores.lock.held():
        try:
            with open(path, "rb") as f:
                old = f.read()
        except FileNotFoundError:
            return
        base, marker, block = old.partition(MARKER)
        trace.emit(f"write {path} (own address of the new endpoint, in place)")
        write_in_place(path, base + record + marker + block)


def hosts_path(stores: Stores, cid: str) -> str:
    return os.path.join(stores.root, "containers", cid, "hosts")


def refresh(stores: Stores, network_ids: Iterable[str], *, also: Iterable[str] = ()) -> None:
    """Rewrite the block of every member of the given networks (and of the ``also`` containers,
    e.g. one that just left them): each gets the peers it shares any user network with."""
    wanted = set(network_ids)
    store = NetworkStore(stores.root, stores.lock)
    with stores.lock.held():
        nets = store.list()
        members = set(also)
        for net in nets:
            if net["Id"] in wanted and net["Name"] != DEFAULT_NETWORK:
                members |= set(net.get("Endpoints") or {})
        for cid in sorted(members):
            path = hosts_path(stores, cid)
            try:
                with open(path, "rb") as f:
                    old = f.read()
            except FileNotFoundError:
                continue
            new = with_block(old, peer_records(nets, cid))
            if new != old:
                trace.emit(f"write {path} (names on user networks, in place)")
                with contextlib.suppress(OSError):
                    write_in_place(path, new)
