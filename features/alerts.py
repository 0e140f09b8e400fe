"""Alerts: what Retain pushes to playbook engines and CRMs when something about an account changes.

An alert is a fact with a stable id (the same account, type and moment always give the same id, so a
rerun of a build or a scoring run records nothing twice and a receiver can drop repeats), the evidence in
words and numbers, and the actions the playbook recommends. Pure data: what computes alerts lives beside
what it reads (feature rows, scores, the registry); the decision log's outbox records and delivers them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import pandas as pd

from features.definitions import describe, known
from features.playbook import eligibility, lower_first, rules_ranking
from features.playbook_file import BUILT_IN, AlertRule, Playbook

#: the payload's version: a receiver can refuse a shape it does not know
ALERT_SCHEMA_VERSION = 1

#: the alert types of the built-in playbook; a deployment's own playbook may add its own
ALERT_TYPES: tuple[str, ...] = BUILT_IN.alert_types


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
    type: str
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


def alert_id(type_: str, subject: str | None, at: datetime) -> str:
    """Stable: the same type, subject (account or model) and moment always give the same id."""
    digest = hashlib.sha256(f"{type_}|{subject or ''}|{at.isoformat()}".encode()).hexdigest()
    return f"al_{digest[:24]}"


def holding(rows: pd.DataFrame, rule: AlertRule) -> set[str]:
    """The accounts among `rows` (one feature row each) whose row meets the rule; unknown is not met."""
    records = cast(list[dict[str, Any]], rows.to_dict("records"))
    return {str(row["account_id"]) for row in records if rule.when.holds(row)}


def rule_alerts(
    latest: pd.DataFrame,
    previous: pd.DataFrame,
    last_taken: Mapping[str, Mapping[str, datetime]],
    playbook: Playbook = BUILT_IN,
) -> list[Alert]:
    """An alert per rule and account that meets it at the latest cutoff and did not at the one before (an
    account new since is alerted too): a signal that persists is told once, not at every build. Each
    carries its evidence and the rule's actions the account is eligible for, in its band's play order."""
    alerts = []
    rows: dict[str, dict[str, Any]] = {
        str(r["account_id"]): {str(k): v for k, v in r.items()} for r in latest.to_dict("records")
    }
    for rule in playbook.alerts:
        for account in sorted(holding(latest, rule) - holding(previous, rule)):
            row = rows[account]
            at = pd.Timestamp(row["cutoff"]).to_pydatetime()
            evidence = tuple(Evidence(f, _plain(row.get(f)), describe(f, row.get(f))) for f in rule.evidence)
            actions = recommended(row, last_taken.get(account, {}), at, playbook, rule.actions)
            summary = f"{rule.title}: {lower_first(evidence[0].text)}."
            alerts.append(
                Alert(alert_id(rule.type, account, at), rule.type, account, at, summary, evidence, actions)
            )
    return alerts


def recommended(
    row: Mapping[str, Any],
    last_taken: Mapping[str, datetime],
    at: datetime,
    playbook: Playbook = BUILT_IN,
    among: Sequence[str] | None = None,
    top: int = 3,
) -> tuple[str, ...]:
    """The `top` actions (of `among`, default all) the account is eligible for at `at` (cool-downs
    included), in its health band's play order: what an alert recommends."""
    verdicts = eligibility(row, last_taken, at, playbook)
    ranked = [
        r.action
        for r in rules_ranking(row.get("health_band"), verdicts, playbook)
        if among is None or r.action in among
    ]
    return tuple(ranked[:top])


def _plain(value: object) -> float | str | None:
    """A feature value as JSON can carry it: unknown (`known`) is None."""
    if not known(value):
        return None
    return value if isinstance(value, str) else float(value)  # type: ignore[arg-type]
