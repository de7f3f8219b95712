"""The tools the harness runs: wrk (a Debian package), and granian and py-spy, installed for the
benchmark only under bench/out/tools (never into the project's environment)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from bench.common import OUT, ROOT, BenchError, log


def ensure_wrk() -> str:
    """wrk's path; installs the Debian package when running as root, else says what to do."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log("wrk is missing: apt-get install -y wrk")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=False, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, env=env)
        found = shutil.which("wrk")
        if found:
            return found
    raise BenchError(
        "wrk is not installed. Install the Debian package: `sudo apt-get install -y wrk` "
        "(or build it from source: https://github.com/wg/wrk), then run `make bench` again."
    )


def pip_target(package: str, version: str) -> Path | None:
    """A package installed for the benchmark only (pip --target under bench/out), never into
    the project's environment. None when pip cannot get it (the reason is logged)."""
    target = OUT / "tools" / f"{package}-{version}"
    marker = target / ".complete"
    if marker.exists():
        return target
    staging = target.with_name(f"{target.name}.{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    log(f"installing {package}=={version} into {target.relative_to(ROOT)} (benchmark only)")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "--no-deps",
            "--target",
            str(staging),
            f"{package}=={version}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        log(f"{package} unavailable: {result.stderr.strip()[-400:]}")
        shutil.rmtree(staging, ignore_errors=True)
        return None
    (staging / ".complete").write_text(version)
    try:
        staging.rename(target)  # atomic: a concurrent run sees all of it or nothing
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)  # another run was first
    return target if marker.exists() else None


def tool_version(*argv: str) -> str:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "?"
    return (result.stdout or result.stderr).strip().splitlines()[0] if result else "?"
