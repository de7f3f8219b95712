"""The operator's commands, run as subprocesses the way an operator runs them."""

from __future__ import annotations

from pathlib import Path

import yaml

from opencams.store import db
from tests.conformance.tenancy import TENANCY
from tests.live import base_env, run_cli


def test_apply_is_idempotent_and_reports(db_url: str, tmp_path: Path) -> None:
    env = base_env(db_url, tmp_path)
    tenancy = tmp_path / "t.yaml"
    tenancy.write_text(yaml.safe_dump(TENANCY))
    assert "schema upgraded from (empty)" in run_cli(env, "db", "upgrade").stdout
    first = run_cli(env, "apply", str(tenancy)).stdout
    assert "created  account 1000000000000001 (acme)" in first
    assert "created  business number 8613800000001 in space cams-acme01" in first
    second = run_cli(env, "apply", str(tenancy)).stdout
    assert second.startswith("no changes")
    assert "up to date" in run_cli(env, "db", "upgrade").stdout
    head = db.head_revision()
    assert f"database: {head}; newest known: {head}" in run_cli(env, "db", "current").stdout


def test_a_bad_file_is_refused_whole(db_url: str, tmp_path: Path) -> None:
    env = base_env(db_url, tmp_path)
    run_cli(env, "db", "upgrade")
    bad = dict(TENANCY)
    bad["accounts"] = [*TENANCY["accounts"], {"id": "12", "name": "broken"}]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    result = run_cli(env, "apply", str(path), check=False)
    assert result.returncode == 1
    assert "nothing was written" in result.stderr
    assert f"accounts.{len(TENANCY['accounts'])}.id" in result.stderr
    path.write_text(": not yaml : [")
    result = run_cli(env, "apply", str(path), check=False)
    assert result.returncode == 1 and "not valid YAML" in result.stderr
    # Nothing of the good part of the first file was written.
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(TENANCY))
    assert "created  account 1000000000000001" in run_cli(env, "apply", str(good)).stdout


def test_serve_refuses_a_database_that_is_not_upgraded(db_url: str, tmp_path: Path) -> None:
    result = run_cli(base_env(db_url, tmp_path), "serve", "--port", "1", check=False)
    assert result.returncode == 1
    assert "opencams db upgrade" in result.stderr


def test_short_secret_key_is_refused(tmp_path: Path) -> None:
    env = base_env(f"sqlite:///{tmp_path}/x.db", tmp_path, OPENCAMS_SECRET_KEY="short")
    result = run_cli(env, "db", "upgrade", check=False)
    assert result.returncode == 2 and "at least 32 characters" in result.stderr


def test_demo_credentials(tmp_path: Path) -> None:
    out = run_cli(base_env("sqlite://", tmp_path), "demo-credentials", "examples/demo.yaml").stdout
    assert "access_key_id      LTAI5tDemoRootKey01" in out
    assert "endpoint           127.0.0.1:8080" in out
