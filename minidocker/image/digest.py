"""Digests, DiffIDs and ChainIDs (shared/docker-layout.md section 2.1).

>>> chain_id(["sha256:" + "a" * 64])
'sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from minidocker import trace
from minidocker.errors import InvalidInput

TYPE_CHECKING = False  # not imported from typing: see minidocker/__init__.py
if TYPE_CHECKING:
    from typing import Any

_HEX64 = re.compile(r"[a-f0-9]{64}")


_sha256: Any = None


def _small_sha256() -> Any:
    """The SHA-256 constructor for small in-memory values: CPython's built-in one when it has it
    (``_sha2`` from 3.12, ``_sha256`` before), so that ``run`` (image config check, chain ids,
    resolv.conf.hash) never loads OpenSSL through hashlib (~2 ms of every start). Streams of layer
    data use hashlib (OpenSSL is faster there). Found once: a failed import is not cached, and
    looking for ``_sha2`` on 3.11 cost ~0.1 ms each time (a search of every ``sys.path`` entry)."""
    global _sha256
    if _sha256 is None:
        try:
            from _sha2 import sha256  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            try:
                from _sha256 import sha256  # type: ignore[import-not-found,no-redef,unused-ignore]
            except ImportError:
                from hashlib import sha256  # type: ignore[assignment,unused-ignore]
        _sha256 = sha256
    return _sha256


def sha256_digest(data: bytes) -> str:
    """``digest.FromBytes``: ``sha256:<hex>`` of a small value.

    >>> sha256_digest(b"")
    'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
    """
    return "sha256:" + _small_sha256()(data).hexdigest()


def validate(digest: str) -> str:
    """Return the hex part of a ``sha256:<64 hex>`` digest, or raise. Called before any digest is
    used as a path component (CVE-2014-9358, CVE-2024-3727)."""
    algo, _, hexpart = digest.partition(":")
    if algo != "sha256" or not _HEX64.fullmatch(hexpart):
        raise InvalidInput(f"invalid digest {digest!r}", subject=digest)
    return hexpart


def validate_hex(value: str) -> str:
    if not _HEX64.fullmatch(value):
        raise InvalidInput(f"invalid id {value!r}", subject=value)
    return value


def is_hex64(value: str) -> bool:
    return bool(_HEX64.fullmatch(value))


def chain_id_step(parent: str | None, diff_id: str, *, narrate: bool = True) -> str:
    """ChainID(L0..Ln) = sha256(ChainID(L0..Ln-1) + " " + DiffID(Ln)); ChainID(L0) = DiffID(L0).

    ``narrate=False`` for look-ups that only peek (the trace tells each computation once)."""
    if parent is None:
        return diff_id
    result = sha256_digest(f"{parent} {diff_id}".encode())
    if narrate:
        trace.emit(lambda: f'chainID = sha256("{parent} {diff_id}") = {result}')
    return result


def chain_id(diff_ids: Sequence[str]) -> str:
    """The ChainID of a whole stack of DiffIDs (base first)."""
    if not diff_ids:
        raise ValueError("chain_id of an empty layer list")
    current: str | None = None
    for d in diff_ids:
        current = chain_id_step(current, d)
    assert current is not None
    return current


def chain_ids(diff_ids: Sequence[str]) -> list[str]:
    """Every prefix's ChainID, base first."""
    out: list[str] = []
    current: str | None = None
    for d in diff_ids:
        current = chain_id_step(current, d)
        out.append(current)
    return out
