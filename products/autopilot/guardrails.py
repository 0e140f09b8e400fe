"""What may stop the autopilot executing a plan row, checked again when it runs: pure, over what the run
read (docs/methods/autopilot.md, "Guardrails").

In order, the first that holds is the reason a row is skipped: the whole autopilot paused; the action
paused (by a person, or automatically for harm); a CSM stopped the autopilot for the account; the account
held out in the store's interventions; an action needing approval pending for the account; the row
already executed; the account no longer active; the action cooling down (its own cool-down, or the
playbook's contact limit); its triggers or gates no longer holding. Then the caps, most valuable rows
first: per action and per UTC day, and over all actions per UTC day, counting the day's earlier runs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from features.playbook import eligibility
from features.playbook_file import Playbook
from serving.autopilot_log import ACTION_PAUSED, EXECUTED, PAUSED, STOPPED

HELD_OUT = "in the holdout"
APPROVAL_PENDING = "approval pending"
INACTIVE = "no longer active"
COOLING = "cooling down"
INELIGIBLE = "not eligible now"
ACTION_CAP = "the action's daily cap"
DAY_CAP = "the daily cap"
#: how far back a plan's approval-needing action counts as pending while it is not taken
APPROVAL_DAYS = 14


@dataclass(frozen=True)
class Candidate:
    """A plan row the autopilot may execute: an autonomous action the plan gave an account this week."""

    account_id: str
    action: str
    arm: str
    expected_value: float | None
    propensity: float | None
    #: the uplift version the plan came from
    model_version: str


@dataclass(frozen=True)
class Guards:
    """What the run read that may stand in a row's way."""

    paused: bool
    paused_actions: frozenset[str]
    stopped: frozenset[str]
    #: accounts in the store's holdout now
    held_out: frozenset[str]
    approval_pending: frozenset[str]
    #: (account, action) pairs executed for this week already
    executed: frozenset[tuple[str, str]]
    #: per (account, action): why eligibility blocks it now (`blocked`), absent when it does not
    blocked: Mapping[tuple[str, str], str]


@dataclass(frozen=True)
class Caps:
    per_action: int
    per_day: int
    #: the day's executions by earlier runs, by action
    done_today: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Selection:
    chosen: list[Candidate]
    #: skipped rows counted by reason
    skipped: dict[str, int]


def barrier(account_id: str, action: str, guards: Guards) -> str | None:
    """The first guardrail an execution of `action` for the account meets, or None; caps aside."""
    checks = (
        (guards.paused, PAUSED),
        (action in guards.paused_actions, ACTION_PAUSED),
        (account_id in guards.stopped, STOPPED),
        (account_id in guards.held_out, HELD_OUT),
        (account_id in guards.approval_pending, APPROVAL_PENDING),
        ((account_id, action) in guards.executed, EXECUTED),
    )
    return next((reason for holds, reason in checks if holds), guards.blocked.get((account_id, action)))


def select(candidates: Sequence[Candidate], guards: Guards, caps: Caps) -> Selection:
    """The rows to execute now, most valuable first within the caps, and the others counted by reason."""
    ordered = sorted(candidates, key=lambda c: (-(c.expected_value or 0.0), c.account_id, c.action))
    per_action = Counter(caps.done_today)
    total = sum(per_action.values())
    chosen: list[Candidate] = []
    skipped: Counter[str] = Counter()
    for candidate in ordered:
        reason = barrier(candidate.account_id, candidate.action, guards)
        if reason is None and per_action[candidate.action] >= caps.per_action:
            reason = ACTION_CAP
        if reason is None and total >= caps.per_day:
            reason = DAY_CAP
        if reason is not None:
            skipped[reason] += 1
            continue
        chosen.append(candidate)
        per_action[candidate.action] += 1
        total += 1
    return Selection(chosen, dict(sorted(skipped.items())))


def blocked(
    row: Mapping[str, Any] | None,
    action: str,
    last_taken: Mapping[str, datetime],
    at: datetime,
    playbook: Playbook,
) -> str | None:
    """Why eligibility stands in the way of `action` for an account with this feature row now: it is no
    longer active (no row), the action is cooling down, or its triggers or gates do not hold; None when
    it is eligible."""
    if row is None:
        return INACTIVE
    now = {v.action: v.eligible for v in eligibility(row, last_taken, at, playbook)}
    if now[action]:
        return None
    without_waits = {v.action: v.eligible for v in eligibility(row, {}, at, playbook)}
    return COOLING if without_waits[action] else INELIGIBLE


def approval_pending(
    plans: pd.DataFrame,
    acted: Iterable[str],
    last_taken: Mapping[str, Mapping[str, datetime]],
    at: datetime,
    playbook: Playbook,
) -> frozenset[str]:
    """Accounts a plan of the last `APPROVAL_DAYS` gave an action needing approval (arms in `acted`) that
    has not been taken since that plan's week started: a CSM may be waiting for it to be approved, and an
    automated email should not cross it. `plans` are the recorded plans (`recorded_plans`)."""
    needs = [a for a, spec in playbook.actions.items() if spec.needs_approval]
    weeks = pd.to_datetime(plans["week"], utc=True)
    recent = plans[
        (weeks > pd.Timestamp(at - timedelta(days=APPROVAL_DAYS)))
        & (weeks <= pd.Timestamp(at))
        & plans["arm"].isin(list(acted))
        & plans["action"].isin(needs)
    ]
    pending = set()
    for account, action, week in zip(recent["account_id"], recent["action"], recent["week"], strict=True):
        taken = last_taken.get(account, {}).get(action)
        if taken is None or taken < pd.Timestamp(week).to_pydatetime():
            pending.add(str(account))
    return frozenset(pending)
