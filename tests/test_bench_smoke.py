"""The benchmark harness (`make bench`) in its smoke mode, so that it cannot rot.

Tiny data and 1-second runs; no assertion on timings, only that every scenario ran, completed
requests and got no error (non-2xx, socket error, or a request past the pre-signed ones).
wrk is needed: without it the test skips locally, and under CI=true it installs it (as root)
or fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "bench" / "run.py"
SCENARIOS = (
    "floor",
    "list-p1",
    "list-p1-root",
    "list-p500",
    "list-subject",
    "list-status",
    "list-1k-in-1m",
    "list-1k-in-1k",
    "participants",
    "add",
    "add-standalone",
    "list-p1-normal",
    "add-normal",
    "list-p1-dead-receivers",
    "list-p1-2w",
    "granian-floor",
    "granian-list-p1",
)


def _under_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _wrk() -> str | None:
    found = shutil.which("wrk")
    if found or not _under_ci():
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, check=False)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "wrk"], env=env, capture_output=True, check=False
        )
    return shutil.which("wrk")


# It loads both cores: it runs alone, after the others (`make unit`).
@pytest.mark.slow
@pytest.mark.serial
def test_quick_benchmark_runs_every_scenario_without_errors(tmp_path: Path) -> None:
    if _wrk() is None:
        if _under_ci():
            pytest.fail("wrk is required under CI and could not be installed (apt-get install wrk)")
        pytest.skip(
            "wrk is not installed: `apt-get install -y wrk` to run the benchmark smoke test"
        )
    report, figures = tmp_path / "RESULTS.md", tmp_path / "results.json"
    result = subprocess.run(
        [
            sys.executable,
            str(RUN),
            "--quick",
            "--duration",
            "1",
            "--no-profile",
            "--out",
            str(report),
            "--json",
            str(figures),
            "--work",
            str(tmp_path / "work"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]

    table = report.read_text()
    runs = json.loads(figures.read_text())["runs"]
    assert [run["database"] for run in runs] == ["sqlite"]
    rows = {row["key"]: row for row in runs[0]["results"]}
    assert set(rows) == set(SCENARIOS)
    for key in SCENARIOS:
        row = rows[key]
        assert f"| `{key}` " in table, key
        if row["skipped"] and key.startswith("granian") and not _under_ci():
            continue  # granian comes from PyPI; unreachable locally is not a harness bug
        assert row["skipped"] is None, (key, row["skipped"])
        assert row["requests"] > 0, key
        assert row["non_2xx"] == 0, (key, row)
        assert row["socket_errors"] == 0, (key, row)
        assert row["exhausted"] == 0, (key, row)
        assert row["cpu_ms_per_request"] > 0, key
    # The write with Meta outside: the CPU until its webhooks were applied, at least the run's.
    alone = rows["add-standalone"]
    assert alone["settled_cpu_ms_per_request"] >= alone["cpu_ms_per_request"] > 0, alone
    assert "### Targets (sqlite)" in table
    assert "AddChatGroup, Meta outside the server, vs the floor" in table
    assert "## ASGI server: uvicorn or granian" in table
