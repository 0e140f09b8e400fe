"""What the decision log holds, as frozen dataclasses: a served answer with its recommendations, the
feedback on one, an action taken, and the counts the monitor reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import JsonValue


@dataclass(frozen=True)
class Recommendation:
    recommendation_id: str
    action: str
    rank: int
    expected_value: float | None
    #: the probability with which this action was offered at this rank (1: the deterministic ranking)
    propensity: float = 1.0
    #: the posterior probability that the action lowers churn risk (None: ranked by the rules)
    p_helps: float | None = None


@dataclass(frozen=True)
class LoggedDecision:
    """One served answer for one account, as the `decisions` table holds it."""

    request_id: str
    served_at: datetime
    kind: Literal["score", "recommendation"]
    account_id: str
    source: str
    #: model versions by task, e.g. {"churn": "churn/3", "expansion": None}
    models: dict[str, str | None]
    #: the feature row's cutoff the answer used; None when there was no row
    cutoff: datetime | None
    inputs_hash: str
    #: the answer as its JSON
    output: dict[str, JsonValue]
    #: the API key that asked (None for an answer given without HTTP)
    key_id: str | None = None


@dataclass(frozen=True)
class Decision(LoggedDecision):
    """One served answer to log, with the actions it recommended (kept in `recommendations`)."""

    recommendations: tuple[Recommendation, ...] = ()

    def logged_recommendations(self) -> list[LoggedRecommendation]:
        """Its recommendations as the `recommendations` table holds them."""
        return [
            LoggedRecommendation(
                r.recommendation_id,
                self.request_id,
                self.served_at,
                self.account_id,
                r.action,
                r.rank,
                r.expected_value,
                self.source,
                r.propensity,
                r.p_helps,
            )
            for r in self.recommendations
        ]


@dataclass(frozen=True)
class LoggedRecommendation:
    """One recommended action, as the `recommendations` table holds it."""

    recommendation_id: str
    request_id: str
    served_at: datetime
    account_id: str
    action: str
    rank: int
    expected_value: float | None
    source: str
    propensity: float | None = None
    p_helps: float | None = None


FeedbackStatus = Literal["accepted", "rejected", "done"]


@dataclass(frozen=True)
class LoggedFeedback:
    """Feedback on a recommendation, as the `feedback` table holds it."""

    feedback_id: str
    recommendation_id: str
    status: FeedbackStatus
    reason: str | None
    actor: str | None
    at: datetime
    intervention_id: str | None
    #: the API key that gave it; `actor` is what the caller says of itself
    key_id: str | None


@dataclass(frozen=True)
class FeedbackOnAction(LoggedFeedback):
    """Feedback with the account and the action of the recommendation it answers."""

    account_id: str
    action: str


@dataclass(frozen=True)
class AnswerSource:
    """Answers served by one source: the model (code None) or the rules for one fallback code."""

    source: str
    code: str | None
    answers: int


@dataclass(frozen=True)
class FeedbackCount:
    action: str
    status: str
    reason: str | None
    n: int


@dataclass(frozen=True)
class TakenAction:
    """An action taken, as the contract's interventions table holds it."""

    intervention_id: str
    account_id: str
    ts: datetime
    action: str
    owner: str | None
    channel: str | None
    assignment: str
    propensity: float | None


#: what the queue holds: served answers, and feedback that could not be written at once
LogEntry = Decision | LoggedFeedback
