"""Fixtures of the console's browser tests: one live server (SQLite), one Chromium."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conformance.tenancy import TENANCY
from tests.console.helpers import chromium_path
from tests.databases import database_url
from tests.live import LiveServer, live_server


@pytest.fixture(scope="module")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    work = tmp_path_factory.mktemp("console")
    with (
        database_url("sqlite", work) as url,
        live_server(
            url, work / "srv", TENANCY, OPENCAMS_PICTURE_FETCH_ALLOW_PRIVATE="true"
        ) as live,
    ):
        yield live


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        yield context.new_page()
    finally:
        context.close()
