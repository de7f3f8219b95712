"""Helpers of the console's browser tests: the browser, signing in, the SDK's view."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.live import LiveServer

CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
# Set to a directory to keep screenshots of the pages the tests walk (docs/console/ holds ours).
SCREENSHOTS_ENV = "OPENCAMS_CONSOLE_SCREENSHOTS"


def chromium_path() -> str:
    """Debian's chromium (`make test` installs it); skipped without it, failed under CI=true."""
    for candidate in (*CHROMIUM_PATHS, shutil.which("chromium") or ""):
        if candidate and Path(candidate).exists():
            return candidate
    message = "no chromium: install the Debian package (apt-get install chromium, or make test)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def sign_in(page: Any, server: LiveServer, key: tuple[str, str], token: str = "") -> None:
    page.goto(f"{server.url}/console/")
    assert "/console/sign-in" in page.url
    page.fill("input[name=access_key_id]", key[0])
    page.fill("input[name=access_key_secret]", key[1])
    if token:
        page.fill("textarea[name=security_token]", token)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}/console/")


def screenshot(page: Any, name: str) -> None:
    target = os.environ.get(SCREENSHOTS_ENV)
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(target) / f"{name}.png"), full_page=True)


def csrf_of(page: Any) -> str:
    return str(page.locator("input[name=csrf]").first.get_attribute("value"))


@contextmanager
def picture_server() -> Iterator[str]:
    """A loopback HTTP server of one JPEG (`/square.jpg`); yields its base URL."""
    import functools
    import http.server
    import tempfile
    import threading

    from PIL import Image

    with tempfile.TemporaryDirectory() as root:
        Image.new("RGB", (256, 256), (200, 30, 30)).save(Path(root) / "square.jpg", "JPEG")

        class Quiet(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *_: object) -> None:
                pass

        handler = functools.partial(Quiet, directory=root)
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{httpd.server_address[1]}"
        finally:
            httpd.shutdown()
            httpd.server_close()


def try_sign_in(page: Any, key_id: str, secret: str) -> None:
    page.fill("input[name=access_key_id]", key_id)
    page.fill("input[name=access_key_secret]", secret)
    with page.expect_navigation():
        page.click("button[type=submit]")
