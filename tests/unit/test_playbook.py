"""Action eligibility over a feature row, cool-downs, unknown data, and the rules ranking by health band."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.catalogue import ACTIONS, CATALOGUE
from features.definitions import sql
from features.playbook import Verdict, eligibility, rules_ranking
from features.playbook_file import BUILT_IN
from tests.support.rows import QUIET

AS_OF = datetime(2025, 6, 1, tzinfo=UTC)


def verdicts(last_taken: dict[str, datetime] | None = None, **changes: Any) -> dict[str, Verdict]:
    return {v.action: v for v in eligibility({**QUIET, **changes}, last_taken or {}, AS_OF)}


def test_one_verdict_per_action_in_catalogue_order_and_a_quiet_account_gets_none() -> None:
    result = eligibility(QUIET, {}, AS_OF)
    assert [v.action for v in result] == list(ACTIONS)
    assert [v.action for v in result if v.eligible] == []
    assert all(v.reasons for v in result)
    assert verdicts()["billing_outreach"].reasons == ("No overdue or failed invoice",)


@pytest.mark.parametrize(
    ("action", "changes", "evidence"),
    [
        ("billing_outreach", {"invoices_overdue": 2}, "2 overdue invoices open"),
        ("billing_outreach", {"invoices_failed": 1}, "1 invoices with a failed payment open"),
        ("integration_assist", {"integrations_failing": 1}, "1 integrations failing or disconnected"),
        (
            "hypercare_onboarding",
            {"onboarding_stalled": 1.0, "first_value_reached": 0.0},
            "Onboarding stalled",
        ),
        ("hypercare_onboarding", {"first_value_reached": 0.0}, "First value not reached yet"),
        ("office_hours_invite", {"open_p1p2_tickets": 1}, "1 urgent (P1/P2) tickets open"),
        ("office_hours_invite", {"error_spike": 1}, "Errors spiked"),
        ("office_hours_invite", {"tickets_created_30d": 4}, "4 support tickets in the last 30 days"),
        (
            "exec_sponsor_call",
            {"sponsor_disengaged": 1, "health_band": "at_risk", "tier": "enterprise"},
            "Executive sponsor not contacted for 60 days",
        ),
        ("training_session", {"usage_drop_alert": 1}, "Sessions fell by half"),
        ("training_session", {"seat_utilisation": 0.2}, "20% of purchased seats active"),
        ("training_session", {"core_feature_share_30d": 0.25}, "25% of core features used"),
        ("qbr_roi_review", {"days_to_renewal": 100.0}, "Renewal in 100 days"),
        ("health_check_call", {"health_band": "at_risk"}, "Health band: at risk"),
        ("health_check_call", {"health_band": "critical"}, "Health band: critical"),
        ("in_app_nudge", {"core_features_unused_7d": 2.0}, "2 core features unused for 7 days"),
        (
            "save_offer",
            {"health_band": "critical", "days_to_renewal": 60.0},
            "Renewal in 60 days",
        ),
        (
            "save_offer",
            {"health_band": "critical", "days_to_renewal": -3.0},
            "Renewal date passed 3 days ago",
        ),
        ("upgrade_offer", {"seat_limit_near": 1.0}, "80% or more of purchased seats in use"),
        ("reference_ask", {"health_band": "healthy", "nps_last": 9.0}, "Last NPS 9 of 10"),
    ],
)
def test_trigger_makes_its_action_eligible_with_the_evidence(
    action: str, changes: dict[str, Any], evidence: str
) -> None:
    assert not verdicts()[action].eligible
    verdict = verdicts(**changes)[action]
    assert verdict.eligible, verdict.reasons
    assert any(r.startswith(evidence) for r in verdict.reasons), verdict.reasons


@pytest.mark.parametrize(
    ("action", "changes", "why_not"),
    [
        (
            "exec_sponsor_call",
            {"sponsor_disengaged": 1, "health_band": "at_risk", "tier": "small_business"},
            "Tier",
        ),
        ("exec_sponsor_call", {"sponsor_disengaged": 1, "tier": "enterprise"}, "Health band neutral"),
        ("qbr_roi_review", {"days_to_renewal": 100.0, "health_band": "healthy"}, "Health band healthy"),
        ("qbr_roi_review", {"days_to_renewal": 100.0, "tier": "trial"}, "Trial account"),
        ("qbr_roi_review", {"days_to_renewal": 121.0}, "Renewal not within the next 120 days"),
        ("qbr_roi_review", {"days_to_renewal": -3.0}, "Renewal not within the next 120 days"),
        (
            "save_offer",
            {"health_band": "critical", "days_to_renewal": 60.0, "tier": "trial"},
            "Trial account",
        ),
        (
            "save_offer",
            {"health_band": "critical", "days_to_renewal": 91.0},
            "Renewal more than 90 days away",
        ),
        ("save_offer", {"health_band": "at_risk", "days_to_renewal": 60.0}, "Health band not critical"),
        ("upgrade_offer", {"seat_limit_near": 1.0, "health_band": "at_risk"}, "Health band at_risk"),
        ("reference_ask", {"health_band": "healthy", "nps_last": 8.0}, "Last NPS 8 of 10: not a promoter"),
        ("reference_ask", {"health_band": "neutral", "nps_last": 10.0}, "Health band not healthy"),
        ("training_session", {"seat_utilisation": 0.25, "core_feature_share_30d": 0.5}, "Adoption is broad"),
        ("office_hours_invite", {"tickets_created_30d": 3}, "No urgent ticket open"),
    ],
)
def test_gate_or_threshold_keeps_action_ineligible_and_says_why(
    action: str, changes: dict[str, Any], why_not: str
) -> None:
    verdict = verdicts(**changes)[action]
    assert not verdict.eligible
    assert any(r.startswith(why_not) for r in verdict.reasons), verdict.reasons


def test_cool_down_blocks_with_the_day_count_and_reopens_after_it() -> None:
    assert CATALOGUE["billing_outreach"].cooldown_days == 14
    overdue = {"invoices_overdue": 1}

    blocked = verdicts({"billing_outreach": AS_OF - timedelta(days=5, hours=3)}, **overdue)[
        "billing_outreach"
    ]
    assert not blocked.eligible
    assert blocked.reasons == ("Taken 5 days ago; cool-down is 14 days",)

    almost = verdicts({"billing_outreach": AS_OF - timedelta(days=14) + timedelta(minutes=1)}, **overdue)
    assert almost["billing_outreach"].reasons == ("Taken 13 days ago; cool-down is 14 days",)

    reopened = verdicts({"billing_outreach": AS_OF - timedelta(days=14)}, **overdue)["billing_outreach"]
    assert reopened.eligible
    assert reopened.reasons == ("1 overdue invoices open",)


def test_cool_down_of_an_untriggered_action_is_reported_beside_the_rule() -> None:
    verdict = verdicts({"in_app_nudge": AS_OF})["in_app_nudge"]
    assert verdict.reasons == ("Taken today; cool-down is 7 days", "Every core feature used this week")


def test_an_action_taken_after_as_of_does_not_count() -> None:
    later = verdicts({"billing_outreach": AS_OF + timedelta(days=1)}, invoices_overdue=1)
    assert later["billing_outreach"].eligible


def test_unknown_inputs_never_make_an_action_eligible_and_say_data_is_missing() -> None:
    nothing_known = eligibility({}, {}, AS_OF)
    assert not any(v.eligible for v in nothing_known)
    assert all(any("data missing" in r for r in v.reasons) for v in nothing_known)

    nan = float("nan")
    onboarding = verdicts(onboarding_stalled=nan, first_value_reached=None)["hypercare_onboarding"]
    assert not onboarding.eligible
    assert onboarding.reasons == ("Onboarded before usage data began (data missing)",)

    no_tier = verdicts(sponsor_disengaged=1, health_band="at_risk", tier=None)["exec_sponsor_call"]
    assert not no_tier.eligible
    assert no_tier.reasons == ("Tier unknown (data missing)",)

    no_nps = verdicts(health_band="healthy", nps_last=nan)["reference_ask"]
    assert not no_nps.eligible
    assert no_nps.reasons == ("No NPS response yet (data missing)",)

    no_band = {k: v for k, v in QUIET.items() if k != "health_band"} | {"seat_limit_near": 1.0}
    unscored = {v.action: v for v in eligibility({**no_band, "days_to_renewal": 60.0}, {}, AS_OF)}
    for action in ("health_check_call", "qbr_roi_review", "upgrade_offer", "save_offer"):
        assert not unscored[action].eligible
        assert unscored[action].reasons == ("Health band: unknown (data missing)",)


def test_one_known_trigger_is_enough_when_another_is_unknown() -> None:
    verdict = verdicts(error_spike=1, open_p1p2_tickets=None)["office_hours_invite"]
    assert verdict.eligible
    assert verdict.reasons == ("Errors spiked above this account's usual level",)


def test_plays_cover_the_health_bands_and_every_action_exactly_once() -> None:
    assert set(BUILT_IN.plays) == set(re.findall(r"'(\w+)'", sql("health")))
    for band, play in BUILT_IN.plays.items():
        assert play.band == band
        assert sorted(play.priority) == sorted(ACTIONS)
        assert len(play.priority) == len(set(play.priority))


@pytest.mark.parametrize("band", list(BUILT_IN.plays))
def test_ranking_follows_the_band_play_and_holds_only_eligible_actions(band: str) -> None:
    eligible = set(ACTIONS[::2])
    given = [Verdict(a, a in eligible, (f"because {a}",)) for a in reversed(ACTIONS)]
    ranked = rules_ranking(band, given)
    assert [r.action for r in ranked] == [a for a in BUILT_IN.plays[band].priority if a in eligible]
    assert [r.rank for r in ranked] == list(range(1, len(eligible) + 1))
    assert all(r.eligibility == (f"because {r.action}",) for r in ranked)
    assert rules_ranking(band, given) == ranked


def test_ranking_of_a_real_row_puts_the_band_play_first() -> None:
    row = {**QUIET, "health_band": "at_risk", "invoices_overdue": 1, "core_features_unused_7d": 1.0}
    ranked = rules_ranking("at_risk", eligibility(row, {}, AS_OF))
    assert [r.action for r in ranked] == ["health_check_call", "billing_outreach", "in_app_nudge"]
    assert ranked[1].rationale == "Proactive outreach (at risk): 1 overdue invoices open."


def test_save_offer_rationale_says_it_needs_approval() -> None:
    row = {**QUIET, "health_band": "critical", "days_to_renewal": 30.0}
    save = next(r for r in rules_ranking("critical", eligibility(row, {}, AS_OF)) if r.action == "save_offer")
    assert save.rationale.startswith("Intervention required (critical): ")
    assert "renewal in 30 days" in save.rationale
    assert save.rationale.endswith("needs approval before it is offered.")


def test_no_health_score_uses_the_neutral_play() -> None:
    given = [Verdict(a, True, ("evidence",)) for a in ACTIONS]
    unscored = rules_ranking(None, given)
    assert [r.action for r in unscored] == list(BUILT_IN.plays["neutral"].priority)
    assert [r.action for r in unscored] != list(BUILT_IN.plays["at_risk"].priority)
    assert unscored[0].rationale.startswith("Monitor, engage (no health score): ")


def test_unknown_band_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown health band"):
        rules_ranking("amber", [])
