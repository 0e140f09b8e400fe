"""Hostile input to a real `retain serve` over a store without models (issue 51): each answer is a 4xx
naming what is wrong, never a 500, and never taken as if it were sound."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import pytest

from serving.keys import KeyFile
from store.delta import Store
from tests.support.served import Server


@dataclass(frozen=True)
class BareStore:
    """A store with an admin key and nothing else: these inputs are judged before any model is asked."""

    store: Store
    keys: dict[str, str]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("hardened-inputs")
    store = Store(root / "store")
    keys = {"admin": KeyFile.for_store(store).create(["admin"], name="admin")[1]}
    running = Server(BareStore(store, keys), root / "serve.log", date.today())
    yield running
    running.stop()


PLACEHOLDER_TIMES = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-14:00", "1900-01-01T00:00:00Z"]


@pytest.mark.parametrize("moment", PLACEHOLDER_TIMES)
def test_a_placeholder_time_is_a_422_naming_its_field(server: Server, moment: str) -> None:
    """0001-01-01 at +01:00 overflowed converting to UTC: a 500, even for an unknown recommendation."""
    taken = {"account_id": "acc-1", "action": "health_check_call", "ts": moment}
    feedback = {"status": "accepted", "at": moment}
    for path, body, name in [
        ("/v1/interventions", taken, "body.ts"),
        ("/v1/recommendations/rec_unknown/feedback", feedback, "body.at"),
    ]:
        answer = server.call("POST", path, json=body)
        assert answer.status_code == 422, answer.text
        error = answer.json()["error"]
        assert error["code"] == "invalid_request" and [f["field"] for f in error["fields"]] == [name]
        assert "from 1990-01-01 to before 2100-01-01" in error["fields"][0]["message"]


def test_a_believable_time_is_still_taken(server: Server) -> None:
    taken = {"account_id": "acc-1", "action": "health_check_call", "ts": "2025-06-30T23:00:00-14:00"}
    answer = server.call("POST", "/v1/interventions", json=taken)
    assert answer.status_code == 201, answer.text
    assert answer.json()["ts"] == "2025-07-01T13:00:00Z"


@pytest.mark.parametrize("host", ["[::a9fe:a9fe]", "[64:ff9b::a9fe:a9fe]"])
def test_the_metadata_address_spelt_in_ipv6_is_refused_as_a_webhook(server: Server, host: str) -> None:
    """IPv4-compatible and NAT64 spellings of 169.254.169.254 were subscribed (201)."""
    answer = server.call(
        "POST", "/v1/webhooks", json={"url": f"http://{host}/hook", "events": ["usage_drop"]}
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "refused_url" and "cloud metadata" in answer.text
    assert server.call("GET", "/v1/webhooks").json()["webhooks"] == []


@pytest.mark.parametrize("path", ["/docs", "/openapi.json", "/healthz", "/v1/accounts/acc-1/risk"])
def test_every_answer_says_it_may_not_be_framed_or_sniffed(server: Server, path: str) -> None:
    """`/docs`, a page, sent no security headers and could be framed by any site (clickjacking)."""
    answer = server.call("GET", path)
    assert answer.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert answer.headers["Referrer-Policy"] == "no-referrer"


def test_the_cockpit_keeps_its_own_stricter_headers(server: Server) -> None:
    answer = server.call("GET", "/ui/login", key=None)
    assert answer.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert answer.headers["Referrer-Policy"] == "same-origin"
    assert [name.lower() for name in answer.raw.headers].count("x-frame-options") == 1


def test_a_wrong_method_says_which_are_allowed_and_an_unreadable_body_is_a_documented_400(
    server: Server,
) -> None:
    """A 405 sent no `Allow` header; a body not in UTF-8 answers the 400 the document now lists."""
    wrong = server.call("PUT", "/v1/score", json={})
    assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "method_not_allowed"
    assert wrong.headers["Allow"] == "POST"
    garbled = server.call(
        "POST",
        "/v1/score",
        data=b'{"accounts": [{"account_id": "\xff"}]}',
        headers={"content-type": "application/json"},
    )
    assert garbled.status_code == 400 and garbled.json()["request_id"] == garbled.headers["X-Request-ID"]
