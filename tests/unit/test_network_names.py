"""Names on user networks (minidocker/network/names.py): the hosts block and the in-place write."""

from __future__ import annotations

import doctest
import os
from pathlib import Path

from minidocker.network import names


def test_doctests() -> None:
    assert doctest.testmod(names).failed == 0


def test_block_replaced_not_appended_and_default_bridge_ignored() -> None:
    base = b"127.0.0.1\tlocalhost\n10.0.0.2\tabc\n"
    nets = [
        {
            "Name": "bridge",
            "Endpoints": {"a" * 64: {"IPAddress": "172.17.0.2"}, "c" * 64: {"IPAddress": "172.17.0.3"}},
        },
        {
            "Name": "front",
            "Endpoints": {
                "a" * 64: {"IPAddress": "10.0.0.2", "Name": "a1"},
                "b" * 64: {"IPAddress": "10.0.0.3", "Name": "b1", "Aliases": ["db", "b1"]},
            },
        },
    ]
    once = names.with_block(base, names.peer_records(nets, "a" * 64))
    assert once == base + names.MARKER + b"10.0.0.3\tb1 db bbbbbbbbbbbb\n"
    assert names.with_block(once, names.peer_records(nets, "a" * 64)) == once
    assert names.peer_records(nets, "c" * 64) == []  # only on the default bridge: no names
    assert names.with_block(once, []) == base


def test_write_in_place_keeps_the_inode(tmp_path: Path) -> None:
    p = tmp_path / "hosts"
    p.write_bytes(b"x" * 100)
    inode = os.stat(p).st_ino
    assert names.write_in_place(str(p), b"short\n")
    assert p.read_bytes() == b"short\n"
    assert os.stat(p).st_ino == inode
    assert not names.write_in_place(str(tmp_path / "missing"), b"")
