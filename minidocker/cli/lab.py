"""``minidocker lab list|start NN|check NN|hint NN [LEVEL]|reset NN``: the labs, from the CLI.

The labs are not part of the package: they live in the repository's ``labs/`` directory, next to
``minidocker/``, and ``labs/runner.py`` does the work. This command finds that runner in the
checkout minidocker is installed from (an editable install, as ``scripts/provision.sh`` makes it)
and runs it with the same interpreter, so ``minidocker lab check 03`` is exactly
``python labs/runner.py check 03`` (same output, same exit code)::

    $ sudo minidocker lab start 11
    $ sudo minidocker lab check 11          # PASS/FAIL per expectation; exit 0 when all pass
    $ minidocker lab hint 11 2

Installed without a checkout (from a wheel), there are no labs: the command says so in one line
and exits 125.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click

import minidocker
from minidocker.errors import NotFound


def find_runner() -> Path:
    """``<checkout>/labs/runner.py`` for the checkout this package is imported from.

    >>> find_runner()                                # doctest: +SKIP
    PosixPath('/work/main/labs/runner.py')
    """
    checkout = Path(minidocker.__file__).resolve().parent.parent
    runner = checkout / "labs" / "runner.py"
    if not runner.is_file():
        raise NotFound(
            f"the labs are not available: no {runner} (they come with a checkout of the minidocker "
            "repository; install it from there with `pip install -e .`)",
            subject=str(runner),
        )
    return runner


def delegate(*args: str) -> int:
    """Run ``labs/runner.py ARGS`` with this interpreter, attached to our terminal; its exit code."""
    runner = find_runner()
    return subprocess.run([sys.executable, str(runner), *args], check=False).returncode


def _run(*args: str) -> None:
    # SystemExit, not click's Exit: `python -m minidocker` ignores main()'s return value, and a
    # checker's FAIL (exit 1) must reach the shell either way.
    code = delegate(*args)
    if code:
        sys.exit(code)


@click.group("lab")
def lab_group() -> None:
    """Run the labs (labs/runner.py): list, start, check, hint, reset.

    Each lab works under /var/lib/minidocker-labs/NN with its own data root; all but `list` and
    `hint` need root. See labs/README.md.
    """


@lab_group.command("list")
def list_() -> None:
    """List the labs and whether you started them."""
    _run("list")


@lab_group.command("start")
@click.argument("lab")
def start(lab: str) -> None:
    """Reset LAB, then set it up from a known state."""
    _run("start", lab)


@lab_group.command("check")
@click.argument("lab")
def check(lab: str) -> None:
    """Check your work: one PASS/FAIL line per expectation, exit 0 when all pass."""
    _run("check", lab)


@lab_group.command("hint")
@click.argument("lab")
@click.argument("level", required=False, type=click.IntRange(min=1), default=1)
def hint(lab: str, level: int) -> None:
    """Show hint LEVEL (1, 2, 3: more specific each time) for LAB."""
    _run("hint", lab, str(level))


@lab_group.command("reset")
@click.argument("lab")
def reset(lab: str) -> None:
    """Remove everything LAB created: processes, mounts, links, rules, its directory."""
    _run("reset", lab)
