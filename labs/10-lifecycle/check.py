#!/usr/bin/env python3
"""Checker for lab 10 (the container lifecycle): finds the container ``lab10`` on the host and
compares the student's answers with what the host says.

Everything is read as plain files, the way the student reads them: the lab data root
(``containers/<id>/config.v2.json``, ``hostconfig.json``, ``<id>-json.log``,
``image/overlay2/layerdb/mounts/<id>/mount-id``), the mount table (the overlay's ``upperdir``),
``/proc/<pid>/status`` and ``/proc/<pid>/cgroup`` (PID 1, its parent, its cgroups), ``/proc/locks``
(the monitor holds ``flock`` on ``<exec-root>/containers/<id>/monitor.lock``) and the cgroup files.
It never imports minidocker, so a bug there cannot make this lab pass. Run it as root.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _lib.checks import (  # noqa: E402 - after the sys.path tweak, on purpose
    Checker,
    data_root,
    fail_on_crash,
    find_named_container,
    host,
    lab_dir,
    mount_at,
    mounts,
    read_answer,
    read_json_object,
    read_text,
    realpath,
)

LAB = lab_dir("10")
ROOT = data_root("10")
EXEC_ROOT = os.path.join(LAB, "exec")
ANSWERS = os.path.join(LAB, "answers")
NAME = "lab10"
LIMIT = 32 * 1024 * 1024
LINE = "hello from lab10"
OUT_FILE = "lab10.txt"  # the file the container appends to, at its root
STARTS = 2  # started, stopped, started again

ANSWER_NAMES = ("log", "upperdir", "file", "memory-file", "stop-exit-code", "pid", "monitor-pid")


@dataclass
class Found:
    """What the host says about lab10 (None where it could not be found)."""

    id: str
    config: dict[str, Any]
    host_config: dict[str, Any]
    mount_id: str | None = None
    upper: str | None = None  # the overlay's upperdir while mounted, else overlay2/<mount-id>/diff
    mounted: bool = False


def _answer(name: str) -> str | None:
    return read_answer(os.path.join(ANSWERS, name))


# -- finding lab10 ----------------------------------------------------------------------------------
def find_container() -> tuple[Found | None, str]:
    """lab10 in the lab data root, or None and what was found instead."""
    cid, cfg, why = find_named_container(ROOT, NAME)
    if cid is None:
        return None, why
    hc = read_json_object(os.path.join(ROOT, "containers", cid, "hostconfig.json")) or {}
    return Found(cid, cfg, hc), ""


def find_layer(f: Found) -> None:
    """The container's RW layer: layerdb/mounts/<id>/mount-id, and the overlay on its merged/."""
    mount_id = read_answer(os.path.join(ROOT, "image", "overlay2", "layerdb", "mounts", f.id, "mount-id"))
    if not mount_id:
        return
    f.mount_id = mount_id
    layer = os.path.join(ROOT, "overlay2", mount_id)
    f.upper = os.path.join(layer, "diff")
    m = mount_at(os.path.join(layer, "merged"))
    if m is not None and m.fstype == "overlay":
        f.mounted = True
        upper = m.super_options.get("upperdir", "")
        if upper:  # relative when the options were too long for a page: relative to overlay2/
            f.upper = upper if os.path.isabs(upper) else os.path.join(ROOT, "overlay2", upper)


def nspids(pid: int) -> list[int]:
    for line in (read_text(f"/proc/{pid}/status") or "").splitlines():
        if line.startswith("NSpid:"):
            return [int(x) for x in line.split()[1:]]
    return []


def ppid(pid: int) -> int | None:
    for line in (read_text(f"/proc/{pid}/status") or "").splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])
    return None


def comm(pid: int) -> str:
    return (read_text(f"/proc/{pid}/comm") or "?").strip()


def alive(pid: int) -> bool:
    return pid > 0 and host().file(f"/proc/{pid}").is_directory


def flock_holders(path: str) -> list[int]:
    """Pids holding a FLOCK on ``path`` (matched by inode in /proc/locks)."""
    out = host().run("stat -c %i -- " + shlex.quote(path))
    if out.rc != 0:
        return []
    inode = out.stdout.strip()
    holders = []
    for line in (read_text("/proc/locks") or "").splitlines():
        fields = line.split()
        # "2: FLOCK  ADVISORY  WRITE 29164 fe:00:2146549 0 EOF"
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5].rsplit(":", 1)[-1] == inode:
            holders.append(int(fields[4]))
    return holders


# -- cgroups ----------------------------------------------------------------------------------------
def memory_limit_file(pid: int) -> str | None:
    """The file that holds PID 1's memory limit: v1 memory.limit_in_bytes, v2 memory.max."""
    cgroup_lines = (read_text(f"/proc/{pid}/cgroup") or "").splitlines()
    top = mount_at("/sys/fs/cgroup")
    if top is not None and top.fstype == "cgroup2":
        for line in cgroup_lines:
            if line.startswith("0::"):
                return os.path.normpath("/sys/fs/cgroup/" + line[3:]) + "/memory.max"
        return None
    hierarchy = next(
        (m.mount_point for m in mounts() if m.fstype == "cgroup" and "memory" in m.super_options), None
    )
    for line in cgroup_lines:
        _, controllers, path = line.split(":", 2)
        if hierarchy and "memory" in controllers.split(","):
            return os.path.normpath(hierarchy + "/" + path) + "/memory.limit_in_bytes"
    return None


# -- the answers -------------------------------------------------------------------------------------
def check_log(f: Found) -> str:
    got = _answer("log")
    want = os.path.join(ROOT, "containers", f.id, f"{f.id}-json.log")
    if got is None:
        return f"expected the file {ANSWERS}/log, found none"
    real = realpath(got)
    if real is None:
        return f"{got!r} does not exist"
    if real == realpath(want):
        return ""
    if real == realpath(os.path.dirname(want)):
        return "that is the container's directory; the answer is the log file inside it"
    if os.path.basename(real) in ("config.v2.json", "hostconfig.json"):
        return "that is one of the container's state files; the log is the json-file driver's <id>-json.log"
    return f"expected the json-file log of lab10 (the file the monitor copies its stdout into), found {got!r}"


def check_upperdir(f: Found) -> str:
    got = _answer("upperdir")
    if got is None:
        return f"expected the file {ANSWERS}/upperdir, found none"
    real = realpath(got)
    if real is None:
        return f"{got!r} does not exist"
    assert f.mount_id is not None and f.upper is not None
    layer = os.path.join(ROOT, "overlay2", f.mount_id)
    if real == realpath(f.upper):
        return ""
    if real == realpath(os.path.join(layer, "merged")):
        return "that is merged/, the mount point where the container's / appears; the upper dir is another"
    if real == realpath(layer):
        return "that is the layer's overlay2 dir; the answer is the subdirectory that holds its files"
    if real == realpath(os.path.join(layer, "work")):
        return "that is the overlay's workdir (the kernel's scratch space), not its upperdir"
    if real == realpath(os.path.join(ROOT, "overlay2", f.mount_id + "-init", "diff")):
        return ("that is the init layer (the /etc/hosts, /etc/hostname... placeholders); it is the top "
                "*lower* layer, read-only for the container")  # fmt: skip
    if real.startswith(os.path.join(ROOT, "overlay2") + "/") and real.endswith("/diff"):
        return "that is a read-only image layer (a lowerdir entry); the container writes into the upperdir"
    return f"expected the upperdir of lab10's overlay (named in the mount table), found {got!r}"


def check_file(f: Found) -> str:
    got = _answer("file")
    if got is None:
        return f"expected the file {ANSWERS}/file, found none"
    assert f.mount_id is not None and f.upper is not None
    want = os.path.join(f.upper, OUT_FILE)
    real = realpath(got)
    if real is None:
        return f"{got!r} does not exist"
    if real == realpath(want):
        return ""
    if real == realpath(os.path.join(ROOT, "overlay2", f.mount_id, "merged", OUT_FILE)):
        return (f"that is /{OUT_FILE} in the merged view (what the container sees); the kernel stores the "
                f"bytes in the container's writable layer")  # fmt: skip
    if real == realpath(f.upper):
        return f"that is the upper dir itself; the answer is the path of /{OUT_FILE} in it"
    return f"expected the host path where the kernel stored the container's /{OUT_FILE}, found {got!r}"


def check_memory_file(pid: int) -> str:
    got = _answer("memory-file")
    if got is None:
        return f"expected the file {ANSWERS}/memory-file, found none"
    want = memory_limit_file(pid)
    if want is None:
        return f"cannot find lab10's memory cgroup in /proc/{pid}/cgroup"
    real = realpath(got)
    if real is None:
        return f"{got!r} does not exist"
    if real == realpath(want):
        value = (read_text(want) or "").strip()
        return "" if value == str(LIMIT) else f"the right file, but it holds {value!r}, not {LIMIT} (32 MiB)"
    base, cg = os.path.basename(real), os.path.dirname(want)
    if real == realpath(cg):
        return "that is lab10's cgroup directory; the answer is the file in it that holds the limit"
    if base in ("memory.memsw.limit_in_bytes", "memory.swap.max"):
        return "that file limits swap (v1: memory plus swap); the lab asks for the memory limit"
    if base in ("memory.soft_limit_in_bytes", "memory.low", "memory.high", "memory.min"):
        return "that is a soft limit (--memory-reservation); the lab asks for the hard limit"
    if base in ("memory.usage_in_bytes", "memory.current", "memory.max_usage_in_bytes", "memory.peak"):
        return "that file says how much memory is used, not the limit"
    if os.path.dirname(real) == os.path.dirname(realpath(cg) or cg):
        return "that file belongs to the parent cgroup of every container, not to lab10's own cgroup"
    return f"expected the file holding lab10's 32 MiB limit (in its PID 1's memory cgroup), found {got!r}"


def check_exit_code(f: Found) -> str:
    got = _answer("stop-exit-code")
    if got is None:
        return f"expected the file {ANSWERS}/stop-exit-code, found none"
    init = bool(f.host_config.get("Init"))
    want = "143" if init else "137"
    if got == want:
        return ""
    if got == "0":
        return ("0 is what the state says while it runs again (start resets ExitCode); read config.v2.json "
                "after the stop and before the start")  # fmt: skip
    if got in ("9", "15", "SIGKILL", "SIGTERM", "KILL", "TERM"):
        return "that is a signal; the exit code of a process killed by signal N is 128 + N"
    if got == "143" and not init:
        return ("143 is 128 + SIGTERM, but a PID 1 without a SIGTERM handler ignores SIGTERM: after 10 s "
                "stop sends another signal")  # fmt: skip
    return f"expected the ExitCode stop recorded in config.v2.json (128 + the killing signal), found {got!r}"


def check_pid(pid: int, monitor: int | None) -> str:
    got = _answer("pid")
    if got is None:
        return f"expected the file {ANSWERS}/pid, found none"
    if not got.isdigit():
        return f"expected one number (a host PID), found {got[:40]!r}"
    n = int(got)
    if n == pid:
        return ""
    if n == 1:
        return "1 is its PID inside its own pid namespace; the host gives the same process another number"
    if monitor is not None and n == monitor:
        return "that is the monitor, the parent of lab10's PID 1"
    if not alive(n):
        return (f"no process {n} runs: a PID from before the stop? Each start makes a new PID 1 "
                "(and config.v2.json records it)")  # fmt: skip
    return f"process {n} ({comm(n)}) is not lab10's PID 1 (State.Pid in its config.v2.json)"


def check_monitor(f: Found, pid: int, monitor: int | None) -> str:
    got = _answer("monitor-pid")
    if got is None:
        return f"expected the file {ANSWERS}/monitor-pid, found none"
    if not got.isdigit():
        return f"expected one number (a host PID), found {got[:40]!r}"
    n = int(got)
    if n == pid:
        return "that is lab10's PID 1 itself; the monitor is its parent"
    if n == 1:
        return "that is the host's init; lab10's PID 1 has another parent (PPid: in its status)"
    if not alive(n):
        return f"no process {n} runs: a PID from before the stop? Each start forks a new monitor"
    if n != monitor:
        return f"process {n} ({comm(n)}) is not the parent of lab10's PID 1 (PPid: in /proc/{pid}/status)"
    lock = os.path.join(EXEC_ROOT, "containers", f.id, "monitor.lock")
    holders = flock_holders(lock)
    if n not in holders:
        where = "it does not exist" if not host().file(lock).exists else f"held by {holders or 'nobody'}"
        return (f"process {n} is the parent, but it does not hold the flock on {lock} ({where}): was lab10 "
                f"started with MINIDOCKER_EXEC_ROOT={EXEC_ROOT}?")  # fmt: skip
    return ""


# -- main ---------------------------------------------------------------------------------------------
def main() -> int:
    c = Checker("10")
    f, found = find_container()
    c.expect(
        f"a container named {NAME} exists in the lab data root",
        f is not None,
        f'expected a containers/<id>/config.v2.json with "Name": "/{NAME}" under {ROOT}, found {found}',
    )
    if f is None:
        for name in ("lab10 is running", "lab10 has a 32 MiB memory limit",
                     "lab10 was started twice (two lines in its log)",
                     f"its writable layer kept /{OUT_FILE} across the restart",
                     *(f"answers/{a}" for a in ANSWER_NAMES)):  # fmt: skip
            c.blocked(name, f"no container {NAME}")
        return c.finish()

    state = f.config.get("State") or {}
    pid = int(state.get("Pid") or 0)
    running = bool(state.get("Running")) and not state.get("Restarting") and alive(pid)
    c.expect(
        "lab10 is running",
        running,
        f"expected State.Running true with a live State.Pid in config.v2.json, found Running="
        f"{state.get('Running')}, Pid={pid}, ExitCode={state.get('ExitCode')}"
        + ("" if not pid or alive(pid) else f" (no process {pid})"),
    )
    memory = f.host_config.get("Memory")
    c.expect(
        "lab10 has a 32 MiB memory limit",
        memory == LIMIT,
        f'expected "Memory": {LIMIT} in hostconfig.json (run -m 32m), found {memory!r}',
    )

    log = os.path.join(ROOT, "containers", f.id, f"{f.id}-json.log")
    records = []
    for line in (read_text(log) or "").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    hellos = [r for r in records if r.get("stream") == "stdout" and r.get("log") == LINE + "\n"]
    c.expect(
        "lab10 was started twice (two lines in its log)",
        len(hellos) >= STARTS,
        f"expected at least {STARTS} stdout records {LINE!r} in {f.id[:12]}…-json.log (one per start: "
        f"run, stop, start), found {len(hellos)} among {len(records)} records"
        + (f", e.g. {records[0].get('log')!r}" if records and not hellos else ""),
    )

    find_layer(f)
    if f.upper is None:
        c.blocked(
            f"its writable layer kept /{OUT_FILE} across the restart", "no layerdb/mounts/<id>/mount-id"
        )
    else:
        text = read_text(os.path.join(f.upper, OUT_FILE))
        lines = [x for x in (text or "").splitlines() if x == LINE]
        c.expect(
            f"its writable layer kept /{OUT_FILE} across the restart",
            len(lines) >= STARTS,
            f"expected /{OUT_FILE} with at least {STARTS} lines {LINE!r} in the container's upper dir (one "
            "appended per start; stop keeps the layer), found "
            + ("no such file" if text is None else f"{len(lines)} such lines"),
        )

    why = check_log(f)
    c.expect("answers/log", not why, why)
    if f.upper is None or f.mount_id is None:
        for name in ("answers/upperdir", "answers/file"):
            c.blocked(name, "lab10 has no RW layer (layerdb/mounts/<id>/mount-id)")
    elif not f.mounted:
        for name in ("answers/upperdir", "answers/file"):
            c.blocked(name, "lab10's overlay is not mounted (start it)")
    else:
        why = check_upperdir(f)
        c.expect("answers/upperdir", not why, why)
        why = check_file(f)
        c.expect("answers/file", not why, why)

    if running:
        why = check_memory_file(pid)
        c.expect("answers/memory-file", not why, why)
    else:
        c.blocked("answers/memory-file", "lab10 is not running (its cgroup exists only while it runs)")
    why = check_exit_code(f)
    c.expect("answers/stop-exit-code", not why, why)
    if running:
        monitor = ppid(pid)
        why = check_pid(pid, monitor)
        if not why and nspids(pid)[-1:] != [1]:
            why = f"process {pid} is not PID 1 of its own pid namespace (NSpid: {nspids(pid)})"
        c.expect("answers/pid", not why, why)
        why = check_monitor(f, pid, monitor)
        c.expect("answers/monitor-pid", not why, why)
    else:
        for name in ("answers/pid", "answers/monitor-pid"):
            c.blocked(name, "lab10 is not running")
    return c.finish()


if __name__ == "__main__":
    sys.exit(fail_on_crash(main))
