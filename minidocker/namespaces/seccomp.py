"""Docker's seccomp profile: parse it, evaluate it for a container, compile it to classic BPF.

Every Docker container runs under a system call filter unless it is ``--privileged`` or started
with ``--security-opt seccomp=unconfined``: Docker 20.10's default profile (``seccomp_default``)
allows about 350 calls and answers EPERM to the rest (``mount``, ``unshare``, ``keyctl``,
``kexec_load``, ``clone`` with namespace flags...), unless the container holds the capability that
makes them legitimate (CAP_SYS_ADMIN brings back ``mount``, ``unshare``, ``setns``...)::

    >>> prog = program(None, privileged=False, cap_mask=caps.DEFAULT_MASK)   # cached per cap set
    >>> len(prog) // 8 < 512                                   # sock_filter instructions
    True
    >>> program("unconfined", privileged=False, cap_mask=caps.DEFAULT_MASK) is None
    True

What the daemon and runc do, step by step, and where it is here:

1. ``select`` (moby ``setupSeccomp``): keep the rules whose ``includes`` hold (arch, capabilities
   in the container's bounding set, minimum kernel) and whose ``excludes`` do not; the filter's
   architectures are the native one and its ``archMap`` sub-ABIs (x86_64: also i386 and x32).
2. ``compile_profile`` (libseccomp, plus runc's patch): the BPF program. Per audit architecture: load
   ``seccomp_data.nr``; a number above the highest one the profile names is ENOSYS (runc 1.0+: a
   syscall newer than the profile must look unimplemented, so that libc falls back, as glibc does
   from ``clone3`` to ``clone``); then one comparison per system call, argument checks for the
   conditional rules, and the default action. Another architecture is killed.
3. ``kernel.seccomp.set_mode_filter`` in the container's process, where runc does it: right before
   dropping capabilities when no_new_privs is off (loading needs CAP_SYS_ADMIN then), else as late as
   possible, just before ``execve``.

Classic BPF has 32-bit registers: a 64-bit argument is compared as two words (high, then low).
Conditional jumps reach at most 255 instructions ahead, so the allow list is emitted in chunks,
each ending in its own ``ret ALLOW``.
"""

from __future__ import annotations

import functools
import json
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from minidocker.errors import InvalidInput
from minidocker.namespaces import caps, syscalls_x86

# linux/filter.h (classic BPF) opcodes we emit
BPF_LD_W_ABS = 0x20  # A = seccomp_data[k] (32 bits)
BPF_ALU_AND_K = 0x54  # A &= k
BPF_JA = 0x05  # pc += k
BPF_JEQ_K = 0x15  # pc += (A == k) ? jt : jf
BPF_JGT_K = 0x25
BPF_JGE_K = 0x35
BPF_RET_K = 0x06  # return k

# struct seccomp_data offsets
OFF_NR = 0
OFF_ARCH = 4
OFF_ARGS = 16  # args[i] at 16 + 8 i, little-endian on x86 (low word first)

# linux/seccomp.h return values (the action is in the high 16 bits, data in the low 16)
SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_KILL_THREAD = 0x00000000
SECCOMP_RET_TRAP = 0x00030000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_TRACE = 0x7FF00000
SECCOMP_RET_LOG = 0x7FFC0000
SECCOMP_RET_ALLOW = 0x7FFF0000

# linux/audit.h: seccomp_data.arch
AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_I386 = 0x40000003

EPERM = 1
ENOSYS = 38
_CHUNK = 200  # unconditional comparisons per chunk: every jump to the chunk's ret stays <= 255


@dataclass(frozen=True)
class _Abi:
    """One architecture a filter covers: its audit arch and syscall table."""

    audit_arch: int
    table: dict[str, int]
    nr_bit: int = 0  # x32 numbers carry X32_SYSCALL_BIT


# libseccomp's names of the ABIs we have tables for (all x86: the only tables we carry)
ABIS: dict[str, _Abi] = {
    "SCMP_ARCH_X86_64": _Abi(AUDIT_ARCH_X86_64, syscalls_x86.X86_64),
    "SCMP_ARCH_X32": _Abi(AUDIT_ARCH_X86_64, syscalls_x86.X32, syscalls_x86.X32_SYSCALL_BIT),
    "SCMP_ARCH_X86": _Abi(AUDIT_ARCH_I386, syscalls_x86.I386),
}
# machine → (Go's name, used by includes/excludes "arches"; libseccomp's name of the native ABI)
_NATIVE = {"x86_64": ("amd64", "SCMP_ARCH_X86_64")}
# fmt: off
_OPS = {
    "SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ",
}
# fmt: on


# -- the profile ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Arg:
    """One argument condition: ``args[index] <op> value`` (MASKED_EQ: ``args[index] & value == value_two``)."""

    index: int
    value: int
    value_two: int = 0
    op: str = "SCMP_CMP_EQ"


@dataclass(frozen=True)
class Filter:
    """``includes``/``excludes`` of a rule: architectures (Go names), capabilities, minimum kernel."""

    arches: tuple[str, ...] = ()
    caps: tuple[str, ...] = ()
    min_kernel: str = ""


@dataclass(frozen=True)
class Rule:
    """One ``syscalls`` entry of a profile: names, action, conditions."""

    names: tuple[str, ...]
    action: str
    errno_ret: int | None = None
    args: tuple[Arg, ...] = ()
    includes: Filter = field(default_factory=Filter)
    excludes: Filter = field(default_factory=Filter)


@dataclass(frozen=True)
class Profile:
    """A parsed seccomp profile (Docker's JSON format)."""

    default_action: str
    default_errno: int | None = None
    architectures: tuple[str, ...] = ()
    arch_map: tuple[tuple[str, tuple[str, ...]], ...] = ()
    rules: tuple[Rule, ...] = ()


def _filter(d: Any) -> Filter:
    d = d or {}
    return Filter(tuple(d.get("arches") or ()), tuple(d.get("caps") or ()), str(d.get("minKernel") or ""))


def parse(text: str, *, source: str = "") -> Profile:
    """A profile in Docker's JSON format (``docker run --security-opt seccomp=file.json``)."""
    try:
        d = json.loads(text)
        rules = []
        for s in d.get("syscalls") or []:
            if s.get("name") and s.get("names"):
                raise ValueError(
                    "'name' and 'names' were specified in the seccomp profile, use either 'name' or 'names'"
                )
            names = tuple(s.get("names") or ([s["name"]] if s.get("name") else []))
            args = tuple(
                Arg(int(a["index"]), int(a.get("value") or 0), int(a.get("valueTwo") or 0), str(a["op"]))
                for a in s.get("args") or []
            )
            for a in args:
                if a.op not in _OPS or not 0 <= a.index < 6:
                    raise ValueError(f"unsupported argument condition {a.op} on args[{a.index}]")
            rules.append(
                Rule(
                    names,
                    str(s.get("action") or ""),
                    s.get("errnoRet"),
                    args,
                    _filter(s.get("includes")),
                    _filter(s.get("excludes")),
                )
            )
        if d.get("architectures") and d.get("archMap"):
            raise ValueError(
                "'architectures' and 'archMap' were specified in the seccomp profile, use either"
            )
        arch_map = tuple(
            (str(a["architecture"]), tuple(a.get("subArchitectures") or ())) for a in d.get("archMap") or []
        )
        profile = Profile(
            str(d.get("defaultAction") or ""),
            d.get("defaultErrnoRet"),
            tuple(d.get("architectures") or ()),
            arch_map,
            tuple(rules),
        )
        for action, errno_ret in [(profile.default_action, None)] + [(r.action, r.errno_ret) for r in rules]:
            _ret(action, errno_ret)  # unknown actions fail here, not in the container
    except (ValueError, KeyError, TypeError, AttributeError, InvalidInput) as e:
        raise InvalidInput(f"Decoding seccomp profile failed: {e}", subject=source or None) from None
    return profile


@functools.cache
def default_profile() -> Profile:
    """Docker 20.10's default profile (parsed once per process)."""
    from minidocker.namespaces.seccomp_default import DEFAULT_JSON

    return parse(DEFAULT_JSON, source="default")


def _ret(action: str, errno_ret: int | None) -> int:
    """A profile action as a SECCOMP_RET_* value. ERRNO and TRACE without errnoRet mean EPERM (runc)."""
    err = (EPERM if errno_ret is None else errno_ret) & 0xFFFF
    if action == "SCMP_ACT_ALLOW":
        return SECCOMP_RET_ALLOW
    if action == "SCMP_ACT_ERRNO":
        return SECCOMP_RET_ERRNO | err
    if action in ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"):
        return SECCOMP_RET_KILL_THREAD
    if action == "SCMP_ACT_KILL_PROCESS":
        return SECCOMP_RET_KILL_PROCESS
    if action == "SCMP_ACT_TRAP":
        return SECCOMP_RET_TRAP
    if action == "SCMP_ACT_TRACE":
        return SECCOMP_RET_TRACE | err
    if action == "SCMP_ACT_LOG":
        return SECCOMP_RET_LOG
    raise InvalidInput(f"unsupported seccomp action {action!r}", subject=action)


# -- step 1: what applies to this container -------------------------------------------------------
def _kernel_at_least(minimum: str, release: str) -> bool:
    def nums(v: str) -> tuple[int, ...]:
        out = []
        for part in v.split("-")[0].split(".")[:2]:
            digits = "".join(c for c in part if c.isdigit())
            out.append(int(digits or 0))
        return tuple(out)

    return nums(release) >= nums(minimum)


def select(
    profile: Profile, cap_names: Iterable[str], *, arch: str = "amd64", kernel: str | None = None
) -> tuple[tuple[str, ...], list[Rule]]:
    """moby's ``setupSeccomp``: the filter's architectures and the rules that apply to a container
    with the capability set ``cap_names`` (its bounding set) on ``arch`` (Go's name)."""
    release = kernel if kernel is not None else os.uname().release
    held = set(cap_names)
    native = {"amd64": "SCMP_ARCH_X86_64", "arm64": "SCMP_ARCH_AARCH64", "386": "SCMP_ARCH_X86"}.get(arch)
    arches: tuple[str, ...] = profile.architectures
    for name, subs in profile.arch_map:
        if name == native:
            arches = (name, *subs)
            break
    rules = []
    for r in profile.rules:
        ex, inc = r.excludes, r.includes
        if arch in ex.arches or any(c in held for c in ex.caps):
            continue
        if ex.min_kernel and _kernel_at_least(ex.min_kernel, release):
            continue
        if inc.arches and arch not in inc.arches:
            continue
        if any(c not in held for c in inc.caps):
            continue
        if inc.min_kernel and not _kernel_at_least(inc.min_kernel, release):
            continue
        rules.append(r)
    return arches, rules


# -- step 2: classic BPF --------------------------------------------------------------------------
_INSN = struct.Struct("<HBBI")  # struct sock_filter {u16 code; u8 jt; u8 jf; u32 k}


class _Asm:
    """Instructions with symbolic jump targets; ``assemble`` resolves them (conditional jumps are
    8-bit offsets: a target further than 255 instructions is a bug of the layout, not of the input).
    ``raw`` appends instructions already encoded, whose jumps stay inside themselves."""

    def __init__(self) -> None:
        self.ins: list[tuple[int, int | str, int | str, int | str] | bytes] = []
        self.labels: dict[str, int] = {}
        self.pc = 0
        self._n = 0

    def new(self) -> str:
        self._n += 1
        return f"L{self._n}"

    def label(self, name: str) -> None:
        self.labels[name] = self.pc

    def op(self, code: int, k: int | str = 0, jt: int | str = 0, jf: int | str = 0) -> None:
        self.ins.append((code, jt, jf, k))
        self.pc += 1

    def raw(self, code: bytes) -> None:
        self.ins.append(code)
        self.pc += len(code) // 8

    def ld(self, offset: int) -> None:
        self.op(BPF_LD_W_ABS, offset)

    def ret(self, value: int) -> None:
        self.op(BPF_RET_K, value)

    def assemble(self) -> bytes:
        out = []
        i = 0
        labels = self.labels
        for insn in self.ins:
            if isinstance(insn, bytes):
                out.append(insn)
                i += len(insn) // 8
                continue
            code, jt, jf, k = insn
            t = labels[jt] - i - 1 if isinstance(jt, str) else jt
            f = labels[jf] - i - 1 if isinstance(jf, str) else jf
            kk = labels[k] - i - 1 if isinstance(k, str) else k
            if not (0 <= t <= 255 and 0 <= f <= 255 and kk >= 0):
                raise AssertionError(f"seccomp BPF: jump out of range at {i}: {t} {f} {kk}")
            out.append(_INSN.pack(code, t, f, kk & 0xFFFFFFFF))
            i += 1
        return b"".join(out)


def _any_of(nrs: list[int], ret: int) -> bytes:
    """``if nr in nrs: return ret`` for up to 255 numbers: one ``jeq`` each, jumping over the
    closing ``ja +1`` to the ``ret``."""
    n = len(nrs)
    pack = _INSN.pack
    body = [pack(BPF_JEQ_K, n - i, 0, nr) for i, nr in enumerate(nrs)]
    body.append(pack(BPF_JA, 0, 0, 1))
    body.append(pack(BPF_RET_K, 0, 0, ret))
    return b"".join(body)


def _arg_check(a: _Asm, arg: Arg, fail: str) -> None:
    """Fall through when ``args[arg.index] <op> value`` holds (64-bit, unsigned), else jump to ``fail``."""
    hi_off, lo_off = OFF_ARGS + 8 * arg.index + 4, OFF_ARGS + 8 * arg.index
    v_hi, v_lo = arg.value >> 32 & 0xFFFFFFFF, arg.value & 0xFFFFFFFF
    ok = a.new()
    if arg.op == "SCMP_CMP_MASKED_EQ":
        t_hi, t_lo = arg.value_two >> 32 & 0xFFFFFFFF, arg.value_two & 0xFFFFFFFF
        a.ld(hi_off)
        a.op(BPF_ALU_AND_K, v_hi)
        a.op(BPF_JEQ_K, t_hi, 0, fail)
        a.ld(lo_off)
        a.op(BPF_ALU_AND_K, v_lo)
        a.op(BPF_JEQ_K, t_lo, 0, fail)
    elif arg.op in ("SCMP_CMP_EQ", "SCMP_CMP_NE"):
        eq, ne = (0, fail) if arg.op == "SCMP_CMP_EQ" else (fail, ok)
        a.ld(hi_off)
        a.op(BPF_JEQ_K, v_hi, 0, fail if arg.op == "SCMP_CMP_EQ" else ok)
        a.ld(lo_off)
        a.op(BPF_JEQ_K, v_lo, eq, ne)
    else:  # GT, GE, LT, LE: decide on the high word unless equal, then on the low word
        greater = arg.op in ("SCMP_CMP_GT", "SCMP_CMP_GE")
        above, below = (0, fail) if greater else (fail, 0)
        a.ld(hi_off)
        a.op(BPF_JGT_K, v_hi, ok if greater else fail, 0)
        a.op(BPF_JEQ_K, v_hi, 0, fail if greater else ok)
        a.ld(lo_off)
        cmp = BPF_JGT_K if arg.op in ("SCMP_CMP_GT", "SCMP_CMP_LE") else BPF_JGE_K
        a.op(cmp, v_lo, *(above, below))
    a.label(ok)


def _section(a: _Asm, abi: _Abi, rules: list[Rule], default: int) -> None:
    """The comparisons for one ABI; ``A`` holds ``seccomp_data.nr``. Ends in a ``ret``."""
    by_nr: dict[int, list[tuple[tuple[Arg, ...], int]]] = {}
    for r in rules:
        ret = _ret(r.action, r.errno_ret)
        for name in r.names:
            nr = abi.table.get(name)
            if nr is not None:  # a name of another ABI (mmap2, socketcall...): not callable here
                by_nr.setdefault(nr | abi.nr_bit, []).append((r.args, ret))
    if not by_nr:
        a.ret(default)
        return
    if default not in (SECCOMP_RET_ALLOW, SECCOMP_RET_LOG):
        # runc's ENOSYS stub: newer than anything the profile names = "not implemented"
        a.op(BPF_JGT_K, max(by_nr), 0, 1)
        a.ret(SECCOMP_RET_ERRNO | ENOSYS)
    plain: dict[int, list[int]] = {}
    conditional: dict[int, list[tuple[tuple[Arg, ...], int]]] = {}
    for nr, entries in sorted(by_nr.items()):
        if len(entries) == 1 and not entries[0][0] or all(not args for args, _ in entries):
            plain.setdefault(entries[0][1], []).append(nr)
        else:
            # specific first: conditional entries, then the first unconditional one (a catch-all)
            conditional[nr] = [e for e in entries if e[0]] + [e for e in entries if not e[0]][:1]
    for ret, nrs in plain.items():
        for start in range(0, len(nrs), _CHUNK):
            a.raw(_any_of(nrs[start : start + _CHUNK], ret))
    for nr, entries in conditional.items():
        after = a.new()
        a.op(BPF_JEQ_K, nr, 0, after)
        for args, ret in entries:
            nxt = a.new()
            for arg in args:
                _arg_check(a, arg, nxt)
            a.ret(ret)
            a.label(nxt)
        if entries[-1][0]:
            a.ret(default)
        a.label(after)
    a.ret(default)


def compile_profile(
    profile: Profile, cap_names: Iterable[str], *, arch: str = "amd64", kernel: str | None = None
) -> bytes:
    """The BPF program of ``profile`` for a container holding ``cap_names`` (x86 ABIs only)."""
    arches, rules = select(profile, cap_names, arch=arch, kernel=kernel)
    if not arches:
        arches = ("SCMP_ARCH_X86_64",) if arch == "amd64" else ()
    default = _ret(profile.default_action, profile.default_errno)
    abis = {name: ABIS[name] for name in arches if name in ABIS}
    if not abis:
        raise InvalidInput(f"seccomp: no system call table for {', '.join(arches) or arch}", subject=arch)
    a = _Asm()
    a.ld(OFF_ARCH)
    entries: dict[int, str] = {}
    for abi in abis.values():
        if abi.audit_arch not in entries:
            entries[abi.audit_arch] = a.new()
            a.op(BPF_JEQ_K, abi.audit_arch, 0, 1)
            a.op(BPF_JA, entries[abi.audit_arch])
    a.ret(SECCOMP_RET_KILL_PROCESS)  # an ABI the filter does not know: libseccomp's "bad arch"
    for audit_arch, label in entries.items():
        a.label(label)
        a.ld(OFF_NR)
        same = [abi for abi in abis.values() if abi.audit_arch == audit_arch]
        wide = next((abi for abi in same if abi.nr_bit), None)  # x32, sharing x86_64's audit arch
        narrow = next((abi for abi in same if not abi.nr_bit), None)
        if wide is not None:
            to_wide = a.new()
            a.op(BPF_JGE_K, wide.nr_bit, 0, 1)
            a.op(BPF_JA, to_wide)
        if narrow is not None:
            _section(a, narrow, rules, default)
        else:
            a.ret(SECCOMP_RET_KILL_PROCESS)
        if wide is not None:
            a.label(to_wide)
            _section(a, wide, rules, default)
    return a.assemble()


# -- what a container gets ------------------------------------------------------------------------
def load_profile_option(value: str) -> Profile:
    """``--security-opt seccomp=VALUE``: JSON text (what the docker CLI stores) or a file path."""
    if value.lstrip().startswith("{"):
        return parse(value, source="security-opt")
    try:
        with open(value, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        why = e.strerror.lower() if e.strerror else str(e)
        raise InvalidInput(f"opening seccomp profile ({value}) failed: {why}", subject=value) from None
    return parse(text, source=value)


@functools.lru_cache(maxsize=32)
def program(profile: str | None, *, privileged: bool, cap_mask: int) -> bytes | None:
    """The filter a container gets, or None for none: ``profile`` None = Docker's default,
    "unconfined" = no filter, else a profile (JSON text or path). ``--privileged`` is unconfined,
    as with Docker. Cached: built once per (profile, capability set) in a process.

    On a machine we carry no system call table for, the default profile is skipped (None) and a
    custom one is refused.
    """
    if privileged or profile == "unconfined":
        return None
    native = _NATIVE.get(os.uname().machine)
    if native is None:
        if profile is None:
            return None
        raise InvalidInput(f"seccomp profiles are not supported on {os.uname().machine}", subject=profile)
    parsed = default_profile() if profile is None else load_profile_option(profile)
    if not parsed.default_action and not parsed.rules:
        return None  # moby: no default action and no rules = seccomp disabled
    return compile_profile(parsed, caps.names_of(cap_mask), arch=native[0])


def option(security_opt: Iterable[str] | None, privileged: bool = False) -> str | None:
    """The profile a HostConfig's ``SecurityOpt`` asks for (``ProcessSpec.seccomp``): None for
    Docker's default, "unconfined", or the profile's JSON text. ``--privileged`` is "unconfined".

    >>> option(["seccomp=unconfined"]), option(["no-new-privileges"]), option([], privileged=True)
    ('unconfined', None, 'unconfined')
    """
    if privileged:
        return "unconfined"
    chosen = None
    for so in security_opt or []:
        sep = "=" if "=" in so else ":"
        key, _, value = so.partition(sep)
        if key == "seccomp":
            chosen = value
    return chosen or None
