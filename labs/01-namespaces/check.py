#!/usr/bin/env python3
"""Checker for lab 01 (namespaces by hand): looks at the student's process from the host.

The student names the process in ``/var/lib/minidocker-labs/01/pid`` (its *host* PID). Everything
else is read from the host: ``/proc/<pid>/ns/*`` against the checker's own namespaces,
``/proc/<pid>/status`` (NSpid), ``/proc/<pid>/mountinfo`` (the mount table of its mount namespace),
``/proc/<pid>/net/dev`` (the interfaces of its network namespace) and, through ``nsenter --uts``,
its hostname. Run it as root (``nsenter`` and other processes' ``ns/`` links need it).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _lib.checks import Checker, fail_on_crash, host, lab_dir, read_answer, read_text  # noqa: E402

LAB = lab_dir("01")
PID_FILE = os.path.join(LAB, "pid")
SCRATCH = os.path.join(LAB, "scratch")
HOSTNAME = "lab01"
NAMESPACES = ("pid", "uts", "mnt", "net")  # the ones the lab asks for, in the README's order


@dataclass(frozen=True)
class MountLine:
    """One line of a mountinfo file: the fields this checker needs."""

    dev: str  # major:minor of the filesystem instance (every proc mount has its own)
    mount_point: str
    fstype: str
    source: str


def _unescape(field: str) -> str:
    return field.encode().decode("unicode_escape") if "\\" in field else field


def parse_mountinfo(text: str) -> list[MountLine]:
    out = []
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        fields, rfields = left.split(), right.split()
        if len(fields) >= 5 and len(rfields) >= 2:
            out.append(MountLine(fields[2], _unescape(fields[4]), rfields[0], _unescape(rfields[1])))
    return out


def top_mount(mounts: list[MountLine], path: str) -> MountLine | None:
    """The mount that is visible at ``path``: the last one listed there (later mounts stack on top)."""
    found = [m for m in mounts if m.mount_point == path]
    return found[-1] if found else None


def ns_link(pid: int | str, name: str) -> str | None:
    """``net:[4026531840]``: the identity of a namespace (same inode = same namespace)."""
    out = host().run(f"readlink /proc/{pid}/ns/{name}")
    return out.stdout.strip() if out.rc == 0 else None


def nspids(pid: int) -> list[int]:
    """The NSpid line of /proc/<pid>/status: its pid in each pid namespace, the host's first."""
    for line in (read_text(f"/proc/{pid}/status") or "").splitlines():
        if line.startswith("NSpid:"):
            return [int(x) for x in line.split()[1:]]
    return []


def children(pid: int) -> list[int]:
    out = host().run(f"pgrep -P {pid}")
    return [int(x) for x in out.stdout.split()] if out.rc == 0 else []


def find_process(c: Checker) -> int | None:
    """Expectation 1: the pid file names a running process. Returns that pid, or None."""
    raw = read_answer(PID_FILE)
    name = "pid names a running process"
    if raw is None:
        c.expect(
            name, False, f"expected {PID_FILE} to hold the host PID of your namespace's PID 1, found no file"
        )
        return None
    if not raw.isdigit():
        c.expect(name, False, f"expected one number (a host PID) in {PID_FILE}, found {raw[:40]!r}")
        return None
    pid = int(raw)
    if not host().file(f"/proc/{pid}").is_directory:
        c.expect(
            name,
            False,
            f"expected a running process {pid}, found none: it exited (a process started from a terminal "
            "dies with it unless detached) or the number is not a host PID",
        )
        return None
    c.expect(name, True)
    return pid


def main() -> int:
    c = Checker("01")
    h = host()
    pid = find_process(c)

    later = [
        "it is PID 1 of a new pid namespace",
        *(f"its {ns} namespace is not the host's" for ns in NAMESPACES),
        f"its hostname is {HOSTNAME}",
        "/proc in its mount namespace is a new proc mount",
        "its network namespace has only lo",
        "scratch/ is a tmpfs in its mount namespace",
    ]
    if pid is None:
        for name in later:
            c.blocked(name, "no process to look at (pid)")
    else:
        check_process(c, pid)

    # The host side of the mount: it must not have leaked out (propagation) ...
    host_scratch = top_mount(parse_mountinfo(h.file("/proc/self/mountinfo").content_string), SCRATCH)
    c.expect(
        "scratch/ is not mounted on the host",
        host_scratch is None,
        f"expected no mount on {SCRATCH} in the host's mount table, found a {host_scratch.fstype if host_scratch else ''} "
        "mount: it was made in the host's mount namespace, or the new namespace shares mount propagation with the host",
    )
    # ... and the host keeps its own name.
    host_name = h.run("uname -n").stdout.strip()
    c.expect(
        f"the host's hostname is not {HOSTNAME}",
        host_name != HOSTNAME,
        f"expected the host to keep its name, found it renamed to {HOSTNAME}: "
        "the hostname was set outside the new UTS namespace (set the old name back with hostname)",
    )
    return c.finish()


def check_process(c: Checker, pid: int) -> None:
    h = host()
    ids = nspids(pid)
    if ids == [1] or pid == 1:
        detail = (
            "expected the host PID of your process, found 1: that is its PID *inside* the namespace "
            "(and the host's own init outside); from the host the same process has another number"
        )
    elif len(ids) < 2:
        kids = [k for k in children(pid) if len(nspids(k)) >= 2 and nspids(k)[-1] == 1]
        detail = f"expected a process with two pids in NSpid (host, namespace), found NSpid: {' '.join(map(str, ids))}"
        if kids:
            detail += (
                f": process {pid} is still in the host's pid namespace, but one of its children is PID 1 of a "
                "new one (unshare --fork runs your command in a child): write the child's host PID"
            )
    elif ids[-1] != 1:
        detail = (
            f"expected the namespace's PID 1, found a process that is PID {ids[-1]} in its namespace "
            f"(NSpid: {' '.join(map(str, ids))}): the pid file wants the first process of the namespace"
        )
    else:
        detail = ""
    c.expect("it is PID 1 of a new pid namespace", not detail, detail)

    for ns in NAMESPACES:
        mine, theirs = ns_link("self", ns), ns_link(pid, ns)
        c.expect(
            f"its {ns} namespace is not the host's",
            theirs is not None and mine != theirs,
            f"expected /proc/{pid}/ns/{ns} to differ from the host's {mine}, found {theirs or 'no link'}",
        )

    uts_new = ns_link(pid, "uts") != ns_link("self", "uts")
    name = h.run(f"nsenter --target {pid} --uts uname -n")
    inside = name.stdout.strip() if name.rc == 0 else None
    c.expect(
        f"its hostname is {HOSTNAME}",
        uts_new and inside == HOSTNAME,
        f"expected {HOSTNAME!r} inside its own UTS namespace, found "
        + (f"{inside!r}" if inside is not None else f"nothing (nsenter failed: {name.stderr.strip()})")
        + ("" if uts_new else " in the host's UTS namespace"),
    )

    mnt_new = ns_link(pid, "mnt") != ns_link("self", "mnt")
    their_mounts = parse_mountinfo(read_text(f"/proc/{pid}/mountinfo") or "")
    host_proc = top_mount(parse_mountinfo(h.file("/proc/self/mountinfo").content_string), "/proc")
    proc = top_mount(their_mounts, "/proc")
    if proc is None or proc.fstype != "proc":
        detail = f"expected a proc filesystem on /proc, found {proc.fstype if proc else 'nothing'} there"
    elif host_proc is not None and proc.dev == host_proc.dev:
        detail = (
            f"expected a proc mount of its own (another device than the host's {host_proc.dev}), found the host's: "
            "it lists the host's processes, not those of its pid namespace"
        )
    else:
        detail = ""
    c.expect("/proc in its mount namespace is a new proc mount", mnt_new and not detail,
             detail or "expected a mount namespace of its own first")  # fmt: skip

    dev = read_text(f"/proc/{pid}/net/dev") or ""
    links = sorted(line.split(":", 1)[0].strip() for line in dev.splitlines()[2:] if ":" in line)
    c.expect(
        "its network namespace has only lo",
        links == ["lo"],
        f"expected only lo in /proc/{pid}/net/dev, found {', '.join(links) or 'nothing'}"
        + ("" if ns_link(pid, "net") != ns_link("self", "net") else " (the host's network namespace)"),
    )

    scratch = top_mount(their_mounts, SCRATCH)
    if not h.file(SCRATCH).is_directory:
        detail = f"expected the directory {SCRATCH} (setup makes it: start the lab again)"
    elif scratch is None:
        detail = f"expected a tmpfs on {SCRATCH} in /proc/{pid}/mountinfo, found no mount there"
    elif scratch.fstype != "tmpfs":
        detail = f"expected a tmpfs on {SCRATCH}, found a {scratch.fstype} mount"
    else:
        detail = ""
    c.expect("scratch/ is a tmpfs in its mount namespace", not detail, detail)


if __name__ == "__main__":
    sys.exit(fail_on_crash(main))
