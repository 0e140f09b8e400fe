"""The weekly digest's pure parts on frames with a known answer: band moves, ARR at risk by group, the
week's bounds, plan and alerts, and the page's self-containment."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime

import pandas as pd
import pytest

from core.errors import RetainError
from core.settings import Settings
from products.digest import risk
from products.digest.headlines import headlines
from products.digest.html import render
from products.digest.schema import AlertsSection, ArrAtRisk, DigestReport, PlanSection, RiskMoves
from products.digest.week import alert_counts, week_bounds, week_plan
from products.monitor.impact import plan_impact
from serving.webhooks.outbox import AlertBrief
from store.plan_table import PLANS_SCHEMA

SETTINGS = Settings()  # bands: medium from 0.10, high from 0.25, critical from 0.50


def _scored(rows: list[tuple[str, float, float | None, str | None, str | None]]) -> pd.DataFrame:
    """(account, churn probability, ARR, tier, CSM) -> a scored frame as `run.scored_frames` makes."""
    frame = pd.DataFrame(rows, columns=["account_id", "churn_probability", "arr", "tier", "csm_id"])
    return frame.assign(name=frame["account_id"].str.upper(), reason="Fewer sessions")


BEFORE = _scored(
    [
        ("a", 0.05, 100.0, "smb", "c1"),  # low -> critical: enters
        ("b", 0.30, 200.0, "smb", "c1"),  # high -> medium: leaves
        ("c", 0.60, 300.0, "enterprise", "c2"),  # critical -> high: stays high
        ("d", 0.40, 400.0, "enterprise", "c3"),  # high -> gone (churned): leaves
        ("e", 0.02, 500.0, "smb", None),  # low -> low
    ]
)
AFTER = _scored(
    [
        ("a", 0.55, 100.0, "smb", "c1"),
        ("b", 0.12, 200.0, "smb", "c1"),
        ("c", 0.26, 300.0, "enterprise", "c2"),
        ("e", 0.03, 500.0, "smb", None),
        ("f", 0.90, float("nan"), None, "c2"),  # new, critical, ARR unknown: enters
    ]
)


def test_moves_are_crossings_of_the_high_band_including_accounts_new_and_gone() -> None:
    entering, leaving = risk.moves(BEFORE, AFTER, SETTINGS)
    assert [m.account_id for m in entering] == ["a", "f"], "largest ARR first, unknown last"
    assert [m.account_id for m in leaving] == ["d", "b"]
    a, f = entering
    assert (a.band_before, a.band_after, a.probability_before, a.probability_after) == (
        "low",
        "critical",
        0.05,
        0.55,
    )
    assert (f.band_before, f.probability_before, f.arr, f.tier) == (None, None, None, None)
    gone = leaving[0]
    assert (gone.band_after, gone.probability_after) == (None, None)
    assert (gone.arr, gone.tier, gone.csm_id, gone.name) == (400.0, "enterprise", "c3", "D"), (
        "the earlier row's"
    )
    assert gone.reason == "Fewer sessions"


def test_bands_follow_the_settings() -> None:
    wider = Settings(serve={"risk_bands": {"medium": 0.05, "high": 0.10, "critical": 0.5}})
    entering, leaving = risk.moves(BEFORE, AFTER, wider)
    assert {m.account_id for m in entering} == {"a", "f"} and {m.account_id for m in leaving} == {"d"}


def test_arr_at_risk_is_arr_times_probability_and_the_groups_sum_to_the_total() -> None:
    total = risk.risk_by(AFTER, BEFORE, None)
    assert len(total) == 1 and total[0].group == "all" and total[0].accounts == 5
    now = 0.55 * 100 + 0.12 * 200 + 0.26 * 300 + 0.03 * 500
    then = 0.05 * 100 + 0.30 * 200 + 0.60 * 300 + 0.40 * 400 + 0.02 * 500
    assert total[0].arr_at_risk == pytest.approx(now) and total[0].arr_at_risk_before == pytest.approx(then)
    assert total[0].change == pytest.approx(now - then)
    for by in ("tier", "csm_id"):
        groups = risk.risk_by(AFTER, BEFORE, by)
        assert sum(g.arr_at_risk for g in groups) == pytest.approx(total[0].arr_at_risk)
        assert sum(g.change or 0.0 for g in groups) == pytest.approx(total[0].change)
        assert sum(g.accounts for g in groups) == total[0].accounts
    by_csm = {g.group: g for g in risk.risk_by(AFTER, BEFORE, "csm_id")}
    assert by_csm["c3"].accounts == 0 and by_csm["c3"].arr_at_risk == 0.0, "a CSM whose account left stays"
    assert by_csm["c3"].change == pytest.approx(-160.0)
    assert by_csm["unassigned"].arr_at_risk == pytest.approx(15.0)
    by_tier = risk.risk_by(AFTER, None, "tier")
    assert [g.group for g in by_tier] == ["smb", "enterprise", "unknown"], "largest first"
    assert all(g.arr_at_risk_before is None and g.change is None for g in by_tier)


def test_top_reason_reads_the_scores_reasons_column() -> None:
    reasons = json.dumps(
        [{"feature": "sessions_wow", "text": "Sessions fell 40%"}, {"feature": "x", "text": "y"}]
    )
    assert risk.top_reason(reasons) == "Sessions fell 40%"
    assert risk.top_reason("[]") is None and risk.top_reason(None) is None


def test_a_week_starts_on_a_monday_and_other_days_are_refused_naming_it() -> None:
    start, end = week_bounds(date(2025, 7, 28))
    assert start == datetime(2025, 7, 28, tzinfo=UTC) and end == datetime(2025, 8, 4, tzinfo=UTC)
    with pytest.raises(RetainError, match=r"2025-07-30 is a Wednesday.*2025-07-28"):
        week_bounds(date(2025, 7, 30))


def _plans(week: str, arms: list[tuple[str, str | None, float | None]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "week": pd.Timestamp(week, tz="UTC"),
                "account_id": f"x{i}",
                "arm": arm,
                "action": action,
                "csm_id": "c1",
                "expected_value": value,
                "arr": 1000.0,
                "model_version": "3",
            }
            for i, (arm, action, value) in enumerate(arms)
        ],
        columns=list(PLANS_SCHEMA.names),
    )


def test_the_weeks_plan_counts_actions_arms_and_value_of_its_latest_plan() -> None:
    assert week_plan(_plans("2025-07-28", [])) is None
    rows = pd.concat(
        [
            _plans("2025-07-28", [("chosen", "qbr", 9.0)]),
            _plans(
                "2025-07-30",
                [
                    ("chosen", "qbr", 50.0),
                    ("chosen", "qbr", 30.0),
                    ("chosen", "training_session", 100.0),
                    ("holdout", None, None),
                    ("none", None, None),
                ],
            ),
        ]
    )
    plan = week_plan(rows)
    assert plan is not None and plan.week == "2025-07-30" and plan.model_version == "3"
    assert (plan.accounts, plan.planned, plan.holdout, plan.expected_value) == (5, 3, 1, 180.0)
    assert [(a.action, a.accounts, a.expected_value) for a in plan.actions] == [
        ("qbr", 2, 80.0),
        ("training_session", 1, 100.0),
    ]


def test_alerts_are_counted_by_type_most_frequent_first_with_a_few_examples() -> None:
    at = datetime(2025, 7, 31, tzinfo=UTC)
    found = [AlertBrief(f"al{i}", "risk_band_changed", f"a{i}", at, f"s{i}") for i in range(5)]
    found.append(AlertBrief("alx", "usage_drop", "b", at, "dropped"))
    counts = alert_counts(found, examples=2)
    assert [(c.type, c.count) for c in counts] == [("risk_band_changed", 5), ("usage_drop", 1)]
    assert [e.summary for e in counts[0].examples] == ["s0", "s1"] and counts[0].examples[
        0
    ].at == "2025-07-31"


def _report(plans: pd.DataFrame) -> DigestReport:
    entering, leaving = risk.moves(BEFORE, AFTER, SETTINGS)
    empty = plans[:0].assign(churned=[], expanded=[], matured=[])
    report = DigestReport(
        store="/s",
        computed_at="2026-01-01T00:00:00+00:00",
        week="2025-07-28",
        week_end="2025-08-03",
        risk=RiskMoves(
            cutoff="2025-07-31",
            previous_cutoff="2025-06-30",
            high_from=0.25,
            entering=entering,
            leaving=leaving,
        ),
        arr_at_risk=ArrAtRisk(
            cutoff="2025-07-31",
            previous_cutoff="2025-06-30",
            total=risk.risk_by(AFTER, BEFORE, None)[0],
            by_tier=risk.risk_by(AFTER, BEFORE, "tier"),
            by_csm=risk.risk_by(AFTER, BEFORE, "csm_id"),
        ),
        plan=PlanSection(week=week_plan(plans), impact=plan_impact(empty, seed=1)),
        alerts=AlertsSection(logged=False, total=0, by_type=[]),
        headlines=[],
    )
    return report.model_copy(update={"headlines": headlines(report)})


def test_the_page_is_one_self_contained_email_page_naming_the_week() -> None:
    report = _report(_plans("2025-07-28", [])[:0])
    page = render(report)
    assert "<script" not in page and "<img" not in page and "<link" not in page and "<style" not in page
    assert not re.search(r"""(src|href)\s*=\s*["']?https?:""", page)
    assert "Week of 2025-07-28 to 2025-08-03" in page and "<title>Weekly digest, week of 2025-07-28" in page
    assert "never served" in page and "No plan was recorded" in page
    assert (
        "2 account(s) entered high risk ($100 ARR) and 2 left it ($600, 1 of them no longer active)" in page
    )
    assert DigestReport.model_validate_json(report.model_dump_json()) == report
