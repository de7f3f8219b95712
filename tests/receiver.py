"""A customer's callback receiver on loopback, for tests: it records every POST opencams makes,
checks its signature, and answers what the test tells it to (an HTTP status, or no answer)."""

from __future__ import annotations

import copy
import http.server
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from opencams.callbacks import signing

HANG = -1  # a planned answer: never answer (the sender times out)


@dataclass(frozen=True)
class Post:
    body: bytes
    signature: str
    valid: bool
    answered: int  # the status answered (HANG: none)
    at: float

    @property
    def events(self) -> list[dict[str, Any]]:
        value = json.loads(self.body)
        assert isinstance(value, list), value
        return value


class Receiver:
    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.posts: list[Post] = []
        self.plan: list[int] = []  # statuses to answer next, in order; then `default`
        self.default = 200
        self.lock = threading.Lock()
        self.url = ""

    def answer(self) -> int:
        with self.lock:
            return self.plan.pop(0) if self.plan else self.default

    def record(self, post: Post) -> None:
        with self.lock:
            self.posts.append(post)

    def accepted(self) -> list[dict[str, Any]]:
        """The events of every accepted POST, in arrival order (a redelivery appears twice)."""
        with self.lock:
            posts = list(self.posts)
        return [e for p in posts if 200 <= p.answered < 300 for e in p.events]

    def first_copies(self) -> list[dict[str, Any]]:
        """Accepted events without repeats: what a receiver that drops duplicates keeps."""
        seen: set[str] = set()
        kept = []
        for event in self.accepted():
            if event["EventId"] not in seen:
                seen.add(event["EventId"])
                kept.append(event)
        return kept

    def wait(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 20.0
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            events = self.first_copies()
            if predicate(events):
                return events
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"receiver: condition not met; it has {[e['EventType'] for e in events]}"
                )
            time.sleep(0.05)

    def of_group(self, group_id: str) -> list[str]:
        return [e["EventType"] for e in self.first_copies() if e.get("GroupId") == group_id]


class QuietServer(http.server.ThreadingHTTPServer):
    """A sender killed mid-exchange leaves a broken pipe behind: no traceback for it."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


@contextmanager
def receiving(secret: str) -> Iterator[Receiver]:
    receiver = Receiver(secret)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            if len(body) < length:
                # The sender went away mid-body (a server killed mid-delivery): no request to
                # act on, as for any HTTP server; nothing is recorded or answered.
                return
            header = self.headers.get(signing.HEADER, "")
            status = receiver.answer()
            receiver.record(
                Post(body, header, signing.verify(secret, header, body), status, time.time())
            )
            if status == HANG:
                time.sleep(30)
                return
            payload = b'{"ok":true}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *_: object) -> None:
            pass

    httpd = QuietServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{httpd.server_address[1]}/callbacks"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        httpd.shutdown()
        httpd.server_close()


def with_callbacks(
    tenancy: dict[str, Any], space: str, number: str, url: str, secret: str | None = None
) -> dict[str, Any]:
    """A copy of `tenancy` whose `number` sends its events to `url` (and whose account signs
    with `secret`)."""
    result = copy.deepcopy(tenancy)
    for account in result["accounts"]:
        for sp in account.get("spaces", []):
            if sp["id"] != space:
                continue
            for entry in sp["business_numbers"]:
                if entry["number"] == number:
                    entry["callbacks"] = {"http_flag": True, "status_callback_url": url}
                    if secret is not None:
                        account["callback_secret"] = secret
                    return result
    raise AssertionError(f"no number {number} in space {space}")


# Settings that make a test server deliver to loopback, fast.
FAST_CALLBACKS = {
    "OPENCAMS_CALLBACK_ALLOW_HTTP": "true",
    "OPENCAMS_CALLBACK_ALLOW_PRIVATE": "true",
    "OPENCAMS_CALLBACK_POLL_SECONDS": "0.05",
    "OPENCAMS_CALLBACK_BACKOFF_SECONDS": "0.1",
    "OPENCAMS_CALLBACK_BACKOFF_MAX_SECONDS": "0.5",
    "OPENCAMS_CALLBACK_TIMEOUT_SECONDS": "1",
}
