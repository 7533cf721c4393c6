#!/usr/bin/env python3
"""Run, check and prove the minidocker labs.

::

    python labs/runner.py list                 # labs, their titles, whether you started them
    python labs/runner.py start 03             # clean state + setup (prints where to work)
    python labs/runner.py check 03             # run the checker: one PASS/FAIL line per expectation
    python labs/runner.py hint 03 [LEVEL]      # tiered hints, level 1 (gentle) upwards
    python labs/runner.py reset 03             # undo everything the lab created (unmount, remove)
    python labs/runner.py prove 03 [04 ...]    # maintainers: the lab is sound (see below)
    python labs/runner.py --all                # prove every lab (what `tox -e labs` runs)

``prove`` runs, twice in a row: cleanup -> setup -> check must FAIL -> solution -> check must PASS ->
cleanup, then asserts the host is clean: no mounts under the lab dir, the lab dir gone, and nothing
new since the cycle's first cleanup in the mount table, ``ip link``, ``ip netns``, the cgroup trees or the
rules and chains of ``iptables-save``. It exits non-zero naming the lab, the cycle, the step and the
expectation (or the leftover) that went wrong.

Everything a lab creates lives under ``$MINIDOCKER_LABS_DIR/NN`` (default
``/var/lib/minidocker-labs/NN``), including its own minidocker data root ``NN/root``. Root only.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

LABS = Path(__file__).resolve().parent
sys.path.insert(0, str(LABS))

from _lib.checks import EXIT_FAIL, EXIT_PASS, LABS_DIR, lab_dir, mounts, mounts_under  # noqa: E402

SCRIPT_TIMEOUT = 600  # seconds; a hung mount or a runaway script must not hang CI forever
PROVE_CYCLES = 2
# Some teardown finishes after its command returns (a deleted netns takes its veths with it a moment
# later): leftovers must survive this long to count.
SETTLE_SECONDS = 10.0
# iproute2 makes /run/netns a shared bind mount of itself the first time `ip netns add` runs, once
# per boot, and everyone's named namespaces live below it: host plumbing, not a lab's leftover.
HOST_PLUMBING_MOUNTS = frozenset({"/run/netns"})


@dataclass(frozen=True)
class Lab:
    number: str  # "03"
    path: Path  # labs/03-overlay2

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def title(self) -> str:
        """The README's first heading, e.g. "Lab 03 — overlay2 by hand"."""
        for line in (self.path / "README.md").read_text().splitlines():
            if line.startswith("# "):
                return line[2:].strip()
        return self.name

    @property
    def work_dir(self) -> str:
        return lab_dir(self.number)


class ProveError(Exception):
    """A prove step went wrong; the message names the lab, cycle, step and expectation."""


def discover() -> dict[str, Lab]:
    labs = {}
    for d in sorted(LABS.iterdir()):
        m = re.match(r"(\d\d)-", d.name)
        if m and d.is_dir():
            labs[m.group(1)] = Lab(m.group(1), d)
    return labs


def get_lab(number: str) -> Lab:
    labs = discover()
    key = number.zfill(2) if number.isdigit() else number
    for lab in labs.values():
        if key in (lab.number, lab.name):
            return lab
    raise SystemExit(f"no lab {number!r}; known labs: {', '.join(labs)}")


def script_env() -> dict[str, str]:
    """Environment for setup/cleanup/solution/check: where labs live, how to call minidocker and python."""
    env = dict(os.environ)
    env["MINIDOCKER_LABS_DIR"] = LABS_DIR
    env["PYTHON"] = sys.executable
    if "MINIDOCKER" not in env:
        # Prefer the console script; fall back to the package in this interpreter.
        env["MINIDOCKER"] = "minidocker" if shutil.which("minidocker") else f"{sys.executable} -m minidocker"
    # A lab sets its own data root; an inherited one would make scripts touch the user's images.
    env.pop("MINIDOCKER_DATA_ROOT", None)
    return env


def run_script(lab: Lab, rel: str, *, capture: bool) -> subprocess.CompletedProcess[str]:
    path = lab.path / rel
    cmd = [sys.executable, str(path)] if path.suffix == ".py" else ["bash", str(path)]
    return subprocess.run(
        cmd,
        env=script_env(),
        cwd=str(LABS.parent),
        text=True,
        capture_output=capture,
        timeout=SCRIPT_TIMEOUT,
        check=False,
    )


def check_lines(out: str) -> tuple[list[str], list[str]]:
    lines = out.splitlines()
    return [x for x in lines if x.startswith("PASS ")], [x for x in lines if x.startswith("FAIL ")]


# -- student commands -----------------------------------------------------------------------------
def cmd_list() -> int:
    for lab in discover().values():
        state = "started" if os.path.isdir(lab.work_dir) else "not started"
        print(f"{lab.number}  {lab.title:<50}  [{state}]")
    return 0


def cmd_start(lab: Lab) -> int:
    res = run_script(lab, "setup.sh", capture=False)
    if res.returncode != 0:
        print(f"setup of lab {lab.number} failed (exit {res.returncode})", file=sys.stderr)
        return res.returncode
    print()
    print(f"Lab {lab.number} is ready. Read {lab.path}/README.md")
    print(f"  work dir : {lab.work_dir}")
    print(
        f"  env      : export MINIDOCKER_DATA_ROOT={lab.work_dir}/root MINIDOCKER_EXEC_ROOT={lab.work_dir}/exec"
    )
    print(f"  check    : minidocker lab check {lab.number}   (hints: minidocker lab hint {lab.number})")
    return 0


def cmd_check(lab: Lab) -> int:
    return run_script(lab, "check.py", capture=False).returncode


def hint_levels(lab: Lab) -> list[tuple[str, str]]:
    """``## Level N — title`` sections of hints.md as (heading, body)."""
    text = (lab.path / "hints.md").read_text()
    parts = re.split(r"^(## Level \d+.*)$", text, flags=re.M)
    return [(parts[i].lstrip("# ").strip(), parts[i + 1].strip()) for i in range(1, len(parts) - 1, 2)]


def cmd_hint(lab: Lab, level: int) -> int:
    levels = hint_levels(lab)
    if not 1 <= level <= len(levels):
        print(f"lab {lab.number} has hint levels 1..{len(levels)}", file=sys.stderr)
        return 2
    heading, body = levels[level - 1]
    print(f"{heading}\n\n{body}")
    if level < len(levels):
        print(f"\n(still stuck? minidocker lab hint {lab.number} {level + 1})")
    return 0


def cmd_reset(lab: Lab) -> int:
    return run_script(lab, "cleanup.sh", capture=False).returncode


# -- prove --------------------------------------------------------------------------------------
def _step(lab: Lab, cycle: int, what: str, rel: str) -> subprocess.CompletedProcess[str]:
    try:
        res = run_script(lab, rel, capture=True)
    except subprocess.TimeoutExpired:
        raise ProveError(
            f"lab {lab.number}, cycle {cycle}: {what} timed out after {SCRIPT_TIMEOUT}s"
        ) from None
    return res


def _require_ok(lab: Lab, cycle: int, what: str, res: subprocess.CompletedProcess[str]) -> None:
    if res.returncode != 0:
        tail = "\n".join((res.stdout + res.stderr).strip().splitlines()[-15:])
        raise ProveError(f"lab {lab.number}, cycle {cycle}: {what} exited {res.returncode}:\n{tail}")


def _lines(cmd: list[str]) -> list[str]:
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    return res.stdout.splitlines() if res.returncode == 0 else []


def host_state() -> frozenset[str]:
    """What a lab could leave behind, one "kind item" string each.

    ``mount`` (mount point and type, from mountinfo), ``link`` (``ip -o link``), ``netns``
    (``ip netns list``), ``cgroup`` (every directory of every hierarchy under /sys/fs/cgroup) and
    ``iptables`` (rules and user chains of ``iptables-save``, counters dropped; built-in chains and
    table headers are not a lab's, and appear as soon as anyone loads the table).
    """
    items: set[str] = set()
    for m in mounts():
        if m.mount_point not in HOST_PLUMBING_MOUNTS:
            items.add(f"mount {m.mount_point} ({m.fstype})")
    for line in _lines(["ip", "-o", "link", "show"]):
        items.add("link " + line.split(":", 2)[1].strip().split("@", 1)[0])
    for line in _lines(["ip", "netns", "list"]):
        if line.strip():
            items.add("netns " + line.split()[0])
    base = "/sys/fs/cgroup"
    for top in sorted(os.listdir(base)) if os.path.isdir(base) else []:
        if os.path.islink(os.path.join(base, top)):
            continue
        for d, _, _ in os.walk(os.path.join(base, top)):
            items.add(f"cgroup {d}")
    items.update(iptables_items(_lines(["iptables-save"])))
    return frozenset(items)


def iptables_items(save: list[str]) -> set[str]:
    """Rules and user chains of ``iptables-save`` output, as "iptables -t TABLE LINE" without counters.

    >>> sorted(iptables_items(["*nat", ":OUTPUT ACCEPT [4:240]", ":LAB07 - [0:0]", "-A OUTPUT -j LAB07", "COMMIT"]))
    ['iptables -t nat -A OUTPUT -j LAB07', 'iptables -t nat :LAB07 -']
    """
    items, table = set(), ""
    for line in save:
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith("-A ") or (line.startswith(":") and " - " in line):
            items.add(f"iptables -t {table} " + line.rsplit(" [", 1)[0])
    return items


def leftovers(before: frozenset[str]) -> list[str]:
    """Items on the host now that were not there before; waits SETTLE_SECONDS for them to go.

    On a host where other work runs at the same time (tests starting containers, a dockerd),
    ``MINIDOCKER_LABS_IGNORE_LEFTOVERS`` is a regular expression of items that are not the labs'
    (e.g. ``mdtest-|/minidocker/[0-9a-f]{64}``): matching items are left out.
    """
    ignore = os.environ.get("MINIDOCKER_LABS_IGNORE_LEFTOVERS")
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        new = sorted(x for x in host_state() - before if not (ignore and re.search(ignore, x)))
        if not new or time.monotonic() > deadline:
            return new
        time.sleep(0.5)


def assert_clean(lab: Lab, before: frozenset[str] | None = None) -> None:
    left = mounts_under(lab.work_dir)
    if left:
        raise ProveError(f"lab {lab.number}: host not clean, still mounted: {[m.mount_point for m in left]}")
    if os.path.lexists(lab.work_dir):
        raise ProveError(f"lab {lab.number}: host not clean, {lab.work_dir} still exists after cleanup")
    new = leftovers(before) if before is not None else []
    if new:
        shown = "; ".join(new[:10]) + (f" (+{len(new) - 10} more)" if len(new) > 10 else "")
        raise ProveError(
            f"lab {lab.number}: host not clean after cleanup, new since the cycle began: {shown}"
        )


def prove(lab: Lab) -> None:
    for cycle in range(1, PROVE_CYCLES + 1):
        tag = f"prove {lab.number} [{cycle}/{PROVE_CYCLES}]"
        _require_ok(lab, cycle, "cleanup.sh", _step(lab, cycle, "cleanup", "cleanup.sh"))
        # After the cleanup: what an earlier attempt left is gone. Per cycle, so that work of others
        # on a shared host has one cycle's time, not two, to be mistaken for the lab's.
        before = host_state()
        _require_ok(lab, cycle, "setup.sh", _step(lab, cycle, "setup", "setup.sh"))

        res = _step(lab, cycle, "check on the fresh state", "check.py")
        passes, fails = check_lines(res.stdout)
        if res.returncode != EXIT_FAIL or not fails:
            detail = res.stderr.strip() or "every expectation passed before the solution ran"
            raise ProveError(
                f"lab {lab.number}, cycle {cycle}: check on the fresh state must FAIL (exit {EXIT_FAIL}), "
                f"got exit {res.returncode}: {detail}"
            )
        print(f"{tag} fresh state fails as it should ({len(fails)} FAIL, {len(passes)} PASS)", flush=True)

        _require_ok(lab, cycle, "solution/solution.sh", _step(lab, cycle, "solution", "solution/solution.sh"))

        res = _step(lab, cycle, "check after the solution", "check.py")
        passes, fails = check_lines(res.stdout)
        if res.returncode != EXIT_PASS or fails or not passes:
            first = fails[0] if fails else (res.stderr.strip() or f"exit {res.returncode} with no FAIL line")
            raise ProveError(
                f"lab {lab.number}, cycle {cycle}: check after the solution must PASS, "
                f"got exit {res.returncode}: {first}"
                + (f" (+{len(fails) - 1} more FAIL)" if len(fails) > 1 else "")
            )
        print(f"{tag} solution passes ({len(passes)} PASS)", flush=True)

        _require_ok(lab, cycle, "cleanup.sh", _step(lab, cycle, "cleanup", "cleanup.sh"))
        assert_clean(lab, before)
    print(f"prove {lab.number}: OK, host clean", flush=True)


def cmd_prove(labs: list[Lab]) -> int:
    failed = []
    for lab in labs:
        try:
            prove(lab)
        except ProveError as e:
            print(f"PROVE FAILED: {e}", file=sys.stderr, flush=True)
            failed.append(lab.number)
            # Leave the host as clean as we can even when a lab is broken.
            subprocess.run(["bash", str(lab.path / "cleanup.sh")], env=script_env(), check=False,
                           capture_output=True, timeout=SCRIPT_TIMEOUT)  # fmt: skip
    # The labs dir itself is ours too: drop it when the proven labs left it empty.
    if os.path.isdir(LABS_DIR) and not os.listdir(LABS_DIR):
        os.rmdir(LABS_DIR)
    if failed:
        print(f"labs that failed to prove: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"proved {len(labs)} lab(s): {', '.join(lab.number for lab in labs)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="runner.py", description="Run, check and prove the minidocker labs.")
    p.add_argument("--all", action="store_true", help="prove every lab (the CI entry point)")
    sub = p.add_subparsers(dest="command")
    sub.add_parser("list", help="list the labs")
    for name, text in (("start", "reset and set up a lab"), ("check", "check your work"),
                       ("reset", "remove everything the lab created")):  # fmt: skip
        sub.add_parser(name, help=text).add_argument("lab")
    hp = sub.add_parser("hint", help="show a hint (levels get more specific)")
    hp.add_argument("lab")
    hp.add_argument("level", nargs="?", type=int, default=1)
    pp = sub.add_parser("prove", help="prove labs are sound (fail fresh, pass solved, clean up; twice)")
    pp.add_argument("labs", nargs="+")
    args = p.parse_args(argv)

    if args.command in (None, "list") and not args.all:
        return cmd_list()
    if os.geteuid() != 0 and (args.all or args.command in ("start", "check", "reset", "prove")):
        print("labs mount filesystems and write under /var/lib: run as root", file=sys.stderr)
        return 2
    if args.all:
        return cmd_prove(list(discover().values()))
    if args.command == "prove":
        return cmd_prove([get_lab(n) for n in args.labs])
    lab = get_lab(args.lab)
    if args.command == "start":
        return cmd_start(lab)
    if args.command == "check":
        return cmd_check(lab)
    if args.command == "hint":
        return cmd_hint(lab, args.level)
    return cmd_reset(lab)


if __name__ == "__main__":
    sys.exit(main())
