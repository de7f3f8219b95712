"""RESULTS.md: the machine, the summary, the commands, one table per database, the targets, the
profile, and the ASGI server comparison."""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import ROOT
from bench.load import WRK_COMMAND, Result
from bench.profiling import PROFILE_RATE
from bench.tools import tool_version


def machine() -> dict[str, str]:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = "?"
    with contextlib.suppress(OSError):
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{kb / 1024 / 1024:.0f} GiB"
    versions: dict[str, str] = {}
    for module in ("uvicorn", "uvloop", "httptools", "starlette", "sqlalchemy", "psycopg"):
        with contextlib.suppress(Exception):
            from importlib.metadata import version

            versions[module] = version(module)
    commit = "?"
    with contextlib.suppress(Exception):
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    return {
        "cores": str(os.cpu_count()),
        "cpu": model,
        "memory": memory,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "wrk": tool_version("wrk", "--version").split(" Copyright")[0],
        "packages": ", ".join(f"{k} {v}" for k, v in versions.items()),
        "commit": commit,
    }


def _short_sql(sql: str) -> str:
    """One line; a long column list shown as …."""
    flat = " ".join(sql.split())
    head, sep, tail = flat.partition(" FROM ")
    if sep and len(head) > 60 and head.upper().startswith("SELECT "):
        flat = f"SELECT … FROM {tail}"
    return flat


def _fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def table_head(db_column: bool) -> str:
    names = ["scenario", "server", "req/s", "p50 ms", "p99 ms", "CPU ms/req"]
    names += ["DB CPU ms/req"] if db_column else []
    names += ["× floor", "RSS MB", "requests", "errors"]
    align = ["---", "---"] + ["---:"] * (len(names) - 2)
    return f"| {' | '.join(names)} |\n|{'|'.join(align)}|"


def table_row(r: Result, db_column: bool) -> str:
    cells = [f"`{r.key}` {r.title}", r.server]
    if r.skipped:
        cells += [f"skipped: {r.skipped}"] + [""] * (7 if db_column else 6)
        cells[-2] = "0"
        return f"| {' | '.join(cells)} |"
    ratio = "–" if r.ratio_to_floor is None else f"{r.ratio_to_floor:.3f}"
    cells += [f"{r.rps:,.0f}", f"{r.p50_ms:.2f}", f"{r.p99_ms:.2f}", f"{r.cpu_ms_per_request:.3f}"]
    cells += [f"{r.db_ms_per_request:.3f}"] if db_column else []
    cells += [ratio, f"{r.rss_mb:.0f}", f"{r.requests:,}", str(r.errors)]
    return f"| {' | '.join(cells)} |"


@dataclass
class Target:
    name: str
    wanted: str
    measured: str
    holds: bool | None  # None: not measured


def targets(results: dict[str, Result]) -> list[Target]:
    def get(key: str) -> Result | None:
        r = results.get(key)
        return r if r is not None and not r.skipped and r.requests else None

    found: list[Target] = []
    floor, p1 = get("floor"), get("list-p1")
    if p1 is not None:
        found.append(
            Target("ListChatGroup throughput", "≥ 3,000 req/s", f"{p1.rps:,.0f}", p1.rps >= 3000)
        )
        if floor is not None:
            ratio = p1.rps / floor.rps
            found.append(
                Target(
                    "ListChatGroup vs the floor", "≥ 0.25 × floor", f"{ratio:.2f} ×", ratio >= 0.25
                )
            )
        found.append(Target("ListChatGroup p99", "≤ 25 ms", f"{p1.p99_ms:.1f} ms", p1.p99_ms <= 25))
        if p1.p50_ms:
            tail = p1.p99_ms / p1.p50_ms
            found.append(
                Target("ListChatGroup p99 vs p50", "≤ 2.5 ×", f"{tail:.2f} ×", tail <= 2.5)
            )
        found.append(
            Target(
                "Server RSS after ListChatGroup",
                "≤ 150 MB",
                f"{p1.rss_mb:.0f} MB",
                p1.rss_mb <= 150,
            )
        )
    for key, name, limit in (
        ("list-p500", "Deep page (Index 500) vs page 1", 1.5),
        ("list-subject", "Subject filter vs unfiltered", 2.0),
    ):
        other = get(key)
        if p1 is not None and other is not None:
            slower = p1.rps / other.rps
            found.append(
                Target(name, f"≤ {limit} × slower", f"{slower:.2f} × slower", slower <= limit)
            )
    small, big = get("list-1k-in-1k"), get("list-1k-in-1m")
    if small is not None and big is not None:
        slower = small.rps / big.rps
        found.append(
            Target(
                "1,000,000 groups vs 1,000 groups in the database",
                "≤ 1.3 × slower",
                f"{slower:.2f} × slower",
                slower <= 1.3,
            )
        )
    add = get("add")
    if add is not None:
        found.append(
            Target("AddChatGroup throughput", "≥ 500 req/s", f"{add.rps:,.0f}", add.rps >= 500)
        )
    alone = get("add-standalone")
    if alone is not None and floor is not None:
        ratio = alone.rps / floor.rps
        found.append(
            Target(
                "AddChatGroup, Meta outside the server, vs the floor",
                "≥ 0.05 × floor",
                f"{ratio:.3f} × ({alone.rps:,.0f} req/s)",
                ratio >= 0.05,
            )
        )
        found.append(
            Target(
                "AddChatGroup, Meta outside the server, p99",
                "≤ 100 ms",
                f"{alone.p99_ms:.1f} ms",
                alone.p99_ms <= 100,
            )
        )
    two = get("list-p1-2w")
    if p1 is not None and two is not None:
        ratio = two.rps / p1.rps
        found.append(Target("Two workers vs one", "≥ 1.6 ×", f"{ratio:.2f} ×", ratio >= 1.6))
    return found


def cross_targets(runs: list[dict[str, Any]]) -> list[Target]:
    """Targets between the databases of one run: PostgreSQL's ListChatGroup against SQLite's."""
    by_database = {run["database"]: run["results"] for run in runs}
    sqlite_p1 = by_database.get("sqlite", {}).get("list-p1")
    pg_p1 = by_database.get("postgresql", {}).get("list-p1")
    if sqlite_p1 is None or pg_p1 is None or not sqlite_p1.rps or pg_p1.skipped:
        return []
    ratio = pg_p1.rps / sqlite_p1.rps
    return [
        Target(
            "PostgreSQL ListChatGroup vs SQLite's",
            "≥ 0.7 ×",
            f"{ratio:.2f} × ({pg_p1.rps:,.0f} vs {sqlite_p1.rps:,.0f} req/s)",
            ratio >= 0.7,
        )
    ]


def before_after(
    database: str, results: dict[str, Result], before: dict[str, Any] | None
) -> list[str]:
    """Lines of the before/after table of one database: `before` is an earlier run's JSON
    (`--before`), measured on the same machine."""
    if before is None:
        return []
    earlier = next((run for run in before["runs"] if run["database"] == database), None)
    if earlier is None:
        return []
    old = {r["key"]: r for r in earlier["results"]}
    lines = [
        f"### Before and after ({database})\n",
        f"Before: commit `{before['machine'].get('commit', '?')}`, the same machine, the same "
        "command (`--before`); after: this run.\n",
        "| scenario | req/s before | req/s after | after/before | × floor before | × floor "
        "after | p99 ms before | p99 ms after | CPU ms/req before | CPU ms/req after |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, now in results.items():
        was = old.get(key)
        if now.skipped or not now.requests:
            continue
        if was is None or was.get("skipped") or not was.get("requests"):
            lines.append(
                f"| `{key}` | – | {now.rps:,.0f} | – | – | {_fmt(now.ratio_to_floor, 3)} | – "
                f"| {now.p99_ms:.1f} | – | {now.cpu_ms_per_request:.3f} |"
            )
            continue
        change = now.rps / was["rps"] if was["rps"] else 0.0
        lines.append(
            f"| `{key}` | {was['rps']:,.0f} | {now.rps:,.0f} | {change:.2f} × "
            f"| {_fmt(was.get('ratio_to_floor'), 3)} | {_fmt(now.ratio_to_floor, 3)} "
            f"| {was['p99_ms']:.1f} | {now.p99_ms:.1f} "
            f"| {was['cpu_ms_per_request']:.3f} | {now.cpu_ms_per_request:.3f} |"
        )
    lines.append("")
    return lines


def render(
    args: argparse.Namespace,
    info: dict[str, str],
    runs: list[dict[str, Any]],
    started: float,
) -> str:
    lines: list[str] = []
    add = lines.append
    mode = "quick (smoke: tiny data, 2-second runs; figures mean nothing)" if args.quick else "full"
    add("# opencams benchmark results\n")
    add(
        f"Written by `bench/run.py` ({mode}) on "
        f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}, "
        f"commit `{info['commit']}`, in {time.time() - started:.0f} s. "
        "See [README.md](README.md) for what each scenario means and how requests are signed.\n"
    )
    add("## Machine\n")
    add(f"- {info['cores']} cores: {info['cpu']}; {info['memory']} memory; Linux {info['kernel']}")
    add(f"- Python {info['python']}; SQLite {info['sqlite']}; {info['wrk']}")
    add(f"- {info['packages']}")
    add(
        "- wrk runs on the same machine as the server: the two share the 2 cores, so every "
        "figure is what one server gets while the load generator takes its share.\n"
    )
    add("## Summary\n")
    for run in runs:
        figures: dict[str, Result] = run["results"]
        p1, floor = figures.get("list-p1"), figures.get("floor")
        found = targets(figures)
        held = [t.name for t in found if t.holds]
        missed = [t.name for t in found if not t.holds]
        if p1 is not None and floor is not None and not p1.skipped and floor.rps:
            add(
                f"- **{run['database']}**: ListChatGroup page 1 at {p1.rps:,.0f} req/s, "
                f"{p1.rps / floor.rps:.3f} × the floor ({floor.rps:,.0f} req/s), p99 "
                f"{p1.p99_ms:,.0f} ms, {p1.cpu_ms_per_request:.1f} ms of server CPU per request. "
                f"Targets that hold: {', '.join(held) or 'none'}; missed: "
                f"{', '.join(missed) or 'none'}."
            )
        busy = [r for r in figures.values() if not r.skipped and r.other_cores > 0.25]
        if busy:
            add(
                f"  Disturbed: other processes on the machine used up to "
                f"{max(r.other_cores for r in busy):.2f} cores during {len(busy)} of the "
                f"{run['database']} runs (see its notes): those figures are low."
            )
    add(
        "- Figures vary by about ±10–15 % between runs on this machine: a ratio close to a "
        "target's limit is within that noise.\n"
    )
    add("## Commands\n")
    add("```sh")
    given = " ".join(args.argv)
    make = f'make bench BENCH_ARGS="{given}"' if given else "make bench"
    add(f"{make}   # = .venv/bin/python bench/run.py {given}".rstrip())
    add("opencams db upgrade && opencams apply bench/out/<db>/tenancy.yaml")
    for run in runs:
        for report in run["seeds"]:
            add(report["command"])
        break
    add(
        "opencams serve --host 127.0.0.1 --port PORT --log-level warning"
        "   # uvicorn, uvloop, httptools"
    )
    add(
        WRK_COMMAND.format(
            threads=args.threads, connections=args.connections, duration=args.duration
        )
        + "   # after a "
        + f"{args.warmup}-second warm-up run"
    )
    add("```\n")
    for run in runs:
        database = run["database"]
        results: dict[str, Result] = run["results"]
        add(f"## Results: {database}\n")
        for report in run["seeds"]:
            add(
                f"- seeded: {report['groups']:,} groups ({report['numbers_created']} new numbers), "
                f"{report['participants']:,} participants, {report['operations']:,} pending "
                f"operations in {report['seconds']} s: {report['rows_per_second']:,} rows/s "
                f"({report['groups_per_second']:,} groups/s) — `{report['command']}`"
            )
        add(f"- settings: {run['settings']}\n")
        db_column = database == "postgresql"
        add(table_head(db_column))
        for result in results.values():
            add(table_row(result, db_column))
        add("")
        add(
            "req/s: completed requests per second of the measured run; p50/p99: wrk's latency "
            "percentiles; CPU ms/req: the server processes' CPU time (user+system, "
            "/proc/PID/stat) over the run divided by the requests"
            + (
                "; DB CPU ms/req: the same for the PostgreSQL backends serving the benchmark"
                if db_column
                else " (SQLite runs inside the server, so this includes the database)"
            )
            + "; × floor: req/s over `floor` of the same server kind in the same run; RSS: "
            "VmRSS of the server processes after the run; errors: non-2xx answers + socket "
            "errors + requests past the signed ones.\n"
        )
        if db_column:
            run.setdefault("notes", []).append(
                "PostgreSQL runs on the same 2 cores: its CPU per request (DB CPU column) and "
                "the server's add up, so a second server worker cannot double what the machine "
                "does once the two together use both cores."
            )
        disturbed = [r for r in results.values() if not r.skipped and r.other_cores > 0.25]
        if disturbed:
            run.setdefault("notes", []).append(
                "other processes used CPU during "
                + ", ".join(f"`{r.key}` ({r.other_cores:.2f} cores)" for r in disturbed)
                + ": those figures are lower than the machine can do"
            )
        if run.get("notes"):
            for note in run["notes"]:
                add(f"- {note}")
            add("")
        add(f"### Targets ({database})\n")
        add("| target | wanted | measured | holds |\n|---|---|---|---|")
        for target in targets(results):
            verdict = "yes" if target.holds else "**no**"
            add(f"| {target.name} | {target.wanted} | {target.measured} | {verdict} |")
        add("")
        lines.extend(before_after(database, results, getattr(args, "before_figures", None)))
        profile = run.get("profile")
        if profile:
            add(f"### Where the time goes: ListChatGroup page 1 ({database})\n")
            if "error" in profile:
                add(f"Not profiled: {profile['error']}\n")
            else:
                add(
                    f"{profile['tool']} (`record --gil --nonblocking --rate {PROFILE_RATE}`) on "
                    "the server process while wrk replayed ListChatGroup page 1 at "
                    f"{args.connections} connections: {profile['samples']:,} samples of the "
                    "thread holding the GIL, i.e. where the Python CPU time goes ("
                    + (
                        "SQLite's own C code runs without the GIL and is not in these samples; "
                        "it is small: see the queries below"
                        if database == "sqlite"
                        else "PostgreSQL works in its own processes: the DB CPU column above"
                    )
                    + "). The GIL was held in "
                    f"{profile['gil_busy']:.0%} of the sampling ticks. Shares are of all "
                    "samples.\n"
                )
                add("By package (innermost frame):\n")
                add("| package | share |\n|---|---:|")
                for name, pct in profile["categories"]:
                    add(f"| {name} | {pct}% |")
                add("\nopencams functions, inclusive (time in them and what they call):\n")
                add("| function | share |\n|---|---:|")
                for name, pct in profile["opencams"]:
                    add(f"| `{name}` | {pct}% |")
                add("\nTop frames by own time:\n")
                add("| frame | share |\n|---|---:|")
                for name, pct in profile["self"]:
                    add(f"| `{name}` | {pct}% |")
                add("")
            costs = profile.get("store_costs")
            if costs:
                add(
                    "The store calls behind one ListChatGroup, each timed alone in one process "
                    "(200 calls, no HTTP, no concurrency; CPU includes the driver's thread):\n"
                )
                add("| call | wall ms | CPU ms |\n|---|---:|---:|")
                for name, wall, cpu in costs:
                    shown = cpu if isinstance(cpu, str) else _fmt(cpu, 3)
                    add(f"| `{name}` | {_fmt(wall, 3)} | {shown} |")
                add("")
            plans = profile.get("plans")
            if plans:
                add(
                    "The SQL of `Store.list_groups` (captured from the engine) with its plan "
                    "and its time in the database alone (PostgreSQL: `EXPLAIN ANALYZE`; SQLite: "
                    "the mean of 20 executions through the driver):\n"
                )
                for plan in plans:
                    ms = "–" if plan["ms"] is None else f"{plan['ms']:.3f} ms"
                    add(f"- {plan['label']}, {ms}: `{_short_sql(plan['sql'])}`")
                    if plan["plan"]:
                        add("")
                        add("  ```")
                        for line in plan["plan"]:
                            add(f"  {line}")
                        add("  ```")
                add("")
    across = cross_targets(runs)
    if across:
        add("## Targets across the databases\n")
        add("| target | wanted | measured | holds |\n|---|---|---|---|")
        for target in across:
            verdict = "yes" if target.holds else "**no**"
            add(f"| {target.name} | {target.wanted} | {target.measured} | {verdict} |")
        add("")
    asgi = [run for run in runs if "granian-floor" in run["results"]]
    if asgi:
        add("## ASGI server: uvicorn or granian\n")
        for run in asgi:
            r = run["results"]
            pairs = [("floor", "granian-floor"), ("list-p1", "granian-list-p1")]
            add(f"{run['database']}:\n")
            add("| scenario | uvicorn req/s | granian req/s | uvicorn p99 ms | granian p99 ms |")
            add("|---|---:|---:|---:|---:|")
            for a, b in pairs:
                ra, rb = r.get(a), r.get(b)
                if ra is None or rb is None or rb.skipped:
                    continue
                add(f"| {a} | {ra.rps:,.0f} | {rb.rps:,.0f} | {ra.p99_ms:.2f} | {rb.p99_ms:.2f} |")
            add("")
        add(run_choice(asgi))
    return "\n".join(lines) + "\n"


def run_choice(asgi: list[dict[str, Any]]) -> str:
    verdicts = []
    for run in asgi:
        r = run["results"]
        u, g = r.get("list-p1"), r.get("granian-list-p1")
        if u is None or g is None or g.skipped or not g.rps:
            continue
        verdicts.append(g.rps / u.rps)
    if not verdicts:
        return "granian could not be measured in this run; opencams stays on uvicorn.\n"
    gain = min(verdicts)
    if gain >= 1.15:
        return (
            f"granian serves ListChatGroup {gain:.2f} × as fast as uvicorn here: worth "
            "switching `opencams serve` to it (its Rust HTTP layer does what httptools does in "
            "Python callbacks).\n"
        )
    return (
        f"**Choice: uvicorn** (with uvloop and httptools, what `uvicorn[standard]` installs). "
        f"On ListChatGroup granian reaches {gain:.2f} × uvicorn's throughput: the time is in "
        "the application, not in the HTTP server, so a second server dependency would not pay "
        "for itself. The floor shows the servers' own difference.\n"
    )
