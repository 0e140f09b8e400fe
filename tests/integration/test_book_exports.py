"""The scored book leaving the cockpit, over a real `retain serve`: `GET /v1/accounts` lists what the book
page lists for the same filters, page by page, behind `scores:read`; the book page's CSV download holds
every filtered account, behind the same sign-in and headers as the pages."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import requests

from serving.cockpit.headers import CONTENT_SECURITY_POLICY
from tests.support.served import Server, World, signed_in

#: the book's filters, and the field of a listed account each one reads
FIELDS = {"tier": "tier", "band": "risk_band", "source": "source"}


@pytest.fixture(scope="module")
def server(served_world: World) -> Iterator[Server]:
    running = Server(served_world, served_world.root / "book-exports.log", served_world.latest)
    yield running
    running.stop()


def listed(server: Server, key: str = "scores:read", **query: Any) -> dict[str, Any]:
    answer = server.call("GET", "/v1/accounts", key=key, params=query)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    assert body["api_version"] == "v1" and body["request_id"] == answer.headers["x-request-id"]
    return body


def page_ids(server: Server, query: dict[str, str]) -> list[str]:
    """The accounts the cockpit's book page lists for `query`, every page in turn."""
    bearer = {"Authorization": f"Bearer {server.world.keys['scores:read']}"}
    ids: list[str] = []
    for number in range(1, 100):
        asked = {**query, "page": str(number)}
        page = requests.get(f"{server.url}/ui", params=asked, headers=bearer, timeout=30)
        assert page.status_code == 200, page.text
        ids += re.findall(r'<th scope="row"><a href="/ui/accounts/([^"]+)">', page.text)
        if 'rel="next"' not in page.text:
            return ids
    raise AssertionError("the book page never ended")


def ids(accounts: list[dict[str, Any]]) -> list[str]:
    return [a["account_id"] for a in accounts]


def test_the_list_narrows_exactly_as_the_book_page(server: Server) -> None:
    """Each filter on each value the book holds, a renewal window, and two filters together: the list
    holds what the cockpit's page lists, which is what the filter says."""
    whole = listed(server, page_size=500)["accounts"]
    assert ids(whole) == page_ids(server, {}) and len(whole) > 50
    top = whole[0]
    cases: list[tuple[dict[str, str], list[dict[str, Any]]]] = [
        ({name: value}, [a for a in whole if a[field] == value])
        for name, field in FIELDS.items()
        for value in sorted({a[field] for a in whole if a[field] is not None})
    ]
    cases += [
        ({"renewal": "90"}, [a for a in whole if 0 <= (a["days_to_renewal"] or -1) <= 90]),
        ({"csm": top["csm_id"]}, [a for a in whole if a["csm_id"] == top["csm_id"]]),
        (
            {"tier": top["tier"], "band": top["risk_band"]},
            [a for a in whole if (a["tier"], a["risk_band"]) == (top["tier"], top["risk_band"])],
        ),
    ]
    for query, expected in cases:
        body = listed(server, **query, page_size=500)
        assert ids(body["accounts"]) == page_ids(server, query) == ids(expected), query
        assert body["total"] == len(expected) and 0 < len(expected) < len(whole), query


def test_pages_cover_every_account_once_and_say_what_an_account_is(server: Server) -> None:
    whole = listed(server, page_size=500)
    first = listed(server, page_size=7)
    assert first["pages"] == -(-whole["total"] // 7) and first["page_size"] == 7
    paged = [a for n in range(1, first["pages"] + 1) for a in listed(server, page=n, page_size=7)["accounts"]]
    assert ids(paged) == ids(whole["accounts"]) and len(set(ids(paged))) == whole["total"]
    beyond = listed(server, page=first["pages"] + 1, page_size=7)
    assert beyond["accounts"] == [] and beyond["total"] == whole["total"]
    top = whole["accounts"][0]
    risk = server.call("GET", f"/v1/accounts/{top['account_id']}/risk", key="scores:read").json()
    # the book scores every account in one batch, the risk endpoint one: equal up to float rounding
    assert top["churn_probability"] == pytest.approx(risk["churn_probability"], rel=1e-9)
    assert (top["risk_band"], top["source"]) == (risk["risk_band"], risk["source"])
    assert top["arr_at_risk"] == pytest.approx(top["churn_probability"] * top["arr"])
    at_risk = [a["arr_at_risk"] for a in whole["accounts"] if a["arr_at_risk"] is not None]
    assert at_risk == sorted(at_risk, reverse=True)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"tier": "gold"}, "query.tier"),
        ({"band": "purple"}, "query.band"),
        ({"renewal": "45"}, "query.renewal"),
        ({"page_size": 501}, "query.page_size"),
        ({"page": 0}, "query.page"),
    ],
)
def test_a_bad_filter_is_a_422_naming_it(server: Server, query: dict[str, Any], field: str) -> None:
    answer = server.call("GET", "/v1/accounts", key="scores:read", params=query)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "invalid_request" and [f["field"] for f in error["fields"]] == [field]


def test_the_list_needs_scores_read(server: Server) -> None:
    assert server.call("GET", "/v1/accounts", key=None).status_code == 401
    assert server.call("GET", "/v1/accounts", key="revoked").status_code == 401
    lacking = server.call("GET", "/v1/accounts", key="actions:read")
    assert lacking.status_code == 403 and "scores:read" in lacking.json()["error"]["message"]
    for bad in ({"tier": "gold"}, {"page_size": 501}):  # the key is checked before the query
        assert server.call("GET", "/v1/accounts", key=None, params=bad).status_code == 401


def test_the_book_downloads_as_csv_with_every_filtered_account(server: Server, served_world: World) -> None:
    band = listed(server)["accounts"][0]["risk_band"]
    path = f"/ui/book.csv?band={band}"
    away = requests.get(f"{server.url}{path}", allow_redirects=False, timeout=30)
    assert away.status_code == 303 and away.headers["location"] == f"/ui/login?next={quote(path, safe='')}"
    browser = signed_in(server, served_world.keys["scores:read"])
    book_page = browser.get(f"{server.url}/ui", params={"band": band, "tier": "", "page": "2"}, timeout=30)
    assert f'id="book-export" href="{path}"' in book_page.text, "the page's filters, without its page"

    for query in ({"band": band}, {}):
        answer = browser.get(f"{server.url}/ui/book.csv", params=query, timeout=30)
        assert answer.status_code == 200 and answer.headers["content-type"] == "text/csv; charset=utf-8"
        day = listed(server)["as_of"][:10]
        name = "-".join(["book", day, *(part for item in query.items() for part in item)])
        assert answer.headers["content-disposition"] == f'attachment; filename="{name}.csv"'
        assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert answer.headers["cache-control"] == "no-store"
        rows = list(csv.DictReader(io.StringIO(answer.text)))
        expected = listed(server, **query, page_size=500)["accounts"]
        assert [r["account_id"] for r in rows] == ids(expected)
        assert len(rows) > 50 or query, "more than the page's 50 accounts"
        assert not query or {r["risk_band"] for r in rows} == {band}
        first, top = rows[0], expected[0]
        assert float(first["churn_probability"]) == pytest.approx(top["churn_probability"], abs=1e-4)
        assert float(first["arr"]) == pytest.approx(top["arr"], abs=0.01) and first["tier"] == top["tier"]

    bad = browser.get(f"{server.url}/ui/book.csv", params={"tier": "gold"}, timeout=30)
    assert bad.status_code == 422 and "tier: &#39;gold&#39; is not one of" in bad.text
    assert bad.headers["content-type"].startswith("text/html")
