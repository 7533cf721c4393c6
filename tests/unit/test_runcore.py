"""The click-free fast path of ``minidocker run`` (cli/runcore.py) against the click path.

Both must turn the same command line into the same global options and the same RunOptions; what
the fast parser does not take whole (help, errors, odd forms) must go to click unchanged.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from minidocker.cli import main, runcore


class _Captured(Exception):
    pass


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, Any]]:
    """Stop both paths where the work would start, recording (ctx, RunOptions)."""
    calls: list[tuple[Any, Any]] = []

    def fake(ctx: Any, opts: Any, prepared: Any = None) -> None:
        if prepared is not None:  # the fast path forked the monitor already: end it
            prepared.cancel()
        calls.append((ctx, opts))
        raise _Captured

    monkeypatch.setattr(runcore, "run_container", fake)
    monkeypatch.delenv("MINIDOCKER_DATA_ROOT", raising=False)
    monkeypatch.delenv("MINIDOCKER_EXEC_ROOT", raising=False)
    return calls


def _fast(argv: list[str], calls: list[tuple[Any, Any]]) -> tuple[Any, Any]:
    with pytest.raises(_Captured):
        assert runcore.fast_main(argv)
    return calls.pop()


def _click(argv: list[str], calls: list[tuple[Any, Any]]) -> tuple[Any, Any]:
    with pytest.raises(_Captured):
        main.cli.main(args=argv, prog_name="minidocker", standalone_mode=False)
    return calls.pop()


SAME = [
    ["run", "--rm", "--network", "none", "busybox", "true"],
    ["--data-root", "/d", "--exec-root=/e", "-D", "run", "busybox"],
    ["run", "-it", "--name=web", "-e", "A=1", "-eB=2", "--env", "C=3", "busybox", "sh", "-c", "echo $A"],
    ["run", "-dit", "-p", "8080:80", "-P", "--expose", "90", "-l", "a=1", "-l", "b", "busybox", "top"],
    ["run", "-de", "X=1", "-w", "/tmp", "-u", "1000:1000", "--entrypoint", "", "busybox", "-x", "--rm"],
    ["run", "-m", "64m", "--memory-swap=128m", "--cpus", "0.5", "-c", "512", "--pids-limit", "-1", "busybox"],
    ["run", "--net", "host", "--dns", "1.1.1.1", "--add-host", "db:10.0.0.5", "--read-only", "busybox"],
    ["run", "--cap-add", "NET_ADMIN", "--cap-drop=ALL", "--security-opt", "no-new-privileges", "busybox"],
    ["run", "--restart", "on-failure:3", "--stop-signal", "SIGINT", "--stop-timeout", "5", "busybox"],
    ["run", "-v", "/data", "-v", "/host:/ctr:ro", "--init", "-h", "box", "--domainname", "x.org", "busybox"],
    ["run", "--name", "-odd", "busybox", "-"],
    ["run", "busybox", "--help"],  # after IMAGE everything is the container's
]


@pytest.mark.parametrize("argv", SAME, ids=lambda a: " ".join(a))
def test_fast_path_builds_what_click_builds(argv: list[str], captured: list[tuple[Any, Any]]) -> None:
    fast_ctx, fast_opts = _fast(argv, captured)
    click_ctx, click_opts = _click(argv, captured)
    assert fast_opts == click_opts
    assert (fast_ctx.data_root, fast_ctx.exec_root, fast_ctx.debug) == (
        click_ctx.data_root,
        click_ctx.exec_root,
        click_ctx.debug,
    )


def test_fast_path_reads_the_data_root_from_the_environment(
    captured: list[tuple[Any, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MINIDOCKER_DATA_ROOT", "/env/data")
    monkeypatch.setenv("MINIDOCKER_EXEC_ROOT", "")  # empty: the default, as click has it
    argv = ["run", "busybox"]
    fast_ctx, _ = _fast(argv, captured)
    click_ctx, _ = _click(argv, captured)
    assert (fast_ctx.data_root, fast_ctx.exec_root) == (click_ctx.data_root, click_ctx.exec_root)
    assert fast_ctx.data_root == "/env/data"


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["-h"],
        ["--version"],
        ["run", "--help"],
        ["run"],  # missing IMAGE
        ["run", "--bogus", "busybox"],
        ["run", "-x", "busybox"],
        ["run", "-itx", "busybox"],
        ["run", "--rm=yes", "busybox"],
        ["run", "--name"],  # value missing
        ["run", "--cpu-shares", "many", "busybox"],
        ["run", "--", "busybox"],
        ["--bogus", "run", "busybox"],
        ["ps", "-a"],
        ["container", "run", "busybox"],
        [],
    ],
    ids=lambda a: " ".join(a) or "(none)",
)
def test_everything_else_goes_to_click(argv: list[str]) -> None:
    assert runcore.parse_run(argv) is None


def test_the_fast_path_imports_no_click() -> None:
    code = (
        "import sys; from minidocker.cli import main, runcore; "
        "runcore.parse_run(['run', '--rm', '--network', 'none', 'busybox', 'true']); "
        "runcore.options('busybox', ['true'], False, runcore.parse_run(['run', 'busybox'])[4]); "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'click')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", "import json; " + code], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) == []


def test_click_errors_keep_their_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main.main(["run", "--bogus", "busybox"])
    assert e.value.code == 125
    assert "No such option" in capsys.readouterr().err


def test_a_prepared_monitor_goes_away_when_cancelled_or_abandoned(tmp_path: Any) -> None:
    from minidocker.container.lifecycle import Runtime
    from minidocker.image.store import Stores

    rt = Runtime(Stores.open(str(tmp_path / "data")), str(tmp_path / "exec"))
    prepared = rt.prepare()
    prepared.cancel()
    with pytest.raises(ChildProcessError):
        os.waitpid(prepared.pid, os.WNOHANG)
    # the CLI gone (its end closed, no "go"): the prepared monitor exits by itself, with 0
    other = rt.prepare()
    other.stop_warming()  # (a CLI that goes away takes its warm-up thread with it)
    other.sock.close()
    _, status = os.waitpid(other.pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert not os.path.exists(tmp_path / "exec" / "containers")


def _children() -> set[str]:
    with open(f"/proc/self/task/{os.getpid()}/children") as f:
        return set(f.read().split())


def test_a_bad_flag_value_ends_the_monitor_forked_ahead(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from minidocker.errors import InvalidInput

    monkeypatch.setenv("MINIDOCKER_DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.setenv("MINIDOCKER_EXEC_ROOT", str(tmp_path / "exec"))
    before = _children()  # (e.g. another test's network helper)
    with pytest.raises(InvalidInput, match="invalid size"):
        runcore.fast_main(["run", "--network", "none", "-m", "64x", "busybox", "true"])
    assert _children() == before  # the monitor forked ahead is gone (and reaped)
    assert not (tmp_path / "data").exists()


def test_the_fast_path_runs_without_the_cyclic_collector_and_the_rest_with_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``main`` turns the collector off for ``run``'s fast path (its monitor turns it on again once
    the container runs) and back on before any other verb goes to click."""
    import contextlib
    import gc

    seen: list[bool] = []

    def fast(argv: list[str]) -> bool:
        seen.append(gc.isenabled())
        return argv[0] == "run"

    monkeypatch.setattr(runcore, "fast_main", fast)
    try:
        main.main(["run", "busybox"])
        assert seen == [False]
        with contextlib.suppress(SystemExit):
            main.main(["--version"])
        assert seen == [False, False] and gc.isenabled()
    finally:
        gc.enable()


def test_the_fast_path_warms_cgroup_attach_before_it_forks_the_monitor(
    captured: list[tuple[Any, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The warm-up's first cgroup.procs write waits one RCU grace period (~12 ms) holding
    cgroup_mutex; started at the fork it still held up the monitor's cgroup mkdirs, so the fast
    path starts it as soon as it knows it is a run, and hands the same warmer to fork_monitor."""
    from minidocker.cgroups import warm
    from minidocker.container import prepare

    events: list[object] = []

    class Marker:
        def stop(self) -> None:
            events.append("stopped")

    marker = Marker()

    def start(cls: Any, **kw: Any) -> Marker:
        events.append("warm")
        return marker

    monkeypatch.setattr(warm.Warmer, "start", classmethod(start))
    real_fork = prepare.fork_monitor

    def fork(*args: Any, **kwargs: Any) -> Any:
        events.append(kwargs.get("warmer"))
        return real_fork(*args, **kwargs)

    monkeypatch.setattr(prepare, "fork_monitor", fork)
    _fast(["run", "--rm", "--network", "none", "busybox", "true"], captured)
    assert events == ["warm", marker, "stopped"]  # started once, before the fork; then cancelled


def test_the_early_warm_up_stops_when_the_monitor_cannot_be_forked(monkeypatch: pytest.MonkeyPatch) -> None:
    from minidocker.cgroups import warm
    from minidocker.container import prepare

    stopped: list[bool] = []

    class Marker:
        def stop(self) -> None:
            stopped.append(True)

    monkeypatch.setattr(warm.Warmer, "start", classmethod(lambda cls, **kw: Marker()))

    def fork(*args: Any, **kwargs: Any) -> Any:
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(prepare, "fork_monitor", fork)
    with pytest.raises(OSError):
        runcore.fast_main(["run", "--rm", "--network", "none", "busybox", "true"])
    assert stopped == [True]
