#!/usr/bin/env python3
"""Checker for lab 02 (cgroups by hand): reads the lab02 cgroup's files on the host.

Works on both layouts, decided like minidocker's ``cgroups.detect``: if ``/sys/fs/cgroup`` itself is
a cgroup2 mount the host is v2 (``/sys/fs/cgroup/lab02``, ``memory.max``, ``memory.events``),
otherwise v1 (``/sys/fs/cgroup/memory/lab02``, ``memory.limit_in_bytes``, ``memory.oom_control``
and ``/sys/fs/cgroup/pids/lab02``). The OOM kill and the refused fork are read from the kernel's
counters, which keep their value after the processes are gone.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _lib.checks import Checker, fail_on_crash, host, read_text  # noqa: E402

CGROUP_ROOT = "/sys/fs/cgroup"
NAME = "lab02"
LIMIT = 32 * 1024 * 1024  # 32 MiB
PIDS_MAX = "20"
V1_UNLIMITED = 9223372036854771712  # what memory.limit_in_bytes reads when no limit is set


@dataclass(frozen=True)
class Layout:
    """Where the lab's files are on this host."""

    version: str  # "v1" or "v2"
    memory_dir: str
    pids_dir: str
    limit_file: str  # memory.limit_in_bytes (v1) / memory.max (v2)
    oom_file: str  # memory.oom_control (v1) / memory.events (v2): both have an oom_kill line

    @classmethod
    def detect(cls, root: str = CGROUP_ROOT) -> Layout:
        fstype = host().run(f"stat -f -c %T {root}").stdout.strip()
        if fstype == "cgroup2fs":
            d = os.path.join(root, NAME)
            return cls("v2", d, d, os.path.join(d, "memory.max"), os.path.join(d, "memory.events"))
        mem = os.path.join(root, "memory", NAME)
        return cls(
            "v1",
            mem,
            os.path.join(root, "pids", NAME),
            os.path.join(mem, "memory.limit_in_bytes"),
            os.path.join(mem, "memory.oom_control"),
        )


def keyed(path: str) -> dict[str, int]:
    """A flat keyed cgroup file (``oom_kill 1`` per line) as a dict; {} when it is missing."""
    out: dict[str, int] = {}
    for line in (read_text(path) or "").splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            out[key] = int(value)
    return out


def is_dir(path: str) -> bool:
    return bool(host().file(path).is_directory)


def where_else(layout: Layout) -> str:
    """A note about lab02 directories that exist in the wrong place (the usual v1/v2 mix-up)."""
    notes = []
    plain = os.path.join(CGROUP_ROOT, NAME)
    if layout.version == "v1" and is_dir(plain):
        notes.append(
            f"{plain} exists, but on a v1 host that is a plain directory in the tmpfs holding the "
            "hierarchies, not a cgroup: each controller has its own hierarchy below /sys/fs/cgroup"
        )
    unified = os.path.join(CGROUP_ROOT, "unified", NAME)
    if is_dir(unified):
        notes.append(
            f"{unified} exists: that v2 hierarchy has no controllers on this host (they are all in the v1 "
            "hierarchies), so it cannot limit memory"
        )
    return ("; " + "; ".join(notes)) if notes else ""


def subtree_note(layout: Layout, controller: str) -> str:
    """v2: why a controller's files can be missing in a child."""
    if layout.version != "v2":
        return ""
    enabled = (read_text(os.path.join(CGROUP_ROOT, "cgroup.subtree_control")) or "").split()
    if controller in enabled:
        return ""
    return (
        f": the {controller} controller is not enabled for the children of {CGROUP_ROOT} "
        f"(its cgroup.subtree_control holds {' '.join(enabled) or 'nothing'})"
    )


def check_memory(c: Checker, layout: Layout) -> None:
    names = [
        f"the memory limit of {NAME} is 32 MiB",
        f"the OOM killer killed a process in {NAME}",
    ]
    exists = c.expect(
        f"the memory cgroup {NAME} exists",
        is_dir(layout.memory_dir),
        f"expected the directory {layout.memory_dir} (cgroup {layout.version}), found nothing{where_else(layout)}",
    )
    if not exists:
        for n in names:
            c.blocked(n, f"{layout.memory_dir} does not exist")
        return

    raw = read_text(layout.limit_file)
    limit_name = os.path.basename(layout.limit_file)
    if raw is None:
        detail = f"expected {layout.limit_file}, found no such file{subtree_note(layout, 'memory')}"
    else:
        value = raw.strip()
        if value == str(LIMIT):
            detail = ""
        elif value in ("max", str(V1_UNLIMITED)):
            detail = f"expected {limit_name} = {LIMIT}, found {value}: no limit is set"
        elif value.isdigit() and int(value) == 32 * 1000 * 1000 // 4096 * 4096:
            detail = (
                f"expected {LIMIT} bytes (32 MiB = 32 x 1024 x 1024), found {value}: that is 32 MB, decimal"
            )
        else:
            detail = f"expected {limit_name} = {LIMIT} (32 MiB), found {value}"
    c.expect(names[0], not detail, detail)

    counters = keyed(layout.oom_file)
    kills = counters.get("oom_kill")
    if kills is None:
        detail = (
            f"expected an oom_kill line in {layout.oom_file}, found {'no file' if not counters else 'none'}"
        )
    elif kills >= 1:
        detail = ""
    else:
        hit = (
            int((read_text(os.path.join(layout.memory_dir, "memory.failcnt")) or "0").strip() or 0)
            if layout.version == "v1"
            else counters.get("max", 0)
        )
        swap = len((read_text("/proc/swaps") or "").splitlines()) > 1
        detail = f"expected oom_kill >= 1 in {layout.oom_file}, found 0"
        if hit:
            detail += (
                f": the limit was reached {hit} time(s) but the kernel could always reclaim memory "
                "instead of killing (page cache is dropped; a process must hold anonymous memory)"
            )
            if swap:
                detail += "; this host has swap, so the process can also be swapped out: limit swap too"
        else:
            detail += ": no process in it ever reached the limit (is it really in the cgroup's cgroup.procs?)"
    c.expect(names[1], not detail, detail)


def check_pids(c: Checker, layout: Layout) -> None:
    names = [f"pids.max of {NAME} is {PIDS_MAX}", f"a fork in {NAME} was refused at the limit"]
    max_file = os.path.join(layout.pids_dir, "pids.max")
    if not is_dir(layout.pids_dir):
        c.expect(
            f"the pids cgroup {NAME} exists",
            False,
            f"expected the directory {layout.pids_dir} (cgroup {layout.version}), found nothing",
        )
        for n in names:
            c.blocked(n, f"{layout.pids_dir} does not exist")
        return
    c.expect(
        f"the pids cgroup {NAME} exists",
        host().file(max_file).exists,
        f"expected {max_file} in {layout.pids_dir}, found no such file{subtree_note(layout, 'pids')}",
    )
    value = (read_text(max_file) or "").strip()
    c.expect(
        names[0],
        value == PIDS_MAX,
        f"expected {max_file} = {PIDS_MAX}, found {value or 'no such file'}"
        + (": no limit is set" if value == "max" else ""),
    )
    events = keyed(os.path.join(layout.pids_dir, "pids.events"))
    refused = events.get("max", 0)
    current = (read_text(os.path.join(layout.pids_dir, "pids.current")) or "?").strip()
    c.expect(
        names[1],
        refused >= 1,
        f"expected max >= 1 in {layout.pids_dir}/pids.events (forks refused because of pids.max), found "
        f"{refused} (pids.current is {current}): no process in it has tried to go past the limit yet",
    )


def main() -> int:
    c = Checker("02")
    layout = Layout.detect()
    print(f"cgroup {layout.version}: memory in {layout.memory_dir}, pids in {layout.pids_dir}", flush=True)
    check_memory(c, layout)
    check_pids(c, layout)
    return c.finish()


if __name__ == "__main__":
    sys.exit(fail_on_crash(main))
