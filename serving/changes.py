"""What changed since an account was last scored from other data or other models: the scores served,
remembered per account, else the previous one looked up in the decision log, and their difference.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import BaseModel

from serving.schemas import Changes, Risk
from store.decision_log import DecisionLog, DecisionLogUnavailable


@dataclass(frozen=True)
class _ServedScore:
    """What 'what changed' compares: a score served for an account, and the data and models behind it."""

    #: (feature cutoff, source, model versions): a score with another key came from other data or models
    key: tuple[object, ...]
    at: datetime
    cutoff: datetime | None
    source: str
    churn_probability: float | None
    risk_band: str | None
    reasons: tuple[str, ...]


class _LoggedReason(BaseModel):
    text: str


class _LoggedRisk(BaseModel):
    """The part of a risk answer in the decision log that 'what changed' compares."""

    churn_probability: float | None = None
    risk_band: str | None = None
    reasons: list[_LoggedReason] = []


class ScoreHistory:
    """Per account: the latest score served and the one 'what changed' compares it with."""

    def __init__(self) -> None:
        self._history: dict[str, tuple[_ServedScore, _ServedScore | None]] = {}
        self._lock = threading.Lock()

    def changes(self, risk: Risk, notes: list[str], log: DecisionLog) -> Changes | None:
        """The difference from the last score served from other data or models: remembered per account,
        else looked up in the decision log (a note says so when it cannot be read)."""
        versions = tuple(m.version if m else None for m in risk.models.values())
        key = (risk.features.cutoff, risk.source, versions)
        now = _ServedScore(
            key=key,
            at=datetime.now(UTC),
            cutoff=risk.features.cutoff,
            source=risk.source,
            churn_probability=risk.churn_probability,
            risk_band=risk.risk_band,
            reasons=tuple(r.text for r in risk.reasons),
        )
        with self._lock:
            known = self._history.get(risk.account_id)
        if known is None:
            try:
                previous = _previous_from_log(log, risk)
            except DecisionLogUnavailable:
                notes.append("changes unknown: the decision log cannot be read")
                previous = None
        elif known[0].key == key:
            previous = known[1]
        else:
            previous = known[0]
        with self._lock:
            self._history[risk.account_id] = (now, previous)
        return None if previous is None else _difference(now, previous)


def _previous_from_log(log: DecisionLog, risk: Risk) -> _ServedScore | None:
    found = log.previous_score(risk.account_id, risk.features.cutoff, model_labels(risk))
    if found is None:
        return None
    output = _LoggedRisk.model_validate(found.output)
    return _ServedScore(
        key=(),
        at=found.served_at,
        cutoff=found.cutoff,
        source=found.source,
        churn_probability=output.churn_probability,
        risk_band=output.risk_band,
        reasons=tuple(r.text for r in output.reasons),
    )


def _difference(now: _ServedScore, previous: _ServedScore) -> Changes:
    points = (
        round((now.churn_probability - previous.churn_probability) * 100, 2)
        if now.churn_probability is not None and previous.churn_probability is not None
        else None
    )
    return Changes(
        previous_scored_at=previous.at,
        previous_cutoff=previous.cutoff,
        previous_source=previous.source,
        previous_churn_probability=previous.churn_probability,
        churn_points=points,
        previous_risk_band=previous.risk_band,
        new_reasons=[r for r in now.reasons if r not in previous.reasons],
        resolved_reasons=[r for r in previous.reasons if r not in now.reasons],
    )


def model_labels(risk: Risk) -> dict[str, str | None]:
    """The versions an answer came from as the decision log keys them (`churn/3`)."""
    return {kind: ref.label if ref else None for kind, ref in risk.models.items()}
