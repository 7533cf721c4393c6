"""Start-up stays lean: the heavy libraries load only in the verbs that need them (README, issue 3).

Each check runs a fresh interpreter on the CLI's code path (no root, nothing executed against a
data root) and looks at ``sys.modules`` afterwards.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("pyroute2", "requests", "rich", "asyncio")

PROBE = """
import json, sys
sys.argv = ["minidocker", *json.loads(sys.argv[1])]
from minidocker.cli import main
try:
    main.cli.main(args=sys.argv[1:], prog_name="minidocker", standalone_mode=False)
except BaseException:
    pass
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in {heavy})))
"""


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["run", "--help"], ["ps", "--help"], ["images", "--help"], ["network", "--help"]],
)
def test_no_heavy_module_on_the_cli_path(argv: list[str]) -> None:
    code = PROBE.replace("{heavy}", repr(set(HEAVY)))
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(argv)], capture_output=True, text=True, check=True
    ).stdout
    loaded = json.loads(out.strip().splitlines()[-1])
    assert loaded == [], f"minidocker {' '.join(argv)} imported {loaded}"


def test_the_container_path_does_not_import_networking_or_registry() -> None:
    code = (
        "import sys; import minidocker.container.lifecycle, minidocker.container.monitor, "
        "minidocker.cli.run; print(sorted(m for m in sys.modules if m.split('.')[0] in "
        f"{set(HEAVY)!r} or m.startswith(('minidocker.network', 'minidocker.registry'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_monitor_reads_the_default_seccomp_filter_instead_of_compiling_it(tmp_path) -> None:
    """The monitor's warm-up (``monitor._warm``) compiles Docker's default filter once into the exec
    root's cache; later monitors load the program and never import the compiler or its tables."""
    code = (
        "import sys; from minidocker.container import monitor; "
        f"monitor._warm({str(tmp_path / 'seccomp')!r}); "
        "print(sorted(m for m in sys.modules if m.startswith('minidocker.namespaces.s')))"
    )
    compiler = "['minidocker.namespaces.seccomp', 'minidocker.namespaces.seccomp_default', 'minidocker.namespaces.spec', 'minidocker.namespaces.syscalls_x86']"
    runs = [
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True) for _ in "12"
    ]
    assert runs[0].stdout.strip() == compiler  # the first start after boot compiles it
    assert runs[1].stdout.strip() == "['minidocker.namespaces.spec']"
    assert len(list((tmp_path / "seccomp").iterdir())) == 1


RUN_PATH = (
    "minidocker.cli.main",
    "minidocker.cli.runcore",
    "minidocker.cli.context",
    "minidocker.container.lifecycle",
    "minidocker.container.create",
    "minidocker.container.prepare",
)

# what the forked monitor imports to start a container (its warm-up, ``monitor._warm``)
MONITOR_PATH = (
    *RUN_PATH,
    "minidocker.container.monitor",
    "minidocker.container.etcfiles",
    "minidocker.container.jsonlog",
    "minidocker.container.pump",
    "minidocker.namespaces.process",
    "minidocker.cgroups.v1",
    "minidocker.cgroups.v2",
)


def test_run_s_path_imports_neither_typing_nor_inspect() -> None:
    """What ``run`` imports before it creates the container: no ``typing`` (annotation-only names
    sit under ``TYPE_CHECKING``) and no ``inspect`` (``dataclasses`` is imported without it)."""
    code = f"import sys; import {', '.join(RUN_PATH)}; print(sorted({{'typing', 'inspect', 'ast'}} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_monitor_s_start_path_imports_no_typing_either() -> None:
    """The forked monitor imports the start path while the CLI creates the container: on two cores
    that branch is as long as ``create``, so it is held to the same rule."""
    mods = MONITOR_PATH
    code = f"import sys; import {', '.join(mods)}; print(sorted({{'typing', 'inspect'}} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_neither_half_of_run_imports_socket() -> None:
    """The CLI-monitor socket pair, the pty master's ``SCM_RIGHTS`` and ``lo``'s ioctl use
    ``kernel.sockets`` on ``_socket``: ``socket`` (its enums, ``selectors``) is ~2 ms before the
    fork (benchmarks/README.md, round 5)."""
    mods = [*MONITOR_PATH, "minidocker.image.images", "minidocker.image.reference"]
    code = (
        f"import sys; import {', '.join(mods)}; print(sorted({{'socket', 'selectors'}} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_what_the_cli_loads_before_forking_the_monitor_leaves_out_its_own_half() -> None:
    """``fast_main`` forks the monitor once ``container.lifecycle`` is imported; the modules only
    the CLI needs (flags as RunOptions, the image service, the reference grammar) must load after
    the fork, beside the monitor's warm-up, and the monitor's own path must not pull them in."""
    mods = [
        "minidocker.cli.main",
        "minidocker.cli.runcore",
        "minidocker.cli.context",
        "minidocker.container.lifecycle",
        "minidocker.container.monitor",
        "minidocker.container.etcfiles",
        "minidocker.namespaces.process",
    ]
    cli_only = {"minidocker.container.create", "minidocker.image.images", "minidocker.image.reference"}
    code = f"import sys; import {', '.join(mods)}; print(sorted({cli_only!r} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_dataclasses_still_work_and_inspect_is_the_real_module_afterwards() -> None:
    code = (
        "import sys, minidocker, dataclasses\n"
        "assert 'inspect' not in sys.modules\n"
        "@dataclasses.dataclass\n"
        "class NoDoc:\n"
        "    x: int\n"
        "assert NoDoc.__doc__ == 'NoDoc(x: int)', NoDoc.__doc__\n"  # the one use: inspect.signature
        "import inspect\n"
        "assert inspect is sys.modules['inspect'] and hasattr(inspect, 'getsource')\n"
        "assert type(inspect).__name__ == 'module' and inspect.__file__\n"
        "print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "ok"


def test_no_dataclass_on_the_start_path_compiles_its_methods() -> None:
    """Every dataclass that ``run`` (CLI and monitor) defines is a ``minidocker.record`` one: its
    ``__init__`` (frozen: ``__setattr__``, ``__delattr__``) a closure made there, ``__eq__`` and
    ``__repr__`` inherited, so importing the path compiles no method source at all
    (benchmarks/README.md, rounds 4 and 5)."""
    mods = [*MONITOR_PATH, "minidocker.image.images", "minidocker.image.reference"]
    code = (
        "import sys, dataclasses\n"
        "compiled = []\n"
        "if hasattr(dataclasses, '_create_fn'):  # up to 3.12: one exec per method\n"
        "    real = dataclasses._create_fn\n"
        "    dataclasses._create_fn = lambda name, *a, **k: compiled.append(name) or real(name, *a, **k)\n"
        "else:  # 3.13+: a builder per class, one exec for all its methods\n"
        "    real = dataclasses._FuncBuilder.add_fn\n"
        "    dataclasses._FuncBuilder.add_fn = lambda self, name, *a, **k: compiled.append(name) or real(self, name, *a, **k)\n"
        f"import {', '.join(mods)}\n"
        "ours = [c for m in list(sys.modules.values()) if m and m.__name__.startswith('minidocker')\n"
        "        for c in vars(m).values() if isinstance(c, type) and c.__module__ == m.__name__\n"
        "        and dataclasses.is_dataclass(c)]\n"
        "bad = sorted(f'{c.__module__}.{c.__qualname__}' for c in ours\n"
        "             if '__eq__' in vars(c) or '__repr__' in vars(c)\n"
        "             or vars(c)['__init__'].__module__ != 'minidocker.record')\n"
        "print(len(ours), compiled, bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    count, rest = out.split(" ", 1)
    assert int(count) >= 30 and rest.strip() == "[] []"
