"""Docker's seccomp profile compiled to classic BPF (pure): the program is run here by a small BPF
interpreter against sample ``seccomp_data``, and its decisions are checked against Docker's."""

from __future__ import annotations

import json
import random
import struct
import time
from types import SimpleNamespace
from typing import Any

import pytest

from minidocker.errors import InvalidInput
from minidocker.namespaces import caps
from minidocker.namespaces import seccomp as sc
from minidocker.namespaces.syscalls_x86 import I386, X32, X32_SYSCALL_BIT, X86_64

X64 = sc.AUDIT_ARCH_X86_64
ALLOW = sc.SECCOMP_RET_ALLOW
EPERM = sc.SECCOMP_RET_ERRNO | 1
ENOSYS = sc.SECCOMP_RET_ERRNO | 38
CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWNET = 0x00020000, 0x10000000, 0x40000000
SIGCHLD_FORK = 0x01200011  # glibc fork(): CLONE_CHILD_SETTID|CLONE_CHILD_CLEARTID|SIGCHLD
KERNEL = "6.1.0-13-amd64"


def run_bpf(prog: bytes, nr: int, arch: int = X64, args: tuple[int, ...] = ()) -> int:
    """Execute a seccomp classic-BPF program on one ``struct seccomp_data``; returns its ``ret``."""
    padded = (list(args) + [0] * 6)[:6]
    data = struct.pack("<iIQ6Q", nr, arch, 0, *(a & (1 << 64) - 1 for a in padded))
    insns = [struct.unpack_from("<HBBI", prog, i) for i in range(0, len(prog), 8)]
    pc, acc = 0, 0
    for _ in range(len(insns) + 1):  # no backward jumps: each instruction runs at most once
        code, jt, jf, k = insns[pc]
        if code == 0x20:  # ld [k]
            assert k % 4 == 0 and k + 4 <= len(data)
            acc = struct.unpack_from("<I", data, k)[0]
            pc += 1
        elif code == 0x54:  # and #k
            acc &= k
            pc += 1
        elif code == 0x05:  # ja
            pc += 1 + k
        elif code in (0x15, 0x25, 0x35):  # jeq, jgt, jge
            hit = acc == k if code == 0x15 else acc > k if code == 0x25 else acc >= k
            pc += 1 + (jt if hit else jf)
        elif code == 0x06:  # ret #k
            return k
        else:
            raise AssertionError(f"unexpected opcode {code:#x} at {pc}")
    raise AssertionError("the program did not return")


def check_shape(prog: bytes) -> None:
    """What the kernel's checker insists on: in bounds, forward jumps only, a ret at the end."""
    n = len(prog) // 8
    assert len(prog) % 8 == 0 and 0 < n <= 4096
    for i in range(n):
        code, jt, jf, k = struct.unpack_from("<HBBI", prog, i * 8)
        if code == 0x05:
            assert i + 1 + k < n
        elif code in (0x15, 0x25, 0x35):
            assert i + 1 + max(jt, jf) < n  # jt/jf are u8 by construction: <= 255
    assert struct.unpack_from("<H", prog, (n - 1) * 8)[0] == 0x06


def default(*extra_caps: str) -> bytes:
    names = [*caps.DEFAULT, *extra_caps]
    return sc.compile_profile(sc.default_profile(), names, kernel=KERNEL)


# -- the profile ----------------------------------------------------------------------------------
def test_default_profile_is_docker_20_10s() -> None:
    p = sc.default_profile()
    assert p.default_action == "SCMP_ACT_ERRNO" and p.default_errno is None
    assert p.arch_map[0] == ("SCMP_ARCH_X86_64", ("SCMP_ARCH_X86", "SCMP_ARCH_X32"))
    allowed = p.rules[0]
    assert allowed.action == "SCMP_ACT_ALLOW" and len(allowed.names) == 346
    assert {"read", "close_range", "futex_waitv"} <= set(allowed.names)
    assert not {"mount", "unshare", "keyctl", "kexec_load", "reboot"} & set(allowed.names)
    clone3 = [r for r in p.rules if r.names == ("clone3",) and r.action == "SCMP_ACT_ERRNO"]
    assert clone3[0].errno_ret == 38 and clone3[0].excludes.caps == ("CAP_SYS_ADMIN",)


def test_select_follows_capabilities_arch_and_kernel() -> None:
    p = sc.default_profile()
    arches, rules = sc.select(p, caps.DEFAULT, kernel=KERNEL)
    assert arches == ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32")
    names = {n for r in rules for n in r.names}
    assert "mount" not in names and "arch_prctl" in names and "set_tls" not in names
    assert "ptrace" in names  # minKernel 4.8
    _, old = sc.select(p, caps.DEFAULT, kernel="4.4.0")
    assert not any(r.names == ("ptrace",) for r in old)
    _, admin = sc.select(p, [*caps.DEFAULT, "CAP_SYS_ADMIN"], kernel=KERNEL)
    assert any("mount" in r.names for r in admin)
    # the clone rule with the namespace mask is excluded once CAP_SYS_ADMIN is held
    assert not any(r.names == ("clone",) and r.args for r in admin)


def test_option_and_parse_errors() -> None:
    assert sc.option(None) is None and sc.option(["no-new-privileges"]) is None
    assert sc.option(["seccomp=unconfined"]) == "unconfined" == sc.option(["seccomp:unconfined"])
    assert sc.option(['seccomp={"defaultAction":"SCMP_ACT_ALLOW"}']) == '{"defaultAction":"SCMP_ACT_ALLOW"}'
    assert sc.option([], privileged=True) == "unconfined"
    for bad in ("{", '{"defaultAction": "SCMP_ACT_NOPE"}', '{"syscalls": [{"name": "a", "names": ["b"]}]}'):
        with pytest.raises(InvalidInput, match="Decoding seccomp profile failed"):
            sc.parse(bad)
    with pytest.raises(InvalidInput, match="opening seccomp profile"):
        sc.program("/nonexistent/profile.json", privileged=False, cap_mask=caps.DEFAULT_MASK)


# -- decisions of the compiled default profile ---------------------------------------------------
def test_default_program_shape_and_cache() -> None:
    prog = sc.program(None, privileged=False, cap_mask=caps.DEFAULT_MASK)
    assert prog is not None
    check_shape(prog)
    assert sc.program(None, privileged=False, cap_mask=caps.DEFAULT_MASK) is prog  # cached
    assert sc.program(None, privileged=True, cap_mask=caps.DEFAULT_MASK) is None
    assert sc.program("unconfined", privileged=False, cap_mask=caps.DEFAULT_MASK) is None


def test_default_program_is_cheap() -> None:
    p = sc.default_profile()
    start = time.perf_counter()
    for _ in range(10):
        sc.compile_profile(p, caps.DEFAULT, kernel=KERNEL)
    assert (time.perf_counter() - start) / 10 < 0.01  # ~1 ms on the VM; generous for slow CI


@pytest.mark.parametrize(
    ("name", "args", "plain", "with_sys_admin"),
    [
        ("read", (), ALLOW, ALLOW),
        ("execve", (), ALLOW, ALLOW),
        ("mount", (), EPERM, ALLOW),
        ("unshare", (CLONE_NEWNS,), EPERM, ALLOW),
        ("setns", (), EPERM, ALLOW),
        ("keyctl", (), EPERM, EPERM),
        ("kexec_load", (), EPERM, EPERM),
        ("reboot", (), EPERM, EPERM),
        ("clone", (SIGCHLD_FORK,), ALLOW, ALLOW),
        ("clone", (SIGCHLD_FORK | CLONE_NEWUSER,), EPERM, ALLOW),
        ("clone", (CLONE_NEWNET,), EPERM, ALLOW),
        ("clone", (1 << 32 | CLONE_NEWNS,), EPERM, ALLOW),  # the low word decides the mask
        ("clone3", (), ENOSYS, ALLOW),
        ("personality", (0,), ALLOW, ALLOW),
        ("personality", (0x0008,), ALLOW, ALLOW),
        ("personality", (0x20008,), ALLOW, ALLOW),
        ("personality", (0xFFFFFFFF,), ALLOW, ALLOW),
        ("personality", (0x1_FFFFFFFF,), EPERM, EPERM),  # a 64-bit compare: the high word counts
        ("personality", (0x0400000,), EPERM, EPERM),  # READ_IMPLIES_EXEC
        ("futex_waitv", (), ALLOW, ALLOW),  # 449, the highest the profile names
        ("ptrace", (), ALLOW, ALLOW),
        ("bpf", (), EPERM, ALLOW),
    ],
)
def test_default_decisions_x86_64(name: str, args: tuple[int, ...], plain: int, with_sys_admin: int) -> None:
    assert run_bpf(default(), X86_64[name], args=args) == plain
    assert run_bpf(default("CAP_SYS_ADMIN"), X86_64[name], args=args) == with_sys_admin


def test_capability_includes() -> None:
    for cap, name in [
        ("CAP_SYS_BOOT", "reboot"),
        ("CAP_SYS_MODULE", "init_module"),
        ("CAP_SYS_TIME", "settimeofday"),
    ]:
        assert run_bpf(default(), X86_64[name]) == EPERM
        assert run_bpf(default(cap), X86_64[name]) == ALLOW


def test_unknown_and_newer_syscalls() -> None:
    prog = default()
    assert run_bpf(prog, 450) == ENOSYS  # newer than anything the profile names (runc's stub)
    assert run_bpf(prog, 1000) == ENOSYS
    assert run_bpf(prog, 0x3FFFFFFF) == ENOSYS
    assert run_bpf(prog, X86_64["kexec_file_load"]) == EPERM  # known, not allowed


def test_other_abis() -> None:
    prog = default()
    assert run_bpf(prog, I386["read"], sc.AUDIT_ARCH_I386) == ALLOW
    assert run_bpf(prog, I386["mmap2"], sc.AUDIT_ARCH_I386) == ALLOW  # an i386-only name
    assert run_bpf(prog, I386["mount"], sc.AUDIT_ARCH_I386) == EPERM
    assert run_bpf(prog, I386["clone"], sc.AUDIT_ARCH_I386, (CLONE_NEWUSER,)) == EPERM
    assert run_bpf(prog, X32["read"] | X32_SYSCALL_BIT) == ALLOW
    assert run_bpf(prog, X32["mount"] | X32_SYSCALL_BIT) == EPERM
    assert run_bpf(prog, X32_SYSCALL_BIT | 4000) == ENOSYS
    assert run_bpf(prog, 0, 0xC00000B7) == sc.SECCOMP_RET_KILL_PROCESS  # aarch64: not ours


# -- custom profiles ------------------------------------------------------------------------------
def _custom(rules: list[dict[str, object]], **top: object) -> bytes:
    profile = sc.parse(json.dumps({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": rules, **top}))
    prog = sc.compile_profile(profile, caps.DEFAULT, kernel=KERNEL)
    check_shape(prog)
    return prog


OPS = {
    "SCMP_CMP_EQ": lambda a, v, _t: a == v,
    "SCMP_CMP_NE": lambda a, v, _t: a != v,
    "SCMP_CMP_LT": lambda a, v, _t: a < v,
    "SCMP_CMP_LE": lambda a, v, _t: a <= v,
    "SCMP_CMP_GT": lambda a, v, _t: a > v,
    "SCMP_CMP_GE": lambda a, v, _t: a >= v,
    "SCMP_CMP_MASKED_EQ": lambda a, v, t: a & v == t,
}


@pytest.mark.parametrize("op", sorted(OPS))
def test_argument_operators_are_64_bit_unsigned(op: str) -> None:
    rnd = random.Random(op)
    edges = [0, 1, 0xFFFFFFFF, 1 << 32, (1 << 32) + 5, (1 << 64) - 1, 0x7FFFFFFF_00000000]
    for _ in range(30):
        value = rnd.choice(edges + [rnd.getrandbits(64), rnd.getrandbits(33)])
        two = rnd.choice([0, value & 0xF0F0, rnd.getrandbits(64)])
        prog = _custom(
            [
                {
                    "names": ["read"],
                    "action": "SCMP_ACT_ALLOW",
                    "args": [{"index": 2, "value": value, "valueTwo": two, "op": op}],
                },
            ]  # fmt: skip
        )
        for arg in [value, value + 1, value - 1, value ^ 1 << 40, value ^ 1, 0, (1 << 64) - 1, *edges]:
            arg &= (1 << 64) - 1
            want = ALLOW if OPS[op](arg, value, two) else EPERM
            assert run_bpf(prog, X86_64["read"], args=(0, 0, arg)) == want, (op, hex(value), hex(arg))


def test_rules_are_anded_within_and_ored_across() -> None:
    prog = _custom(
        [
            {"names": ["write"], "action": "SCMP_ACT_ALLOW", "args": [
                {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}, {"index": 2, "value": 10, "op": "SCMP_CMP_LT"}]},
            {"names": ["write"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13, "args": [
                {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}]},
            {"names": ["getpid"], "action": "SCMP_ACT_KILL_PROCESS"},
            {"names": ["mmap2", "no_such_call"], "action": "SCMP_ACT_ALLOW"},
        ],
        defaultErrnoRet=38,
    )  # fmt: skip
    w = X86_64["write"]
    assert run_bpf(prog, w, args=(1, 0, 9)) == ALLOW
    assert run_bpf(prog, w, args=(1, 0, 10)) == sc.SECCOMP_RET_ERRNO | 38  # the default
    assert run_bpf(prog, w, args=(2, 0, 0)) == sc.SECCOMP_RET_ERRNO | 13
    assert run_bpf(prog, X86_64["getpid"]) == sc.SECCOMP_RET_KILL_PROCESS
    assert run_bpf(prog, X86_64["read"]) == sc.SECCOMP_RET_ERRNO | 38


def test_long_allow_lists_stay_within_jump_range() -> None:
    everything = sorted(X86_64)
    prog = _custom([{"names": everything, "action": "SCMP_ACT_ALLOW"}], architectures=["SCMP_ARCH_X86_64"])
    assert all(run_bpf(prog, X86_64[n]) == ALLOW for n in everything)
    assert run_bpf(prog, I386["read"], sc.AUDIT_ARCH_I386) == sc.SECCOMP_RET_KILL_PROCESS  # not listed


def test_allow_by_default_profile() -> None:
    prog = _custom(
        [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}], defaultAction="SCMP_ACT_ALLOW"
    )
    assert run_bpf(prog, X86_64["mkdir"]) == EPERM
    assert run_bpf(prog, X86_64["read"]) == ALLOW
    assert run_bpf(prog, 1000) == ALLOW  # no ENOSYS stub when everything else is allowed


# -- what create records --------------------------------------------------------------------------
def test_create_reads_the_profile_file_like_the_docker_cli(tmp_path: Any) -> None:
    from minidocker.container.create import RunOptions, host_config
    from minidocker.container.hostconfig import seccomp_profile

    path = tmp_path / "p.json"
    path.write_text('{\n  "defaultAction": "SCMP_ACT_ALLOW",\n  "syscalls": []\n}\n')
    hc = host_config(RunOptions(image="x", security_opt=[f"seccomp={path}"]), cgroup_v2=False)
    assert hc.security_opt == ['seccomp={"defaultAction":"SCMP_ACT_ALLOW","syscalls":[]}']
    assert seccomp_profile(hc) == '{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[]}'
    plain = host_config(RunOptions(image="x"), cgroup_v2=False)
    assert seccomp_profile(plain) == ""
    unconfined = host_config(RunOptions(image="x", security_opt=["seccomp=unconfined"]), cgroup_v2=False)
    assert seccomp_profile(unconfined) == "unconfined"
    privileged = host_config(RunOptions(image="x", privileged=True), cgroup_v2=False)
    assert seccomp_profile(privileged) == "" and sc.option(privileged.security_opt, True) == "unconfined"
    with pytest.raises(InvalidInput, match=r"opening seccomp profile \(/nope.json\) failed: no such file"):
        host_config(RunOptions(image="x", security_opt=["seccomp=/nope.json"]), cgroup_v2=False)


# -- the compiled default filter kept in the exec root (namespaces.process) ----------------------
def test_default_filter_is_compiled_once_then_read_from_the_cache(tmp_path, monkeypatch) -> None:
    from minidocker.namespaces import process

    monkeypatch.setattr(process, "_default_filters", {})
    cache = tmp_path / "seccomp"
    process.prepare_default_filter(str(cache))
    [(mask, program)] = process._default_filters.items()
    assert program == sc.program(None, privileged=False, cap_mask=mask)
    [saved] = cache.iterdir()
    assert saved.name == process._filter_cache_name(mask) and saved.read_bytes() == program
    # a later monitor reads the file instead of compiling: a shortened copy proves which one it used
    monkeypatch.setattr(process, "_default_filters", {})
    saved.write_bytes(program[:-8])
    process.prepare_default_filter(str(cache))
    assert process._default_filters[mask] == program[:-8]
    # a damaged file (not whole 8-byte instructions) is compiled again and replaced
    monkeypatch.setattr(process, "_default_filters", {})
    saved.write_bytes(b"xyz")
    process.prepare_default_filter(str(cache))
    assert process._default_filters[mask] == program and saved.read_bytes() == program


def test_default_filter_cache_name_follows_caps_and_compiler_sources(monkeypatch) -> None:
    import os

    from minidocker.namespaces import process

    name = process._filter_cache_name(caps.DEFAULT_MASK)
    assert name.startswith("seccomp-") and name.endswith(".bpf")
    assert process._filter_cache_name(caps.DEFAULT_MASK) == name
    assert process._filter_cache_name(caps.DEFAULT_MASK | 1 << 21) != name  # CAP_SYS_ADMIN added
    real_stat = os.stat

    def edited(path: str, *args: Any, **kw: Any) -> Any:
        st = real_stat(path, *args, **kw)
        if str(path).endswith("seccomp_default.py"):  # the profile was edited (or upgraded)
            return SimpleNamespace(st_size=st.st_size, st_mtime_ns=st.st_mtime_ns + 1)
        return st

    monkeypatch.setattr(process.os, "stat", edited)
    assert process._filter_cache_name(caps.DEFAULT_MASK) != name
