"""The seccomp seam for real (root): a forked child loads Docker's default filter and reports what
its system calls return. The parent is never filtered (a filter can not be removed)."""

from __future__ import annotations

import ctypes
import errno
import json
import os
from collections.abc import Callable

import pytest

from minidocker.kernel import ns, seccomp
from minidocker.namespaces import caps
from minidocker.namespaces import seccomp as profiles

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.uname().machine != "x86_64", reason="syscall tables are x86 only"),
]

_libc = ctypes.CDLL(None, use_errno=True)
_raw = _libc["syscall"]  # our own function object: argtypes stay ours
_raw.restype = ctypes.c_long
_raw.argtypes = [ctypes.c_long, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]


def _call(nr: int, *args: int) -> int:
    """A raw syscall: its errno, or 0 when it succeeded."""
    padded = (list(args) + [0] * 4)[:4]
    return 0 if _raw(nr, *padded) >= 0 else ctypes.get_errno()


def in_filtered_child(program: bytes | None, probe: Callable[[], dict[str, object]]) -> dict[str, object]:
    """Fork; the child loads ``program`` and runs ``probe``; returns what the probe returned."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            out: dict[str, object] = {}
            try:
                if program is not None:
                    seccomp.set_mode_filter(program)
                out = probe()
            except OSError as e:
                out = {"load_error": e.errno}
            os.write(w, json.dumps(out).encode())
        finally:
            os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    return json.loads(data)


def _probe() -> dict[str, object]:
    return {
        "mode": seccomp.mode(),
        "unshare": _call(272, 0x00020000),  # unshare(CLONE_NEWNS)
        "mount": _call(165, 0, 0, 0, 0),  # mount(NULL, NULL, NULL, 0)
        "keyctl": _call(250, 0),  # keyctl(KEYCTL_GET_KEYRING_ID, ...)
        "newer": _call(1000),  # beyond every syscall the profile names
        "getpid": _call(39),
        "cwd": os.getcwd(),
        "fork_ok": _fork_works(),
    }


def _fork_works() -> bool:
    pid = os.fork()
    if pid == 0:
        os._exit(7)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 7


def test_default_profile_denies_and_allows() -> None:
    program = profiles.program(None, privileged=False, cap_mask=caps.DEFAULT_MASK)
    assert program is not None
    got = in_filtered_child(program, _probe)
    assert got["mode"] == seccomp.SECCOMP_MODE_FILTER
    assert got["unshare"] == got["mount"] == got["keyctl"] == errno.EPERM
    assert got["newer"] == errno.ENOSYS
    assert got["getpid"] == 0 and got["cwd"] == os.getcwd() and got["fork_ok"] is True


def test_unfiltered_child_for_comparison() -> None:
    got = in_filtered_child(None, lambda: {"mode": seccomp.mode(), "newer": _call(1000)})
    assert got == {"mode": 0, "newer": errno.ENOSYS}


def test_sys_admin_profile_allows_unshare() -> None:
    program = profiles.program(
        None, privileged=False, cap_mask=caps.DEFAULT_MASK | 1 << caps.NUMBERS["CAP_SYS_ADMIN"]
    )
    assert program is not None
    got = in_filtered_child(program, lambda: {"unshare": _call(272, 0x00020000)})
    assert got == {"unshare": 0}  # a new mount namespace of the child only


def test_loading_needs_sys_admin_or_no_new_privs() -> None:
    program = profiles.program(None, privileged=False, cap_mask=caps.DEFAULT_MASK)
    assert program is not None
    sys_admin = 1 << caps.NUMBERS["CAP_SYS_ADMIN"]

    def without_sys_admin() -> dict[str, object]:
        sets = ns.capget()
        ns.capset(sets.effective & ~sys_admin, sets.permitted, sets.inheritable)
        try:
            seccomp.set_mode_filter(program)
        except OSError as e:
            return {"first": e.errno}
        return {"first": 0}

    assert in_filtered_child(None, without_sys_admin) == {"first": errno.EACCES}

    def with_no_new_privs() -> dict[str, object]:
        sets = ns.capget()
        ns.capset(sets.effective & ~sys_admin, sets.permitted, sets.inheritable)
        ns.set_no_new_privs()
        seccomp.set_mode_filter(program)
        return {"mode": seccomp.mode()}

    assert in_filtered_child(None, with_no_new_privs) == {"mode": 2}


def test_bad_programs_are_refused() -> None:
    with pytest.raises(ValueError):
        seccomp.set_mode_filter(b"")
    # a jump past the end: the kernel's checker says EINVAL (and nothing is installed)
    bad = bytes.fromhex("0500000005000000") + bytes.fromhex("0600000000007fff")
    assert in_filtered_child(None, lambda: _load_errno(bad)) == {"err": errno.EINVAL, "mode": 0}


def _load_errno(program: bytes) -> dict[str, object]:
    try:
        seccomp.set_mode_filter(program)
    except OSError as e:
        return {"err": e.errno, "mode": seccomp.mode()}
    return {"err": 0, "mode": seccomp.mode()}
