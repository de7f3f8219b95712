"""The runs on one database, in order: the floor and the reads, the profile, the write, the
durability comparison (SQLite), the small database, two workers, granian."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from bench import deadreceiver
from bench.common import GRANIAN_VERSION, log
from bench.dataset import FULL, QUICK, build_dataset, server_env
from bench.load import Load, Result, measure
from bench.profiling import profile_list, query_plans, store_costs
from bench.scenarios import scenarios, small_scenario
from bench.servers import serve, serve_supports_workers


def _settled(result: Result) -> str:
    value = result.settled_cpu_ms_per_request
    return "n/a" if value is None else f"{value:.2f}"


def _cores(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def bench_database(
    backend: str, args: argparse.Namespace, load: Load, granian: Path | None
) -> dict[str, Any]:
    work = args.work / backend
    work.mkdir(parents=True, exist_ok=True)
    sizes = QUICK if args.quick else FULL
    log(f"{backend}: building the big database ({sizes.groups:,} groups)")
    big = build_dataset(backend, "big", sizes, work)
    log(f"{backend}: building the small database (1,000 groups)")
    small = build_dataset(backend, "small", None, work)
    results: dict[str, Result] = {}
    notes: list[str] = []
    env = server_env(big.database_url)
    settings = (
        "`OPENCAMS_SANDBOX=true` (the simulator mounted in the server, reached over HTTP), "
        "`OPENCAMS_SANDBOX_WEBHOOK_DELAY` 1 s (default), throttling 1,000,000/s per action "
        "for the bench account (`throttling:` in its provisioning; the default 50/s is the "
        "vendor's quota and would cap every figure), replay protection on (every request has "
        "its own nonce), the RAM user's policy evaluated on every call, the audit log on"
    )
    all_scenarios = scenarios(big)
    profile: dict[str, Any] | None = None
    with serve("uvicorn", env, work, "uvicorn") as server:
        floor = measure([server], all_scenarios["floor"], load, work, backend, 20000)
        results["floor"] = floor
        for key in (
            "list-p1",
            "list-p1-root",
            "list-p500",
            "list-subject",
            "list-status",
            "list-1k-in-1m",
            "participants",
        ):
            results[key] = measure([server], all_scenarios[key], load, work, backend, floor.rps)
        if args.profile:
            # Before AddChatGroup: its webhooks would still be arriving during the profile.
            log("profiling ListChatGroup with py-spy")
            profile = profile_list(
                server,
                all_scenarios["list-p1"],
                load,
                work,
                results["list-p1"].rps,
                args.profile_seconds,
            )
        results["add"] = measure([server], all_scenarios["add"], load, work, backend, floor.rps)
        problems = server.log_problems()
        if problems:
            notes.append(f"server log: {len(problems)} error lines, first: `{problems[0][:200]}`")
    # AddChatGroup as production runs it: Meta in another process, over HTTP.
    with serve("uvicorn", env, work, "uvicorn-meta", standalone=True) as server:
        alone = measure([server], all_scenarios["add"], load, work, backend, floor.rps, settle=True)
    alone.key = "add-standalone"
    alone.title = "AddChatGroup, Meta a standalone `opencams sandbox` process"
    results[alone.key] = alone
    notes.append(
        "`add-standalone`: AddChatGroup with Meta outside the server (a standalone `opencams "
        "sandbox` on the same machine, its webhooks 1 s later); its settled CPU "
        f"({_settled(alone)} ms/req) is the server's CPU from the run's start until it was idle "
        "again, every webhook of the run applied, per AddChatGroup; the simulator (Meta) used "
        f"{_cores(alone.meta_cores)} cores meanwhile, on the same machine."
    )
    if backend == "sqlite":
        # What durability costs (docs/deployment.md): the write path and the read path whose
        # nonces are group-committed, with synchronous=NORMAL beside the default FULL above.
        normal_env = server_env(big.database_url, OPENCAMS_SQLITE_SYNCHRONOUS="normal")
        with serve("uvicorn", normal_env, work, "uvicorn-normal") as server:
            for key in ("list-p1", "add"):
                lax = measure([server], all_scenarios[key], load, work, backend, floor.rps)
                lax.key, lax.title = f"{key}-normal", f"{lax.title}, synchronous=NORMAL"
                results[lax.key] = lax
        notes.append(
            "`list-p1-normal`, `add-normal`: the same as `list-p1` and `add` with "
            "`OPENCAMS_SQLITE_SYNCHRONOUS=normal`; the others run with the default `full` "
            "(every commit synced before it is answered)."
        )
    # A dead receiver slows nobody: ListChatGroup while deliveries to 32 receivers time out.
    with deadreceiver.black_hole() as (port, accepted):
        seeded = deadreceiver.seed_events(big.database_url, port)
        dead_env = server_env(big.database_url, **deadreceiver.ENV)
        try:
            with serve("uvicorn", dead_env, work, "uvicorn-dead") as server:
                time.sleep(3)  # the deliveries are under way
                dead = measure([server], all_scenarios["list-p1"], load, work, backend, floor.rps)
        finally:
            deadreceiver.clear_events(big.database_url)
    dead.key = "list-p1-dead-receivers"
    dead.title = "ListChatGroup page 1, callbacks to 32 receivers timing out"
    results[dead.key] = dead
    notes.append(
        f"`list-p1-dead-receivers`: the same as `list-p1` while the server delivers {seeded:,} "
        f"pending callback events to {deadreceiver.RECEIVERS} receivers that accept and never "
        f"answer (2 s timeout, retried within 2 s; {accepted[0]:,} connections were held)."
    )
    if profile is not None and "error" not in profile:
        profile["store_costs"] = store_costs(big.database_url)
        profile["plans"] = query_plans(big.database_url)
    # 1,000 groups in the whole database: the same query on a number of the same size.
    with serve("uvicorn", server_env(small.database_url), work, "uvicorn-small") as server:
        results["list-1k-in-1k"] = measure(
            [server], small_scenario(), load, work, backend, floor.rps
        )
    # Two worker processes.
    if serve_supports_workers():
        with serve("uvicorn", env, work, "uvicorn-2w", workers=2) as server:
            two = measure([server], all_scenarios["list-p1"], load, work, backend, 2 * floor.rps)
        two.note = "opencams serve --workers 2 (uvicorn's process manager; a standalone simulator)"
    else:
        with (
            serve("uvicorn", env, work, "uvicorn-a") as first,
            serve("uvicorn", env, work, "uvicorn-b") as second,
        ):
            two = measure(
                [first, second], all_scenarios["list-p1"], load, work, backend, 2 * floor.rps
            )
        two.note = "two opencams serve processes on two ports, one wrk each, half the connections"
    two.key, two.title = "list-p1-2w", "ListChatGroup page 1, 2 worker processes"
    results["list-p1-2w"] = two
    notes.append(f"`list-p1-2w`: {two.note}; compare with `list-p1` (one process).")
    # The same app under granian.
    if granian is not None:
        genv = server_env(big.database_url)
        with serve("granian", genv, work, "granian", granian=granian) as server:
            gfloor = measure([server], all_scenarios["floor"], load, work, backend, 20000)
            gfloor.key, gfloor.title = "granian-floor", "GET /healthz under granian"
            glist = measure([server], all_scenarios["list-p1"], load, work, backend, gfloor.rps)
            glist.key, glist.title = "granian-list-p1", "ListChatGroup page 1 under granian"
            glist.ratio_to_floor = glist.rps / gfloor.rps if gfloor.rps else None
            gfloor.ratio_to_floor = 1.0
        results["granian-floor"], results["granian-list-p1"] = gfloor, glist
        notes.append(
            f"granian {GRANIAN_VERSION} (`--interface asgi --loop uvloop --workers 1`, the "
            "production factory `opencams.app:factory`), installed under bench/out/tools only."
        )
    else:
        for key, title in (
            ("granian-floor", "GET /healthz under granian"),
            ("granian-list-p1", "ListChatGroup page 1 under granian"),
        ):
            results[key] = Result(key, title, backend, "granian", skipped="granian not installable")
    for key, result in results.items():
        if not key.startswith("granian") and floor.rps and not result.skipped:
            result.ratio_to_floor = result.rps / floor.rps
    return {
        "database": backend,
        "results": results,
        "seeds": big.seeds,
        "settings": settings,
        "notes": notes,
        "profile": profile,
    }
