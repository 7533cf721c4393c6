"""Benchmarks of minidocker against Docker, measured side by side in the same run.

Usage (root; ``tox -e bench`` runs the default)::

    python benchmarks/run.py                     # every benchmark, full size (~1 GB image)
    python benchmarks/run.py --quick             # ~100 MB image, for smoke runs (< 1 min)
    python benchmarks/run.py --only load --iterations 5 --verify
    python benchmarks/run.py --only run          # container start-up vs docker run and runc run
    python benchmarks/run.py --only network      # what the default bridge adds to run, beside docker
    python benchmarks/run.py --only build        # build (uncached, cached) vs docker's classic builder
    python benchmarks/run.py --only pull         # pull from a loopback registry vs docker pull

Exits 0 whether or not the goals are met (missed goals print ``GOAL MISSED`` lines); exits 1 when
a contender fails, 2 on bad usage. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
import build  # noqa: E402
import load  # noqa: E402
import network  # noqa: E402
import pull  # noqa: E402
import run_start  # noqa: E402

BENCHMARKS = ("load", "pull", "run", "build", "network")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="minidocker vs Docker, side by side")
    p.add_argument("--quick", action="store_true", help="small (~100 MB) image: a smoke run")
    p.add_argument("--only", choices=BENCHMARKS, action="append", help="run only this benchmark")
    p.add_argument(
        "--iterations",
        type=int,
        help="timed runs per contender (default: load/pull 3, run 15, --quick run 5)",
    )
    p.add_argument(
        "--warmup", type=int, help="untimed runs per contender first (default: load 1, run 2, --quick run 1)"
    )
    p.add_argument("--drop-caches", action="store_true", help="drop page/dentry/inode caches before runs")
    p.add_argument(
        "--verify", action="store_true", help="compare dockerd's and minidocker's data roots after warm-up"
    )
    p.add_argument(
        "--no-fresh-fs",
        dest="fresh_fs",
        action="store_false",
        help="data roots on the scratch fs itself, not on a fresh loop-mounted ext4 per run",
    )
    args = p.parse_args(argv)
    if (args.iterations is not None and args.iterations < 1) or (args.warmup is not None and args.warmup < 0):
        p.error("--iterations must be >= 1 and --warmup >= 0")
    if args.verify and args.warmup is not None and args.warmup < 1:
        p.error("--verify needs at least one warm-up run")
    load.install_signal_handlers()
    opts = load.Options(
        3 if args.iterations is None else args.iterations,
        1 if args.warmup is None else args.warmup,
        args.drop_caches,
        args.verify,
        args.fresh_fs,
    )
    run_iterations, run_warmup = run_start.defaults(args.quick)
    if args.iterations is not None:
        run_iterations = args.iterations
    if args.warmup is not None:
        run_warmup = args.warmup
    failed = False
    for name in args.only or BENCHMARKS:
        print(f"== {name} ==", flush=True)
        try:
            if name == "load":
                load.run(args.quick, opts, log=lambda s: print(s, flush=True))
            elif name == "pull":
                pull.run(args.quick, opts, log=lambda s: print(s, flush=True))
            elif name == "run":
                run_start.run(run_iterations, run_warmup, log=lambda s: print(s, flush=True))
            elif name == "network":  # the default bridge's cost in run, beside docker's (issue 5)
                network.run(run_iterations, run_warmup, log=lambda s: print(s, flush=True))
            elif name == "build":
                b_iterations, b_warmup = build.defaults(args.quick)
                build.run(
                    b_iterations if args.iterations is None else args.iterations,
                    b_warmup if args.warmup is None else args.warmup,
                    log=lambda s: print(s, flush=True),
                )
        except load.BenchError as e:
            print(f"ERROR: {e}", flush=True)
            failed = True
    left = _common.leftovers()
    if left:
        print(f"ERROR: scratch dirs left behind: {left}", flush=True)
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
