"""The Graph client's join-request calls: what it sends, and how it reads Meta's documented
answers, including a per-request failure (131203) the simulator never produces."""

from __future__ import annotations

import json
from typing import Any

import httpx

from opencams.channel.graph import GraphClient

# Meta's documented approval answer with one failure (whatsapp-groups-api.md §1.9).
APPROVE_ANSWER = {
    "messaging_product": "whatsapp",
    "approved_join_requests": ["JR1"],
    "failed_join_requests": [
        {
            "join_request_id": "JR2",
            "errors": [
                {
                    "code": 131203,
                    "message": "(#131203) Recipient has not accepted our new Terms of Service.",
                    "title": "Unable to add participant to group",
                    "error_data": {"details": "Recipient has not accepted our new Terms."},
                }
            ],
        }
    ],
    "errors": [{"code": 131201, "message": "Some join requests could not be processed"}],
}


def client(answer: dict[str, Any], seen: list[httpx.Request]) -> GraphClient:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=answer)

    return GraphClient("https://graph.example/v23.0", transport=httpx.MockTransport(handler))


async def test_approve_sends_the_bulk_body_and_reads_failures() -> None:
    seen: list[httpx.Request] = []
    graph = client(APPROVE_ANSWER, seen)
    outcome = await graph.approve_join_requests("G1", "tok", ["JR1", "JR2"])
    await graph.aclose()
    assert (seen[0].method, seen[0].url.path) == ("POST", "/v23.0/G1/join_requests")
    assert json.loads(seen[0].content) == {
        "messaging_product": "whatsapp",
        "join_requests": ["JR1", "JR2"],
    }
    assert outcome.done == ["JR1"]
    [failure] = outcome.failed
    assert (failure.join_request_id, failure.code) == ("JR2", 131203)
    assert "Terms of Service" in failure.message


async def test_reject_is_a_delete_and_reads_rejected() -> None:
    seen: list[httpx.Request] = []
    graph = client({"messaging_product": "whatsapp", "rejected_join_requests": ["JR9"]}, seen)
    outcome = await graph.reject_join_requests("G1", "tok", ["JR9"])
    await graph.aclose()
    assert seen[0].method == "DELETE"
    assert (outcome.done, outcome.failed) == (["JR9"], [])


async def test_list_reads_the_2026_variant_and_stops_without_next() -> None:
    seen: list[httpx.Request] = []
    answer = {
        "data": [
            {"join_request_id": "A", "wa_id": "16505551234", "creation_timestamp": 1755548877},
            {"join_request_id": "B", "user_id": "US.13491208655302741918", "username": "ann"},
            {"wa_id": "no id: skipped"},
        ],
        "paging": {"cursors": {"before": "b", "after": "a"}},
    }
    graph = client(answer, seen)
    page = await graph.list_join_requests("G1", "tok", limit=50)
    await graph.aclose()
    assert seen[0].url.params["limit"] == "50"
    assert [(r.join_request_id, r.wa_id, r.user_id) for r in page.requests] == [
        ("A", "16505551234", None),
        ("B", None, "US.13491208655302741918"),
    ]
    assert page.requests[0].creation_timestamp == 1755548877
    assert page.requests[1].username == "ann"
    assert page.after is None  # a cursor without `next` is the last page
