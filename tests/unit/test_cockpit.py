"""The cockpit's pure parts: the book's filters, which accounts count as new, the timeline's sentences,
the charts and the account page's template variables."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime, timedelta

import pytest
from jinja2 import meta

from serving.cockpit.book import Entry, Filters, started_since
from serving.cockpit.charts import line_chart
from serving.cockpit.pages import TEMPLATES, AccountPage
from serving.cockpit.timeline import action_label, describe
from serving.resources import AccountRecord
from serving.schemas import Fallback, Freshness, Health, Risk

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
        {"ts": DAY - timedelta(days=3), "action": "qbr_roi_review", "owner": "csm-1", "assignment": "random"}
    ]
    moments = describe(events, actions)
    assert [m.kind for m in moments] == ["incident", "intervention", "invoice"]
    assert moments[0].text == "3 critical error(s) in data export"
    assert moments[1].text == "QBR ROI review by csm-1 (random experiment arm)"
    assert moments[2].text == "Invoice inv-1 failed: $1,234"
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
    )
    html = TEMPLATES.get_template("account.html").render(
        viewer=None, flash=None, error=None, fallback_words={}, **page.context()
    )
    assert f"<h1>{title}</h1>" in html and f"<title>{title} · Retain cockpit</title>" in html
    shown = " ".join(html.split('<p class="lede">')[1].split("</p>")[0].split())
    assert shown == f"{lede} · no longer active (contract to —)"
