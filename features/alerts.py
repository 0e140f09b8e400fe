"""Alerts: what Retain pushes to playbook engines and CRMs when something about an account changes.

An alert is a fact with a stable id (the same account, type and moment always give the same id, so a
rerun of a build or a scoring run records nothing twice and a receiver can drop repeats), the evidence in
words and numbers, and the actions the playbook recommends. Pure data: what computes alerts lives beside
what it reads (feature rows, scores, the registry); the decision log's outbox records and delivers them.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args

import duckdb
import pandas as pd
import sqlglot

from features.definitions import FEATURE_BY_NAME, describe
from features.playbook import eligibility, lower_first, rules_ranking
from retain.core.catalogue import ACTIONS, CATALOGUE
from retain.core.errors import RetainError

#: the payload's version: a receiver can refuse a shape it does not know
ALERT_SCHEMA_VERSION = 1

AlertType = Literal[
    "usage_drop",
    "error_spike",
    "onboarding_stalled",
    "unpaid_invoices",
    "sponsor_disengaged",
    "risk_band_changed",
    "recommendation_changed",
    "champion_changed",
]
ALERT_TYPES: tuple[AlertType, ...] = get_args(AlertType)


@dataclass(frozen=True)
class Evidence:
    """One figure behind an alert: the feature (or quantity), its value, and the sentence a CSM reads."""

    name: str
    value: float | str | None
    text: str


@dataclass(frozen=True)
class Alert:
    """One alert. `account_id` is None for an alert about Retain itself (a champion change)."""

    id: str
    type: AlertType
    account_id: str | None
    #: the moment the alert is about: the feature cutoff, the scoring date, the promotion time (UTC)
    at: datetime
    #: one sentence, for a person
    summary: str
    evidence: tuple[Evidence, ...]
    #: catalogue action ids, best first
    actions: tuple[str, ...]


@dataclass(frozen=True)
class Alerted:
    """What one step raised and what the outbox recorded of it: `new` alerts with `deliveries` queued,
    `known` ones left as they were; `error` says why nothing was recorded (the step itself stands, and
    `retain alerts` derives the same alerts, under the same ids, again)."""

    raised: int
    new: int = 0
    known: int = 0
    deliveries: int = 0
    error: str | None = None


def alert_id(type_: AlertType, subject: str | None, at: datetime) -> str:
    """Stable: the same type, subject (account or model) and moment always give the same id."""
    digest = hashlib.sha256(f"{type_}|{subject or ''}|{at.isoformat()}".encode()).hexdigest()
    return f"al_{digest[:24]}"


@dataclass(frozen=True)
class AlertRule:
    """A signal the CS playbook reacts to: `when` is a SQL condition over the feature catalogue's columns
    (DuckDB's dialect, as the features are), `evidence` the features a CSM is shown, `actions` the
    catalogue actions that answer it (offered when the account is eligible for them)."""

    type: AlertType
    title: str
    when: str
    evidence: tuple[str, ...]
    actions: tuple[str, ...]


#: The playbook's five alert rules (docs/domain.md). "At-risk drop" reads as: sessions fell by a fifth or
#: more week over week at an account already in the at-risk or critical band (a fifth of a healthy
#: account's week is noise: a third of the book crosses it in any week).
RULES: tuple[AlertRule, ...] = (
    AlertRule(
        "usage_drop",
        "Usage dropped at an at-risk account",
        "sessions_wow <= -0.2 AND health_band IN ('at_risk', 'critical')",
        ("sessions_7d", "sessions_wow", "health_band"),
        ("health_check_call", "training_session", "in_app_nudge"),
    ),
    AlertRule(
        "error_spike",
        "Errors spiked above the account's usual level",
        "error_spike = 1",
        ("errors_7d", "error_rate_7d", "open_p1p2_tickets"),
        ("office_hours_invite", "integration_assist"),
    ),
    AlertRule(
        "onboarding_stalled",
        "Onboarding stalled for over 72 hours",
        "onboarding_stalled = 1",
        ("onboarding_milestones", "days_since_last_milestone", "first_value_reached"),
        ("hypercare_onboarding",),
    ),
    AlertRule(
        "unpaid_invoices",
        "Invoices are unpaid",
        "invoices_overdue + invoices_failed > 0",
        ("invoices_overdue", "invoices_failed", "open_invoice_amount"),
        ("billing_outreach",),
    ),
    AlertRule(
        "sponsor_disengaged",
        "The executive sponsor has disengaged",
        "sponsor_disengaged = 1",
        ("days_since_sponsor_touch", "sponsor_touches_90d"),
        ("exec_sponsor_call",),
    ),
)


def check_rule(rule: AlertRule) -> None:
    """Refuse a rule whose condition is not SQL, or reads a column the feature catalogue does not have,
    or names an action the catalogue does not have: said before any build evaluates it."""
    try:
        parsed = sqlglot.parse_one(rule.when, read="duckdb")
    except sqlglot.errors.ParseError as e:
        raise RetainError(f"alert rule {rule.type}: `when` is not a SQL condition: {e}") from e
    unknown = sorted({c.name for c in parsed.find_all(sqlglot.exp.Column)} - set(FEATURE_BY_NAME))
    unknown += sorted(set(rule.evidence) - set(FEATURE_BY_NAME))
    if unknown:
        raise RetainError(f"alert rule {rule.type}: no feature named {', '.join(unknown)} in the catalogue")
    strangers = sorted(set(rule.actions) - set(CATALOGUE))
    if strangers:
        raise RetainError(f"alert rule {rule.type}: no action named {', '.join(strangers)} in the catalogue")


def holding(rows: pd.DataFrame, rule: AlertRule) -> set[str]:
    """The accounts among `rows` (one feature row each) whose row meets the rule; unknown is not met."""
    if rows.empty:
        return set()
    with duckdb.connect() as con:
        con.register("frame", rows)
        found = con.execute(f"SELECT account_id FROM frame WHERE coalesce(({rule.when}), false)").fetchall()
    return {account for (account,) in found}


def rule_alerts(
    latest: pd.DataFrame,
    previous: pd.DataFrame,
    last_taken: Mapping[str, Mapping[str, datetime]],
    rules: Sequence[AlertRule] = RULES,
) -> list[Alert]:
    """An alert per rule and account that meets it at the latest cutoff and did not at the one before (an
    account new since is alerted too): a signal that persists is told once, not at every build. Each
    carries its evidence and the rule's actions the account is eligible for, in its band's play order."""
    alerts = []
    rows: dict[str, dict[str, Any]] = {
        str(r["account_id"]): {str(k): v for k, v in r.items()} for r in latest.to_dict("records")
    }
    for rule in rules:
        for account in sorted(holding(latest, rule) - holding(previous, rule)):
            row = rows[account]
            at = pd.Timestamp(row["cutoff"]).to_pydatetime()
            evidence = tuple(Evidence(f, _plain(row.get(f)), describe(f, row.get(f))) for f in rule.evidence)
            actions = recommended(row, last_taken.get(account, {}), at, rule.actions)
            summary = f"{rule.title}: {lower_first(evidence[0].text)}."
            alerts.append(
                Alert(alert_id(rule.type, account, at), rule.type, account, at, summary, evidence, actions)
            )
    return alerts


def recommended(
    row: Mapping[str, Any],
    last_taken: Mapping[str, datetime],
    at: datetime,
    among: Sequence[str] = ACTIONS,
    top: int = 3,
) -> tuple[str, ...]:
    """The `top` actions of `among` the account is eligible for at `at` (cool-downs included), in its
    health band's play order: what an alert recommends."""
    verdicts = eligibility(row, last_taken, at)
    ranked = [r.action for r in rules_ranking(row.get("health_band"), verdicts) if r.action in among]
    return tuple(ranked[:top])


def _plain(value: object) -> float | str | None:
    """A feature value as JSON can carry it: NaN and None are unknown."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value if isinstance(value, str) else float(value)  # type: ignore[arg-type]
