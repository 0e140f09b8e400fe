"""Which catalogue actions an account is eligible for, why, and the rules ranking of the eligible ones.

Eligibility is the observable version of the catalogue triggers (docs/domain.md), the same signals the
simulated CS team targets on (`retain.simulate.interventions.targeted`), read from one feature row. It
gates every ranking: the health band's play orders the eligible actions now, and an uplift model will
later order them by expected value, with this ranking as its fallback. Unknown data (None, NaN or an
absent column) never makes an action eligible: a recommendation must rest on evidence a CSM can check.
Plain Python over a mapping, because the weekly planner runs it for every account.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from features.definitions import describe
from retain.core.catalogue import ACTIONS, CATALOGUE
from retain.core.contract import Tier

#: Office hours: this many tickets in 30 days count as "many" (about the top 5% of accounts).
MANY_TICKETS_30D = 4
#: Training: adoption is narrow below this share of purchased seats active in 30 days.
LOW_SEAT_UTILISATION = 0.25
#: Training: adoption is narrow below this share of core features used in 30 days.
LOW_CORE_SHARE = 0.5
#: QBR / ROI review: a renewal this close (days) is the time to prove value.
QBR_RENEWAL_DAYS = 120
#: Save offer: a renewal this close (days, or already passed) in the critical band is the proxy for
#: cancellation intent.
SAVE_RENEWAL_DAYS = 90
#: Reference ask: promoters only.
PROMOTER_NPS = 9

SPONSOR_TIERS = frozenset({Tier.ENTERPRISE.value, Tier.MID_MARKET.value})
RISK_BANDS = frozenset({"at_risk", "critical"})
GROWTH_BANDS = frozenset({"healthy", "neutral"})


@dataclass(frozen=True)
class Verdict:
    """Whether one action may be offered to one account now, with reasons a CSM can check."""

    action: str
    eligible: bool
    #: eligible: the evidence that triggers it; not eligible: what stands in the way
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Play:
    """A health band's default play (docs/domain.md): the rules ranking when no model ranks the actions."""

    band: str
    name: str
    #: every catalogue action, in the order this band's play reaches for them
    priority: tuple[str, ...]


@dataclass(frozen=True)
class RankedAction:
    """One eligible action in a ranking, with the sentence that justifies its place."""

    action: str
    rank: int
    rationale: str
    eligibility: tuple[str, ...]


@dataclass(frozen=True)
class Fact:
    """A test on one feature's known value; `yes`/`no` (formatted with `value`) replace the feature's own
    sentence where it reads badly."""

    feature: str
    holds: Callable[[Any], bool]
    yes: str | None = None
    no: str | None = None


@dataclass(frozen=True)
class Rule:
    """Eligible when any trigger holds and every gate holds; `no_trigger` says why not when no trigger
    holds."""

    triggers: tuple[Fact, ...]
    no_trigger: str
    gates: tuple[Fact, ...] = ()


_BAND_AT_RISK = Fact(
    "health_band", RISK_BANDS.__contains__, no="Health band {value}: not at risk or critical"
)

RULES: dict[str, Rule] = {
    "office_hours_invite": Rule(
        (
            Fact("open_p1p2_tickets", lambda v: v > 0),
            Fact("error_spike", lambda v: v == 1, yes="Errors spiked above this account's usual level"),
            Fact("tickets_created_30d", lambda v: v >= MANY_TICKETS_30D),
        ),
        f"No urgent ticket open, no error spike and fewer than {MANY_TICKETS_30D} tickets in 30 days",
    ),
    "exec_sponsor_call": Rule(
        (Fact("sponsor_disengaged", lambda v: v == 1, yes="Executive sponsor not contacted for 60 days"),),
        "Executive sponsor contacted within 60 days",
        (
            Fact(
                "tier", SPONSOR_TIERS.__contains__, no="Tier {value}: sponsor calls are for larger accounts"
            ),
            _BAND_AT_RISK,
        ),
    ),
    "hypercare_onboarding": Rule(
        (
            Fact(
                "onboarding_stalled",
                lambda v: v == 1,
                yes="Onboarding stalled: over 72 hours without a milestone",
            ),
            Fact("first_value_reached", lambda v: v == 0, yes="First value not reached yet"),
        ),
        "Onboarding complete: first value reached",
    ),
    "integration_assist": Rule((Fact("integrations_failing", lambda v: v > 0),), "No failing integration"),
    "training_session": Rule(
        (
            Fact(
                "usage_drop_alert",
                lambda v: v == 1,
                yes="Sessions fell by half or more versus the week before",
            ),
            Fact("seat_utilisation", lambda v: v < LOW_SEAT_UTILISATION),
            Fact("core_feature_share_30d", lambda v: v < LOW_CORE_SHARE),
        ),
        "Adoption is broad: no usage drop, and enough seats and core features in use",
    ),
    "qbr_roi_review": Rule(
        (Fact("days_to_renewal", lambda v: 0 < v <= QBR_RENEWAL_DAYS),),
        f"Renewal not within the next {QBR_RENEWAL_DAYS} days",
        (
            Fact("health_band", lambda v: v != "healthy", no="Health band healthy: value already shown"),
            Fact("tier", lambda v: v != Tier.TRIAL, no="Trial account: no business review"),
        ),
    ),
    "health_check_call": Rule((_BAND_AT_RISK,), "Health band not at risk or critical"),
    "in_app_nudge": Rule(
        (Fact("core_features_unused_7d", lambda v: v > 0),), "Every core feature used this week"
    ),
    "billing_outreach": Rule(
        (Fact("invoices_overdue", lambda v: v > 0), Fact("invoices_failed", lambda v: v > 0)),
        "No overdue or failed invoice",
    ),
    "save_offer": Rule(
        (Fact("health_band", lambda v: v == "critical"),),
        "Health band not critical",
        (
            Fact("tier", lambda v: v != Tier.TRIAL, no="Trial account: no concessions"),
            Fact(
                "days_to_renewal",
                lambda v: v <= SAVE_RENEWAL_DAYS,
                no=f"Renewal more than {SAVE_RENEWAL_DAYS} days away",
            ),
        ),
    ),
    "upgrade_offer": Rule(
        (Fact("seat_limit_near", lambda v: v == 1, yes="80% or more of purchased seats in use"),),
        "Under 80% of purchased seats in use",
        (Fact("health_band", GROWTH_BANDS.__contains__, no="Health band {value}: fix the account first"),),
    ),
    "reference_ask": Rule(
        (Fact("health_band", lambda v: v == "healthy"),),
        "Health band not healthy",
        (Fact("nps_last", lambda v: v >= PROMOTER_NPS, no="Last NPS {value:.0f} of 10: not a promoter"),),
    ),
}

PLAYS: dict[str, Play] = {
    p.band: p
    for p in (
        Play(
            "healthy",
            "expansion opportunity",
            (
                "upgrade_offer",
                "reference_ask",
                "billing_outreach",
                "integration_assist",
                "in_app_nudge",
                "training_session",
                "office_hours_invite",
                "hypercare_onboarding",
                "qbr_roi_review",
                "health_check_call",
                "exec_sponsor_call",
                "save_offer",
            ),
        ),
        Play(
            "neutral",
            "monitor, engage",
            (
                "billing_outreach",
                "integration_assist",
                "hypercare_onboarding",
                "office_hours_invite",
                "in_app_nudge",
                "training_session",
                "qbr_roi_review",
                "upgrade_offer",
                "health_check_call",
                "exec_sponsor_call",
                "reference_ask",
                "save_offer",
            ),
        ),
        Play(
            "at_risk",
            "proactive outreach",
            (
                "health_check_call",
                "billing_outreach",
                "integration_assist",
                "hypercare_onboarding",
                "exec_sponsor_call",
                "office_hours_invite",
                "qbr_roi_review",
                "training_session",
                "in_app_nudge",
                "save_offer",
                "upgrade_offer",
                "reference_ask",
            ),
        ),
        Play(
            "critical",
            "intervention required",
            (
                "exec_sponsor_call",
                "health_check_call",
                "save_offer",
                "billing_outreach",
                "integration_assist",
                "hypercare_onboarding",
                "qbr_roi_review",
                "office_hours_invite",
                "training_session",
                "in_app_nudge",
                "upgrade_offer",
                "reference_ask",
            ),
        ),
    )
}
#: The play for an account without a health score.
DEFAULT_BAND = "neutral"


def _test(fact: Fact, row: Mapping[str, Any]) -> tuple[bool | None, Any]:
    """(holds, value); holds is None when the value is unknown."""
    value = row.get(fact.feature)
    if value is None or value != value:  # NaN is the only value unequal to itself
        return None, None
    return bool(fact.holds(value)), value


def _say(fact: Fact, holds: bool | None, value: Any) -> str:
    if holds is None:
        return f"{describe(fact.feature, None)} (data missing)"
    template = fact.yes if holds else fact.no
    return template.format(value=value) if template else describe(fact.feature, value)


def _evaluate(rule: Rule, row: Mapping[str, Any]) -> tuple[bool, tuple[str, ...]]:
    """Sentences are built only for what is reported: when no trigger holds, gates are not consulted."""
    triggers = [(f, *_test(f, row)) for f in rule.triggers]
    if not any(holds for _, holds, _ in triggers):
        if all(holds is False for _, holds, _ in triggers):
            return False, (rule.no_trigger,)
        missing = (_say(f, None, None) for f, holds, _ in triggers if holds is None)
        return False, tuple(dict.fromkeys(missing))  # two flags can share one "unknown" sentence
    gates = [(f, *_test(f, row)) for f in rule.gates]
    blocked = tuple(_say(*g) for g in gates if g[1] is not True)
    if blocked:
        return False, blocked
    return True, tuple(_say(*t) for t in (*triggers, *gates) if t[1])


def _days(n: int) -> str:
    return "today" if n == 0 else f"{n} day ago" if n == 1 else f"{n} days ago"


def _cooling(action: str, taken: datetime | None, as_of: datetime) -> str | None:
    """Why the action is still cooling down, or None; a take after `as_of` does not count (point-in-time)."""
    if taken is None or taken > as_of:
        return None
    cooldown = CATALOGUE[action].cooldown_days
    elapsed = as_of - taken
    if elapsed >= timedelta(days=cooldown):
        return None
    return f"Taken {_days(elapsed.days)}; cool-down is {cooldown} days"


def eligibility(row: Mapping[str, Any], last_taken: Mapping[str, datetime], as_of: datetime) -> list[Verdict]:
    """One verdict per catalogue action, in catalogue order, for one feature row at `as_of`."""
    verdicts: list[Verdict] = []
    for action in ACTIONS:
        eligible, reasons = _evaluate(RULES[action], row)
        cooling = _cooling(action, last_taken.get(action), as_of)
        if cooling is not None:
            # a triggered action is blocked by the cool-down alone; otherwise both stand in the way
            reasons = (cooling,) if eligible else (cooling, *reasons)
            eligible = False
        verdicts.append(Verdict(action, eligible, reasons))
    return verdicts


def lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def rules_ranking(band: str | None, verdicts: Sequence[Verdict]) -> list[RankedAction]:
    """The eligible actions in the order of the band's play (no health score: the neutral play)."""
    if band is not None and band not in PLAYS:
        raise ValueError(f"unknown health band {band!r}; expected one of {', '.join(PLAYS)}")
    play = PLAYS[band or DEFAULT_BAND]
    lead = f"{play.name.capitalize()} ({band.replace('_', ' ') if band else 'no health score'})"
    by_action = {v.action: v for v in verdicts if v.eligible}
    ranked: list[RankedAction] = []
    for action in play.priority:
        verdict = by_action.get(action)
        if verdict is None:
            continue
        because = "; ".join(lower_first(r) for r in verdict.reasons)
        approval = "; needs approval before it is offered" if CATALOGUE[action].needs_approval else ""
        ranked.append(RankedAction(action, len(ranked) + 1, f"{lead}: {because}{approval}.", verdict.reasons))
    return ranked
