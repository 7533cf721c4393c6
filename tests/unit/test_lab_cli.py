"""``minidocker lab …`` hands its arguments to labs/runner.py and returns its exit code (no root).

A stand-in runner records the arguments it got; the real runner's ``list`` and ``hint`` (which need
no root) show the command finds the checkout's labs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from minidocker.cli import lab
from minidocker.cli.main import main

REPO = Path(__file__).resolve().parents[2]

FAKE_RUNNER = """\
import sys
print("runner got:", " ".join(sys.argv[1:]))
sys.exit(int(sys.argv[-1]) if sys.argv[-1].isdigit() and sys.argv[1] == "hint" else 0)
"""


@pytest.fixture
def fake_runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    runner = tmp_path / "runner.py"
    runner.write_text(FAKE_RUNNER)
    monkeypatch.setattr(lab, "find_runner", lambda: runner)
    return runner


def _exit_code(argv: list[str]) -> int:
    """What the console script exits with: ``sys.exit(main(argv))``."""
    try:
        return int(main(argv) or 0)
    except SystemExit as e:
        return int(e.code or 0)


@pytest.mark.parametrize(
    ("argv", "forwarded"),
    [
        (["lab", "list"], "list"),
        (["lab", "start", "11"], "start 11"),
        (["lab", "check", "03"], "check 03"),
        (["lab", "reset", "07"], "reset 07"),
        (["lab", "hint", "05"], "hint 05 1"),
        (["lab", "hint", "05", "3"], "hint 05 3"),
    ],
)
def test_each_verb_is_forwarded(
    fake_runner: Path, capfd: pytest.CaptureFixture[str], argv: list[str], forwarded: str
) -> None:
    code = _exit_code(argv)
    out = capfd.readouterr().out
    assert out.strip() == f"runner got: {forwarded}"
    want = int(forwarded.split()[-1]) if forwarded.startswith("hint") else 0  # the stand-in's choice
    assert code == want, "the runner's exit code is ours"


def test_runner_exit_code_is_passed_through(fake_runner: Path, capfd: pytest.CaptureFixture[str]) -> None:
    # The stand-in exits with the level it was given for `hint`: a checker's FAIL (1) works the same,
    # also through `python -m minidocker`, whose __main__ ignores main()'s return value.
    assert _exit_code(["lab", "hint", "01", "2"]) == 2
    assert "runner got: hint 01 2" in capfd.readouterr().out
    res = subprocess.run([sys.executable, "-m", "minidocker", "lab", "hint", "11", "9"],
                         capture_output=True, text=True, check=False)  # fmt: skip
    assert res.returncode == 2 and "hint levels 1..3" in res.stderr


def test_bad_level_is_a_flag_error(fake_runner: Path, capfd: pytest.CaptureFixture[str]) -> None:
    assert _exit_code(["lab", "hint", "01", "0"]) == 125
    assert "runner got" not in capfd.readouterr().out


def test_no_labs_is_one_125_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capfd: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    # A package imported from somewhere without labs/ (an installed wheel).
    pkg = tmp_path / "site-packages" / "minidocker"
    pkg.mkdir(parents=True)
    monkeypatch.setattr(lab.minidocker, "__file__", str(pkg / "__init__.py"))
    assert _exit_code(["lab", "list"]) == 125
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("Error: the labs are not available: no ")
    assert str(tmp_path / "site-packages" / "labs" / "runner.py") in err[0]


def test_finds_the_checkouts_runner() -> None:
    assert lab.find_runner() == REPO / "labs" / "runner.py"


def test_real_runner_through_the_console_entry() -> None:
    """End to end, no root: `python -m minidocker lab list|hint` prints what labs/runner.py prints."""
    res = subprocess.run([sys.executable, "-m", "minidocker", "lab", "list"],
                         capture_output=True, text=True, check=False)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert any(line.startswith("11  Lab 11 ") for line in res.stdout.splitlines())
    direct = subprocess.run([sys.executable, str(REPO / "labs" / "runner.py"), "hint", "11", "2"],
                            capture_output=True, text=True, check=False)  # fmt: skip
    via = subprocess.run([sys.executable, "-m", "minidocker", "lab", "hint", "11", "2"],
                         capture_output=True, text=True, check=False)  # fmt: skip
    assert via.returncode == direct.returncode == 0
    assert via.stdout == direct.stdout and "Level 2" in via.stdout
