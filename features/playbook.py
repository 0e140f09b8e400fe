"""Which playbook actions an account is eligible for, why, and the rules ranking of the eligible ones.

Eligibility is the playbook file's rules (`features.playbook_file`; the built-in ones are the observable
version of the signals the simulated CS team targets on, `simulate.interventions.targeted`), read
from one feature row. It gates every ranking: the health band's play orders the eligible actions now, and
an uplift model orders them by expected value, with this ranking as its fallback. Unknown data (None, NaN
or an absent column) never makes an action eligible: a recommendation must rest on evidence a CSM can
check. Plain Python over a mapping, because the weekly planner runs it for every account.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from features.definitions import describe
from features.playbook_file import BUILT_IN, Playbook, Rule, Test

#: The play for an account without a health score.
DEFAULT_BAND = "neutral"


@dataclass(frozen=True)
class Verdict:
    """Whether one action may be offered to one account now, with reasons a CSM can check."""

    action: str
    eligible: bool
    #: eligible: the evidence that triggers it; not eligible: what stands in the way
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class RankedAction:
    """One eligible action in a ranking, with the sentence that justifies its place."""

    action: str
    rank: int
    rationale: str
    eligibility: tuple[str, ...]


def _test(test: Test, row: Mapping[str, Any]) -> tuple[bool | None, Any]:
    """(holds, value); holds is None when the value is unknown."""
    holds = test.condition.verdict(row)
    return (None, None) if holds is None else (holds, row.get(test.feature))


def _say(test: Test, holds: bool | None, value: Any) -> str:
    if holds is None:
        return f"{describe(test.feature, None)} (data missing)"
    template = test.if_true if holds else test.if_false
    return template.format(value=value) if template else describe(test.feature, value)


def _evaluate(rule: Rule, row: Mapping[str, Any]) -> tuple[bool, tuple[str, ...]]:
    """Sentences are built only for what is reported: when no trigger holds, gates are not consulted."""
    triggers = [(t, *_test(t, row)) for t in rule.triggers]
    if not any(holds for _, holds, _ in triggers):
        if all(holds is False for _, holds, _ in triggers):
            return False, (rule.otherwise,)
        missing = (_say(t, None, None) for t, holds, _ in triggers if holds is None)
        return False, tuple(dict.fromkeys(missing))  # two flags can share one "unknown" sentence
    gates = [(t, *_test(t, row)) for t in rule.gates]
    blocked = tuple(_say(*g) for g in gates if g[1] is not True)
    if blocked:
        return False, blocked
    return True, tuple(_say(*t) for t in (*triggers, *gates) if t[1])


def _days(n: int) -> str:
    return "today" if n == 0 else f"{n} day ago" if n == 1 else f"{n} days ago"


def _cooling(cooldown_days: int, taken: datetime | None, as_of: datetime) -> str | None:
    """Why the action is still cooling down, or None; a take after `as_of` does not count (point-in-time)."""
    if taken is None or taken > as_of:
        return None
    elapsed = as_of - taken
    if elapsed >= timedelta(days=cooldown_days):
        return None
    return f"Taken {_days(elapsed.days)}; cool-down is {cooldown_days} days"


def _contacted(playbook: Playbook, last_taken: Mapping[str, datetime], as_of: datetime) -> str | None:
    """Why the contact limit stands in the way of the actions on its channels now, or None."""
    limit = playbook.catalogue.contact_limit
    if limit is None:
        return None
    takes = [
        (when, action)
        for action, when in last_taken.items()
        if action in playbook.actions and playbook.actions[action].channel in limit.channels and when <= as_of
    ]
    if not takes:
        return None
    when, action = max(takes)
    if as_of - when >= timedelta(days=limit.days):
        return None
    channels = ", ".join(c.replace("_", "-") for c in limit.channels)
    return (
        f"Contacted {_days((as_of - when).days)} ({action}); the contact limit is one {channels} action "
        f"every {limit.days} days"
    )


def eligibility(
    row: Mapping[str, Any],
    last_taken: Mapping[str, datetime],
    as_of: datetime,
    playbook: Playbook = BUILT_IN,
) -> list[Verdict]:
    """One verdict per playbook action, in catalogue order, for one feature row at `as_of`."""
    limit = playbook.catalogue.contact_limit
    contacted = _contacted(playbook, last_taken, as_of)
    verdicts: list[Verdict] = []
    for action, spec in playbook.actions.items():
        eligible, reasons = _evaluate(playbook.rules[action], row)
        waiting = _cooling(spec.cooldown_days, last_taken.get(action), as_of)
        if waiting is None and limit is not None and spec.channel in limit.channels:
            waiting = contacted
        if waiting is not None:
            # a triggered action is blocked by the wait alone; otherwise both stand in the way
            reasons = (waiting,) if eligible else (waiting, *reasons)
            eligible = False
        verdicts.append(Verdict(action, eligible, reasons))
    return verdicts


def lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def rules_ranking(
    band: str | None, verdicts: Sequence[Verdict], playbook: Playbook = BUILT_IN
) -> list[RankedAction]:
    """The eligible actions in the order of the band's play (no health score: the neutral play)."""
    if band is not None and band not in playbook.plays:
        raise ValueError(f"unknown health band {band!r}; expected one of {', '.join(playbook.plays)}")
    play = playbook.plays[band or DEFAULT_BAND]
    lead = f"{play.name.capitalize()} ({band.replace('_', ' ') if band else 'no health score'})"
    by_action = {v.action: v for v in verdicts if v.eligible}
    ranked: list[RankedAction] = []
    for action in play.priority:
        verdict = by_action.get(action)
        if verdict is None:
            continue
        because = "; ".join(lower_first(r) for r in verdict.reasons)
        approval = "; needs approval before it is offered" if playbook.actions[action].needs_approval else ""
        ranked.append(RankedAction(action, len(ranked) + 1, f"{lead}: {because}{approval}.", verdict.reasons))
    return ranked
