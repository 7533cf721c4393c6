"""Device filtering on cgroup v2: the device rules compiled to an eBPF program, as runc does it.

v1 has ``devices.allow``; v2 asks a ``BPF_PROG_TYPE_CGROUP_DEVICE`` program attached to the cgroup.
The kernel calls it for every ``open(2)`` and ``mknod(2)`` of a device node by a task in the cgroup
(or below), with a pointer to::

    struct bpf_cgroup_dev_ctx {
        u32 access_type;   /* (access << 16) | type; type 1 = block, 2 = char;
                              access bits: 1 = mknod, 2 = read, 4 = write */
        u32 major;
        u32 minor;
    };

and the program returns 1 (allow) or 0 (the syscall fails with EPERM). Ours is runc's
(``libcontainer/cgroups/devices/devicefilter.go``): load the three fields into registers, then one
block per rule that jumps to the next block as soon as something does not match, and otherwise
returns the rule's verdict; after the last block, the default (deny)::

    >>> for insn in device_filter([DeviceRule.parse("c 1:3 rw")]): print(insn)
    r2 = *(u32 *)(r1 + 0)
    w2 &= 65535
    r3 = *(u32 *)(r1 + 0)
    w3 >>= 16
    r4 = *(u32 *)(r1 + 4)
    r5 = *(u32 *)(r1 + 8)
    if r2 != 2 goto +7
    w1 = w3
    w1 &= 6
    if r1 != r3 goto +4
    if r4 != 1 goto +3
    if r5 != 3 goto +2
    w0 = 1
    exit
    w0 = 0
    exit

The access test is "every requested bit is allowed" (``access & rule == access``): an ``open(O_RDWR)``
asks for read and write at once and must not pass on an ``r`` rule. Rules are tried in order, the
first match decides; for Docker's list (deny everything, then allow rules) that is exactly what v1
does. Attaching (``attach``) is ``bpf(BPF_PROG_LOAD)`` then ``bpf(BPF_PROG_ATTACH)`` on the cgroup
directory (``minidocker.kernel.bpf``); the attachment lives as long as the cgroup: ``rmdir`` frees it.
"""

from __future__ import annotations

import errno
import os
import struct
import sys
from collections.abc import Iterable, Sequence

from minidocker.cgroups.base import CgroupWriteError
from minidocker.cgroups.devices import DEFAULT_ALLOWED_DEVICES, DeviceRule
from minidocker.kernel import bpf
from minidocker.record import FrozenRecord, record

# linux/bpf_common.h + linux/bpf.h: an opcode is class | operation | source
BPF_LDX, BPF_ALU, BPF_JMP = 0x01, 0x04, 0x05  # classes (ALU is the 32-bit one, writes wN)
BPF_W, BPF_MEM = 0x00, 0x60  # load size and mode
BPF_AND, BPF_RSH, BPF_MOV = 0x50, 0x70, 0xB0  # ALU operations
BPF_JEQ, BPF_JNE, BPF_EXIT = 0x10, 0x50, 0x90  # JMP operations
BPF_K, BPF_X = 0x00, 0x08  # source: the immediate or the src register

# the kernel's bpf_cgroup_dev_ctx values (linux/bpf.h BPF_DEVCG_*)
DEV_BLOCK, DEV_CHAR = 1, 2
ACC_MKNOD, ACC_READ, ACC_WRITE = 1, 2, 4
_TYPES = {"b": DEV_BLOCK, "c": DEV_CHAR}
_ACCESS = {"m": ACC_MKNOD, "r": ACC_READ, "w": ACC_WRITE}
_ALL_ACCESS = ACC_MKNOD | ACC_READ | ACC_WRITE

# registers: r1 = the context pointer on entry (then a scratch), r0 = the verdict
R0, R1, R2, R3, R4, R5 = range(6)


@record(frozen=True)
class Insn(FrozenRecord):
    """One eBPF instruction: ``struct bpf_insn {u8 code; u8 dst:4, src:4; s16 off; s32 imm;}``."""

    code: int
    dst: int = 0
    src: int = 0
    off: int = 0  # jumps: relative to the NEXT instruction; loads: byte offset from src
    imm: int = 0

    def encode(self) -> bytes:
        """The 8 bytes the kernel reads (register nibbles follow the bitfield order of the host).

        >>> Insn(BPF_JMP | BPF_JNE | BPF_K, dst=R2, off=4, imm=2).encode().hex()
        '5502040002000000'
        """
        if sys.byteorder == "little":
            return struct.pack("<BBhi", self.code, (self.src << 4) | self.dst, self.off, self.imm)
        return struct.pack(">BBhi", self.code, (self.dst << 4) | self.src, self.off, self.imm)

    def __str__(self) -> str:
        """The instruction in the kernel verifier's notation (what ``bpftool prog dump`` prints)."""
        c, d, s = self.code, self.dst, self.src
        if c == BPF_LDX | BPF_MEM | BPF_W:
            return f"r{d} = *(u32 *)(r{s} + {self.off})"
        if c == BPF_ALU | BPF_MOV | BPF_K:
            return f"w{d} = {self.imm}"
        if c == BPF_ALU | BPF_MOV | BPF_X:
            return f"w{d} = w{s}"
        if c == BPF_ALU | BPF_AND | BPF_K:
            return f"w{d} &= {self.imm}"
        if c == BPF_ALU | BPF_RSH | BPF_K:
            return f"w{d} >>= {self.imm}"
        if c in (BPF_JMP | BPF_JNE | BPF_K, BPF_JMP | BPF_JEQ | BPF_K):
            op = "!=" if c & 0xF0 == BPF_JNE else "=="
            return f"if r{d} {op} {self.imm} goto {self.off:+d}"
        if c == BPF_JMP | BPF_JNE | BPF_X:
            return f"if r{d} != r{s} goto {self.off:+d}"
        if c == BPF_JMP | BPF_EXIT:
            return "exit"
        return f"(code {c:#04x} dst r{d} src r{s} off {self.off} imm {self.imm})"


def _ret(verdict: bool) -> list[Insn]:
    return [Insn(BPF_ALU | BPF_MOV | BPF_K, dst=R0, imm=int(verdict)), Insn(BPF_JMP | BPF_EXIT)]


def _rule_block(rule: DeviceRule) -> list[Insn]:
    """Test one rule: fall through to "return verdict" on a match, else jump past the block."""
    # a tuple is a conditional jump to the end of the block: (code, dst, src register or immediate),
    # its offset known only once the block is complete
    block: list[Insn | tuple[int, int, int]] = []
    if rule.type != "a":
        block.append((BPF_JMP | BPF_JNE | BPF_K, R2, _TYPES[rule.type]))
    access = 0
    for letter in rule.access:
        access |= _ACCESS[letter]
    if access != _ALL_ACCESS:  # rwm allows any request: no test needed
        # w1 = requested & allowed; a request with a bit outside the rule leaves w1 != requested
        block += [
            Insn(BPF_ALU | BPF_MOV | BPF_X, dst=R1, src=R3),
            Insn(BPF_ALU | BPF_AND | BPF_K, dst=R1, imm=access),
            (BPF_JMP | BPF_JNE | BPF_X, R1, R3),
        ]
    if rule.major is not None:
        block.append((BPF_JMP | BPF_JNE | BPF_K, R4, rule.major))
    if rule.minor is not None:
        block.append((BPF_JMP | BPF_JNE | BPF_K, R5, rule.minor))
    block += _ret(rule.allow)
    out: list[Insn] = []
    for i, item in enumerate(block):
        if isinstance(item, Insn):
            out.append(item)
            continue
        code, dst, operand = item
        off = len(block) - (i + 1)  # counted from the next instruction, to the first after the block
        if code & BPF_X:
            out.append(Insn(code, dst=dst, src=operand, off=off))
        else:
            out.append(Insn(code, dst=dst, off=off, imm=operand))
    return out


def device_filter(rules: Iterable[DeviceRule], *, default_allow: bool = False) -> list[Insn]:
    """The program for ``rules`` (first match wins), returning ``default_allow`` when none matches.

    >>> prog = device_filter([])  # deny everything: 6 loads, then "return 0"
    >>> len(prog), str(prog[-2]), str(prog[-1])
    (8, 'w0 = 0', 'exit')
    """
    prog = [
        Insn(BPF_LDX | BPF_MEM | BPF_W, dst=R2, src=R1, off=0),  # access_type ...
        Insn(BPF_ALU | BPF_AND | BPF_K, dst=R2, imm=0xFFFF),  # ... its low half: the type
        Insn(BPF_LDX | BPF_MEM | BPF_W, dst=R3, src=R1, off=0),
        Insn(BPF_ALU | BPF_RSH | BPF_K, dst=R3, imm=16),  # ... its high half: the access
        Insn(BPF_LDX | BPF_MEM | BPF_W, dst=R4, src=R1, off=4),  # major
        Insn(BPF_LDX | BPF_MEM | BPF_W, dst=R5, src=R1, off=8),  # minor
    ]
    for rule in rules:
        prog += _rule_block(rule)
    return prog + _ret(default_allow)


def assemble(prog: Sequence[Insn]) -> bytes:
    """The bytes ``BPF_PROG_LOAD`` takes: the instructions back to back."""
    return b"".join(i.encode() for i in prog)


class DeviceFilterError(CgroupWriteError):
    """The kernel refused to load or attach the device program (``errno`` says why)."""


def attach(cgroup_dir: str, rules: Iterable[str | DeviceRule] = DEFAULT_ALLOWED_DEVICES) -> None:
    """Deny every device to the tasks of ``cgroup_dir`` except ``rules`` (Docker's list by default).

    Idempotent like runc's: programs this cgroup already had are detached once the new one is in
    place (never before: a cgroup must not be left without a filter in between).
    """
    parsed = [r if isinstance(r, DeviceRule) else DeviceRule.parse(r) for r in rules]
    code = assemble(device_filter(parsed))
    what = f"device filter ({len(parsed)} rules)"
    try:
        old = bpf.prog_query(cgroup_dir)
        fd = bpf.prog_load(code)
        try:
            bpf.prog_attach(cgroup_dir, fd)
        finally:
            os.close(fd)
        for prog_id in old:
            _detach_id(cgroup_dir, prog_id)
    except OSError as e:
        raise DeviceFilterError(
            f"{what} on {cgroup_dir}: {e.strerror or e}", path=cgroup_dir, value=what, err=e.errno or 0
        ) from None


def _detach_id(cgroup_dir: str, prog_id: int) -> None:
    try:
        fd = bpf.prog_get_fd_by_id(prog_id)
    except OSError as e:
        if e.errno == errno.ENOENT:  # detached and freed meanwhile
            return
        raise
    try:
        bpf.prog_detach(cgroup_dir, fd)
    except OSError as e:
        if e.errno != errno.ENOENT:
            raise
    finally:
        os.close(fd)


def attached(cgroup_dir: str) -> list[int]:
    """The ids of the device programs attached to ``cgroup_dir`` itself (``bpftool cgroup show``)."""
    return bpf.prog_query(cgroup_dir)
