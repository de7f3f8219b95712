"""`make bench`: opencams under load, measured against the floor of its own stack.

Starts `opencams serve` as production would (a subprocess; uvicorn with uvloop and httptools),
provisions a tenant with `opencams apply`, bulk-seeds groups with `opencams dev seed`, signs
unique V3 requests ahead of each run (one nonce each: replay protection stays on), replays them
with wrk at 64 connections for a fixed duration, and writes bench/RESULTS.md. See bench/README.md.

    .venv/bin/python bench/run.py [--quick] [--duration S] [--database sqlite|postgresql|both]
                                  [--out bench/RESULTS.md]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

from bench.common import BENCH, GRANIAN_VERSION, OUT, BenchError, log
from bench.load import Load
from bench.report import cross_targets, machine, render, targets
from bench.suite import bench_database
from bench.tools import ensure_wrk, pip_target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny data, 2-second runs (smoke)")
    parser.add_argument("--duration", type=int, default=None, help="seconds per measured run")
    parser.add_argument("--warmup", type=int, default=None, help="seconds of warm-up per run")
    parser.add_argument(
        "--database", choices=("sqlite", "postgresql", "both"), default="sqlite", help="backend(s)"
    )
    parser.add_argument("--out", type=Path, default=BENCH / "RESULTS.md", help="the report")
    parser.add_argument(
        "--json", type=Path, default=OUT / "results.json", help="the figures, machine-readable"
    )
    parser.add_argument(
        "--work", type=Path, default=OUT, help="databases, logs, signed requests (scratch)"
    )
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--granian", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--profile", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--profile-seconds", type=int, default=10)
    parser.add_argument(
        "--before",
        type=Path,
        default=None,
        metavar="JSON",
        help="an earlier run's results.json (same machine): RESULTS.md gets before/after tables",
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0,
        metavar="SECONDS",
        help="on a shared machine, wait up to this long in all for other processes to go idle",
    )
    args = parser.parse_args(argv)
    args.argv = list(argv if argv is not None else sys.argv[1:])
    if args.duration is None:
        args.duration = 2 if args.quick else 10
    if args.warmup is None:
        args.warmup = 1 if args.quick else 2
    if args.profile is None:
        args.profile = not args.quick
    started = time.time()
    args.before_figures = json.loads(args.before.read_text()) if args.before else None
    try:
        load = Load(
            args.duration,
            args.warmup,
            args.connections,
            args.threads,
            ensure_wrk(),
            quiet_budget=args.wait_quiet,
        )
        args.work.mkdir(parents=True, exist_ok=True)
        granian = pip_target("granian", GRANIAN_VERSION) if args.granian else None
        backends = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
        runs = [bench_database(backend, args, load, granian) for backend in backends]
    except BenchError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 2
    info = machine()
    report = render(args, info, runs, started)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    summary = {
        "machine": info,
        "quick": args.quick,
        "runs": [
            {
                "database": run["database"],
                "results": [asdict(r) | {"errors": r.errors} for r in run["results"].values()],
                "targets": [asdict(t) for t in targets(run["results"])],
                "seeds": run["seeds"],
                "profile": run["profile"],
            }
            for run in runs
        ],
        "targets_across": [asdict(t) for t in cross_targets(runs)],
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(summary, indent=2))
    log(f"wrote {args.out} in {time.time() - started:.0f} s")
    failed = [r.key for run in runs for r in run["results"].values() if not r.skipped and r.errors]
    if failed:
        print(f"bench: scenarios with errors: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
