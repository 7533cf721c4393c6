"""The eBPF device filter without a kernel: rule parsing, instruction encoding, jump offsets, semantics.

The semantics are checked by a tiny interpreter of the few opcodes the generator emits (enough to
run the program on a ``bpf_cgroup_dev_ctx``), against a plain-Python reading of the rules. The
kernel's own verdict is tested in test_devices_bpf_real.py (root).
"""

from __future__ import annotations

import itertools
import struct
from pathlib import Path

import pytest

from minidocker import trace
from minidocker.cgroups import V2Cgroup
from minidocker.cgroups.devices import DEFAULT_ALLOWED_DEVICES, DeviceRule
from minidocker.cgroups.devices_bpf import (
    ACC_MKNOD,
    ACC_READ,
    ACC_WRITE,
    DEV_BLOCK,
    DEV_CHAR,
    Insn,
    assemble,
    device_filter,
)
from minidocker.errors import InvalidInput

PROLOGUE_HEX = [
    "6112000000000000",  # r2 = *(u32 *)(r1 + 0)      ldxw: code 0x61, src r1 << 4 | dst r2
    "54020000ffff0000",  # w2 &= 0xffff                alu32 and imm
    "6113000000000000",  # r3 = *(u32 *)(r1 + 0)
    "7403000010000000",  # w3 >>= 16                   alu32 rsh imm
    "6114040000000000",  # r4 = *(u32 *)(r1 + 4)
    "6115080000000000",  # r5 = *(u32 *)(r1 + 8)
]
RETURN_0_HEX = ["b400000000000000", "9500000000000000"]  # w0 = 0; exit
RETURN_1_HEX = ["b400000001000000", "9500000000000000"]


def hexes(prog: list[Insn]) -> list[str]:
    return [i.encode().hex() for i in prog]


# --- parsing ------------------------------------------------------------------------------------------
def test_parse_rules() -> None:
    assert DeviceRule.parse("c 1:3 rwm") == DeviceRule("c", 1, 3, "rwm")
    assert DeviceRule.parse("b *:* m") == DeviceRule("b", None, None, "m")
    assert DeviceRule.parse("c 136:* rw", allow=False) == DeviceRule("c", 136, None, "rw", allow=False)
    assert DeviceRule.parse("a") == DeviceRule("a", None, None, "rwm")
    assert [str(DeviceRule.parse(r)) for r in DEFAULT_ALLOWED_DEVICES] == list(DEFAULT_ALLOWED_DEVICES)


@pytest.mark.parametrize(
    "text", ["x 1:3 rwm", "c 1:3", "c 1:3 rwx", "c 1:3 rr", "c a:3 r", "c 4294967296:1 r", ""]
)
def test_parse_rejects(text: str) -> None:
    with pytest.raises(InvalidInput):
        DeviceRule.parse(text)


def test_v1_uses_the_shared_list() -> None:
    from minidocker.cgroups import v1

    assert v1.DEFAULT_ALLOWED_DEVICES is DEFAULT_ALLOWED_DEVICES


# --- encoding -----------------------------------------------------------------------------------------
def test_instruction_encoding_is_struct_bpf_insn() -> None:
    insn = Insn(0x5D, dst=1, src=3, off=-2, imm=0x12345678)
    raw = insn.encode()
    assert len(raw) == 8
    code, regs, off, imm = struct.unpack("<BBhi", raw)
    assert (code, regs & 0x0F, regs >> 4, off, imm) == (0x5D, 1, 3, -2, 0x12345678)


def test_deny_all_program() -> None:
    prog = device_filter([])
    assert hexes(prog) == PROLOGUE_HEX + RETURN_0_HEX
    assert assemble(prog) == bytes.fromhex("".join(PROLOGUE_HEX + RETURN_0_HEX))
    assert hexes(device_filter([], default_allow=True)) == PROLOGUE_HEX + RETURN_1_HEX


def test_small_rule_list_byte_for_byte() -> None:
    prog = device_filter([DeviceRule.parse("c 1:3 rwm"), DeviceRule.parse("b *:* m")])
    assert hexes(prog) == PROLOGUE_HEX + [
        # c 1:3 rwm: three checks (type, major, minor), each jumping past the block on a mismatch
        "5502040002000000",  # if r2 != 2 goto +4
        "5504030001000000",  # if r4 != 1 goto +3
        "5505020003000000",  # if r5 != 3 goto +2
        *RETURN_1_HEX,
        # b *:* m: type, then the access test (requested bits all within "m"), no numbers
        "5502050001000000",  # if r2 != 1 goto +5
        "bc31000000000000",  # w1 = w3                     alu32 mov reg
        "5401000001000000",  # w1 &= 1
        "5d31020000000000",  # if r1 != r3 goto +2          jmp jne reg
        *RETURN_1_HEX,
        *RETURN_0_HEX,  # nothing matched: deny
    ]


def test_default_list_shape() -> None:
    prog = device_filter([DeviceRule.parse(r) for r in DEFAULT_ALLOWED_DEVICES])
    assert len(prog) == 69  # the same count as runc's program for Docker's list
    assert [str(i) for i in prog[-2:]] == ["w0 = 0", "exit"]
    # every jump lands on the first instruction of a later block or on the final "return 0"
    block_starts = {i + 1 for i, insn in enumerate(prog) if str(insn) == "exit"}
    for pc, insn in enumerate(prog):
        if insn.code & 0x07 == 0x05 and str(insn) != "exit":
            target = pc + 1 + insn.off
            assert insn.off > 0 and target in block_starts and target < len(prog), (pc, str(insn))


def test_disassembly() -> None:
    lines = [str(i) for i in device_filter([DeviceRule.parse("c 136:* rw")])]
    assert lines[6:13] == [
        "if r2 != 2 goto +6",
        "w1 = w3",
        "w1 &= 6",
        "if r1 != r3 goto +3",
        "if r4 != 136 goto +2",
        "w0 = 1",
        "exit",
    ]


# --- semantics ----------------------------------------------------------------------------------------
def run(prog: list[Insn], dev_type: int, access: int, major: int, minor: int) -> int:
    """Interpret the generator's opcodes on a bpf_cgroup_dev_ctx; returns r0 at exit."""
    ctx = struct.pack("<III", (access << 16) | dev_type, major, minor)
    regs = [0] * 11
    pc, steps = 0, 0
    while True:
        steps += 1
        assert steps < 1000 and 0 <= pc < len(prog), "ran off the program"
        i = prog[pc]
        pc += 1
        if i.code == 0x61:  # ldxw; r1 is the ctx pointer, modelled as offset 0
            regs[i.dst] = struct.unpack_from("<I", ctx, i.off)[0]
        elif i.code == 0x54:
            regs[i.dst] = (regs[i.dst] & i.imm) & 0xFFFFFFFF
        elif i.code == 0x74:
            regs[i.dst] = (regs[i.dst] & 0xFFFFFFFF) >> i.imm
        elif i.code == 0xBC:
            regs[i.dst] = regs[i.src] & 0xFFFFFFFF
        elif i.code == 0xB4:
            regs[i.dst] = i.imm & 0xFFFFFFFF
        elif i.code == 0x55:
            pc += i.off if regs[i.dst] != i.imm else 0
        elif i.code == 0x15:
            pc += i.off if regs[i.dst] == i.imm else 0
        elif i.code == 0x5D:
            pc += i.off if regs[i.dst] != regs[i.src] else 0
        elif i.code == 0x95:
            return regs[0]
        else:
            raise AssertionError(f"unexpected opcode {i.code:#x}")


def reference(rules: list[DeviceRule], dev_type: int, access: int, major: int, minor: int) -> int:
    letters = {ACC_MKNOD: "m", ACC_READ: "r", ACC_WRITE: "w"}
    wanted = {letters[b] for b in letters if access & b}
    for r in rules:
        if r.type != "a" and {"b": DEV_BLOCK, "c": DEV_CHAR}[r.type] != dev_type:
            continue
        if r.major is not None and r.major != major or r.minor is not None and r.minor != minor:
            continue
        if not wanted <= set(r.access):
            continue
        return int(r.allow)
    return 0


DEVICES = [(1, 3), (1, 5), (1, 1), (5, 2), (10, 200), (10, 237), (136, 0), (136, 7), (7, 0), (8, 0)]
ACCESSES = [ACC_READ, ACC_WRITE, ACC_READ | ACC_WRITE, ACC_MKNOD]


@pytest.mark.parametrize(
    "rules",
    [
        list(DEFAULT_ALLOWED_DEVICES),
        ["c 1:3 r", "c 136:* w"],
        ["a"],
        [],
    ],
)
def test_program_agrees_with_the_rules(rules: list[str]) -> None:
    parsed = [DeviceRule.parse(r) for r in rules]
    prog = device_filter(parsed)
    for dev_type, access, (major, minor) in itertools.product((DEV_BLOCK, DEV_CHAR), ACCESSES, DEVICES):
        want = reference(parsed, dev_type, access, major, minor)
        assert run(prog, dev_type, access, major, minor) == want, (dev_type, access, major, minor)


def test_docker_list_verdicts() -> None:
    prog = device_filter([DeviceRule.parse(r) for r in DEFAULT_ALLOWED_DEVICES])
    rw = ACC_READ | ACC_WRITE
    assert run(prog, DEV_CHAR, rw, 1, 3) == 1  # /dev/null
    assert run(prog, DEV_CHAR, rw, 136, 4) == 1  # /dev/pts/4
    assert run(prog, DEV_CHAR, ACC_READ, 1, 1) == 0  # /dev/mem
    assert run(prog, DEV_CHAR, rw, 10, 237) == 0  # /dev/loop-control
    assert run(prog, DEV_BLOCK, ACC_READ, 8, 0) == 0  # /dev/sda
    assert run(prog, DEV_BLOCK, ACC_MKNOD, 8, 0) == 1  # mknod of anything is allowed...
    assert run(prog, DEV_BLOCK, ACC_MKNOD | ACC_READ, 8, 0) == 0  # ...but only mknod


def test_read_only_rule_refuses_read_write() -> None:
    """runc once tested "any bit in common"; an O_RDWR open must need both r and w."""
    prog = device_filter([DeviceRule.parse("c 1:3 r")])
    assert run(prog, DEV_CHAR, ACC_READ, 1, 3) == 1
    assert run(prog, DEV_CHAR, ACC_READ | ACC_WRITE, 1, 3) == 0
    assert run(prog, DEV_CHAR, ACC_WRITE, 1, 3) == 0


def test_deny_rule_first_match_wins() -> None:
    prog = device_filter([DeviceRule.parse("b 8:0 rwm", allow=False), DeviceRule.parse("a")])
    assert run(prog, DEV_BLOCK, ACC_READ, 8, 0) == 0
    assert run(prog, DEV_BLOCK, ACC_READ, 8, 1) == 1


# --- the driver ---------------------------------------------------------------------------------------
def test_v2_skips_a_directory_that_is_no_cgroup2(tmp_path: Path) -> None:
    """The fake cgroupfs of test_cgroups.py is a plain directory: nothing to attach to, no error."""
    (tmp_path / "minidocker" / "x").mkdir(parents=True)
    cg = V2Cgroup("minidocker/x", str(tmp_path))
    with trace.capture() as events:
        cg.restrict_devices()
    assert events == [f"device filter skipped: {tmp_path}/minidocker/x is not on a cgroup2 filesystem"]
