"""The cockpit's pure parts: the book's filters, which accounts count as new, the timeline's sentences,
the charts, the account page's template variables, and the security headers, tokens and origin check
(over HTTP in `tests/e2e/test_cockpit.py`)."""

from __future__ import annotations

import asyncio
import re
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from jinja2 import meta
from starlette.types import Message, Receive, Scope, Send

from serving.cockpit.access import same_host
from serving.cockpit.book import Entry, Filters, started_since
from serving.cockpit.charts import line_chart
from serving.cockpit.headers import CONTENT_SECURITY_POLICY, CockpitHeaders
from serving.cockpit.pages import STYLESHEET, TEMPLATES, AccountPage, plan_sentence
from serving.cockpit.sessions import MemorySessions, Session, same_token
from serving.cockpit.timeline import action_label, as_moments
from serving.resources import AccountRecord
from serving.schemas import Fallback, Freshness, Health, Risk
from store.delta import Store
from store.plan_table import PLANS, PLANS_SCHEMA, PlanArm, latest_arm

DAY = datetime(2025, 7, 31, tzinfo=UTC)


def entry(**changes: object) -> Entry:
    base: dict[str, object] = {
        "account_id": "acc-1",
        "name": "Acme",
        "tier": "enterprise",
        "segment": None,
        "csm_id": "csm-1",
        "arr": 100_000.0,
        "renewal_date": DAY + timedelta(days=40),
        "days_to_renewal": 40,
        "source": "model",
        "fallback": None,
        "churn_probability": 0.3,
        "risk_band": "high",
        "health_score": 55.0,
        "health_band": "at_risk",
    }
    return Entry(**{**base, **changes})  # type: ignore[arg-type]


def test_a_filter_admits_only_what_it_names() -> None:
    e = entry()
    assert e.arr_at_risk == pytest.approx(30_000.0)
    assert Filters().admits(e) and Filters(tier="enterprise", band="high", csm="csm-1").admits(e)
    assert not Filters(tier="trial").admits(e) and not Filters(source="rules").admits(e)
    assert Filters(renewal_days=60).admits(e) and not Filters(renewal_days=30).admits(e)
    assert not Filters(renewal_days=60).admits(entry(days_to_renewal=-3)), "a passed renewal is not upcoming"
    assert entry(churn_probability=None).arr_at_risk is None


def test_only_contracts_started_since_the_last_build_count_as_new() -> None:
    build = DAY - timedelta(days=10)

    def started(days: int) -> AccountRecord:
        return AccountRecord("acc-1", contract_start=DAY + timedelta(days=days))

    assert started_since(started(-2), build, DAY)
    assert not started_since(started(-200), build, DAY), "left at once"
    assert not started_since(started(2), build, DAY), "not started yet"
    assert not started_since(AccountRecord("acc-2"), build, DAY), "no contract start: not new"


def test_the_timeline_reads_as_sentences_newest_first() -> None:
    events = [
        {
            "ts": DAY - timedelta(days=5),
            "event_type": "billing.invoice",
            "invoice_id": "inv-1",
            "status": "failed",
            "amount": 1234.0,
        },
        {
            "ts": DAY - timedelta(days=1),
            "event_type": "error.raised",
            "count": 3,
            "severity": "critical",
            "feature": "data_export",
        },
    ]
    actions = [
        {"ts": DAY - timedelta(days=3), "action": "qbr_roi_review", "owner": "csm-1", "assignment": "random"},
        {"ts": DAY - timedelta(days=9), "action": "holdout", "owner": "csm-1", "assignment": "holdout"},
    ]
    moments = as_moments(events, actions)
    assert [m.kind for m in moments] == ["incident", "intervention", "invoice", "intervention"]
    assert moments[0].text == "3 critical error(s) in data export"
    assert moments[1].text == "QBR ROI review by csm-1 (random experiment arm)"
    assert moments[2].text == "Invoice inv-1 failed: $1,234"
    assert moments[3].text == "Held out by csm-1: no proactive play until the next holdout draw"
    assert action_label("in_app_nudge") == "In app nudge"


def test_a_chart_needs_two_points_and_describes_them() -> None:
    assert line_chart("c", "Churn", [(DAY, 0.2)], low=0, high=1, label="{:.0%}") == ""
    svg = line_chart(
        "c", "Churn", [(DAY - timedelta(days=40), 0.2), (DAY, 0.35)], low=0, high=1, label="{:.0%}"
    )
    assert 'role="img"' in svg and '<title id="c-title">Churn</title>' in svg
    assert "Jun 2025: 20%; Jul 2025: 35%" in svg


def test_the_account_template_reads_exactly_what_the_page_gives_it() -> None:
    assert TEMPLATES.loader is not None
    source = TEMPLATES.loader.get_source(TEMPLATES, "account.html")[0]
    wanted = meta.find_undeclared_variables(TEMPLATES.parse(source))
    page = {f.name for f in fields(AccountPage)}
    assert wanted == page | {"viewer", "flash", "error", "fallback_words"}


@pytest.mark.parametrize(
    ("account", "title", "lede"),
    [
        (AccountRecord("acc-9"), "acc-9", "acc-9 · — · CSM unassigned · ARR —"),
        (
            AccountRecord("acc-9", "Acme", "enterprise", "mid_market", 120_000.0, None, None, "csm-3"),
            "Acme",
            "acc-9 · enterprise · mid market · CSM csm-3 · ARR $120,000",
        ),
    ],
)
def test_the_account_page_names_the_account_or_its_id(account: AccountRecord, title: str, lede: str) -> None:
    risk = Risk(
        account_id="acc-9",
        source="rules",
        fallback_reason=Fallback(code="no_feature_row", message="no feature row"),
        churn_probability=None,
        expansion_probability=None,
        horizon_days=90,
        risk_band=None,
        health=Health(score=None, band=None, components={}, weights={}),
        reasons=[],
        changes=None,
        models={"churn": None, "expansion": None},
        features=Freshness(cutoff=None, age_days=None, limit_days=14, fresh=False),
    )
    page = AccountPage(
        account_id="acc-9",
        account=account,
        risk=risk,
        actions=None,
        points=(),
        charts=[],
        churn_trend=False,
        timeline=[],
        timeline_days=90,
        recorded=[],
        log_note=None,
        can_see_actions=False,
        can_act=False,
        renewal=None,
        renewal_in=None,
        left=True,
        plan_note=None,
    )
    html = TEMPLATES.get_template("account.html").render(
        viewer=None, flash=None, error=None, fallback_words={}, **page.context()
    )
    assert f"<h1>{title}</h1>" in html and f"<title>{title} · Retain cockpit</title>" in html
    shown = " ".join(html.split('<p class="lede">')[1].split("</p>")[0].split())
    assert shown == f"{lede} · no longer active (contract to —)"


def headers_sent(path: str, given: list[tuple[bytes, bytes]], layers: int = 1) -> dict[str, list[str]]:
    """The headers an answer leaves with, by name, after `layers` CockpitHeaders around a route that
    answers with `given`."""

    async def route(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": list(given)})
        await send({"type": "http.response.body", "body": b""})

    app = route
    for _ in range(layers):
        app = CockpitHeaders(app)
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app({"type": "http", "method": "GET", "path": path, "headers": []}, receive, send))
    out: dict[str, list[str]] = {}
    for name, value in sent[0]["headers"]:
        out.setdefault(name.decode().lower(), []).append(value.decode())
    return out


@pytest.mark.parametrize("path", ["/ui", "/ui/login", "/ui/accounts/acc-1", "/ui/nope"])
def test_every_cockpit_answer_carries_the_security_headers_and_is_not_stored(path: str) -> None:
    sent = headers_sent(path, [(b"content-type", b"text/html")], layers=2)
    assert sent["content-security-policy"] == [CONTENT_SECURITY_POLICY], "once, however often applied"
    assert sent["x-frame-options"] == ["DENY"] and sent["x-content-type-options"] == ["nosniff"]
    assert sent["referrer-policy"] == ["same-origin"], "no-referrer would post `Origin: null`"
    assert sent["cache-control"] == ["no-store"] and sent["content-type"] == ["text/html"]


def test_the_api_is_left_alone_and_the_stylesheet_stays_cacheable() -> None:
    for path in ("/v1/score", "/healthz", "/uix"):
        assert set(headers_sent(path, [])) == set(), path
    sheet = headers_sent("/ui/static/cockpit.css", [(b"cache-control", b"max-age=3600")])
    assert sheet["cache-control"] == ["max-age=3600"] and sheet["x-content-type-options"] == ["nosniff"]


def test_the_policy_allows_exactly_what_the_pages_use() -> None:
    """No script, no inline style, no image, no frame, no other host: only the cockpit's own stylesheet,
    and forms that post to the cockpit. A template that needs more fails here before a browser blocks it."""
    assert TEMPLATES.loader is not None
    sources = {name: TEMPLATES.loader.get_source(TEMPLATES, name)[0] for name in TEMPLATES.list_templates()}
    chart = line_chart(
        "c", "Churn", [(DAY - timedelta(days=40), 0.2), (DAY, 0.35)], low=0, high=1, label="{:.0%}"
    )
    for name, text in [*sources.items(), ("chart", chart), ("stylesheet", STYLESHEET.decode())]:
        for used in (
            r"<script",
            r"\son\w+=",
            r"style=",
            r"<style",
            r"<img",
            r"<iframe",
            r"<object",
            r"<base",
        ):
            assert not re.search(used, text, re.IGNORECASE), (name, used)
        assert not re.search(r"url\(|@import|https?://(?!www\.w3\.org/2000/svg)", text), name
        assert all(a.startswith("/ui") for a in re.findall(r'<form[^>]*action="([^"]*)"', text)), name
    assert re.findall(r'<link[^>]*href="([^"]*)"', sources["base.html"]) == ["/ui/static/cockpit.css"]
    assert {d.split()[0]: d.split()[1:] for d in CONTENT_SECURITY_POLICY.split("; ")} == {
        "default-src": ["'none'"],
        "style-src": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
        "base-uri": ["'none'"],
    }


def test_every_post_form_echoes_its_token() -> None:
    assert TEMPLATES.loader is not None
    for name in TEMPLATES.list_templates():
        text = TEMPLATES.loader.get_source(TEMPLATES, name)[0]
        for form in re.findall(r'<form[^>]*method="post".*?</form>', text, re.DOTALL):
            assert '<input type="hidden" name="csrf"' in form, (name, form[:80])


@pytest.mark.parametrize(
    ("origin", "host", "same"),
    [
        ("http://127.0.0.1:8000", "127.0.0.1:8000", True),
        ("https://Retain.example", "retain.example", True),
        ("https://retain.example", "retain.example:443", True),
        ("http://[::1]:8000", "[::1]:8000", True),
        ("http://127.0.0.1:8001", "127.0.0.1:8000", False),
        ("https://retain.example", "retain.example:80", False),
        ("https://evil.example", "retain.example", False),
        ("null", "retain.example", False),
        ("http://retain.example:99999", "retain.example", False),
        ("http://retain.example", "", False),
    ],
)
def test_an_origin_must_name_the_host_it_posts_to(origin: str, host: str, same: bool) -> None:
    assert same_host(origin, host) is same


def test_tokens_compare_safely_whatever_a_forged_form_sends() -> None:
    session = Session("0123456789ab", "csm")
    assert session.echoed(session.csrf) and not session.echoed("") and not session.echoed("é" * 32)
    assert same_token("abc", "abc") and not same_token("abc", "abd")
    assert not same_token("", ""), "no cookie, no sign-in: an empty field never matches"


def test_a_session_in_memory_holds_the_keys_id_not_the_key_and_lapses_when_unused() -> None:
    async def story() -> None:
        sessions = MemorySessions(hours=0.3 / 3600)
        token, session = await sessions.open("0123456789ab", "csm")
        assert [f.name for f in fields(session)] == ["key_id", "name", "csrf"]
        assert await sessions.get(token) == session and await sessions.get("guessed") is None
        await asyncio.sleep(0.2)
        assert await sessions.get(token) == session, "each use restarts the idle clock"
        await asyncio.sleep(0.2)
        assert await sessions.get(token) == session
        await asyncio.sleep(0.4)
        assert await sessions.get(token) is None
        kept, _ = await sessions.open("0123456789ab", "csm")
        await sessions.close(kept)
        assert await sessions.get(kept) is None

    asyncio.run(story())


def test_the_account_page_finds_the_accounts_arm_in_the_newest_plan_of_the_last_week(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    weeks = [DAY - timedelta(days=10), DAY - timedelta(days=3)]
    rows = [
        (weeks[0], "acc-1", "holdout", None, None, 0.1),
        (weeks[1], "acc-1", "planned", "save_offer", 812.4, 1.0),  # recorded before exploration
        (weeks[1], "acc-2", "explore", "qbr_roi_review", 95.0, 0.02),
    ]
    table = pa.Table.from_pylist(
        [
            dict(zip(["week", "account_id", "arm", "action", "expected_value", "propensity"], r, strict=True))
            | {"csm_id": "csm-1", "arr": 50_000.0, "model_version": "3"}
            for r in rows
        ],
        schema=PLANS_SCHEMA,
    )
    store.write(PLANS, table, "append", "test")
    assert latest_arm(store, "acc-1", DAY - timedelta(days=7)) == PlanArm(
        weeks[1], "chosen", "save_offer", 812.4, 1.0
    )
    assert latest_arm(store, "acc-1", DAY - timedelta(days=2)) is None, "no plan of the last two days"
    assert latest_arm(store, "acc-3", weeks[0]) is None
    assert latest_arm(store, "acc-2", weeks[0]).arm == "explore"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("arm", "said"),
    [
        (
            PlanArm(DAY, "chosen", "save_offer", 812.4, 1.0),
            "Save offer, chosen as the best use of the CSM's hours (expected value $812)",
        ),
        (PlanArm(DAY, "explore", "qbr_roi_review", 95.0, 0.02), "QBR ROI review, tried to learn what works"),
        (
            PlanArm(DAY, "holdout", None, None, 0.1),
            "Held out of the plan for the week of 2025-07-31 at random (10% of accounts are)",
        ),
        (PlanArm(DAY, "none", None, None, 0.9), "No action in the plan for the week of 2025-07-31"),
    ],
)
def test_the_plan_note_says_the_accounts_arm_and_why_in_one_sentence(arm: PlanArm, said: str) -> None:
    sentence = plan_sentence(arm)
    assert said in sentence and sentence.count(".") >= 1 and "_" not in sentence
