"""Next-best actions: an action offered with its predicted effect and costs, the request that asks for
them and the answer that ranks them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from core.catalogue import Channel
from serving.schemas.common import API_VERSION, Fallback, HealthBand, RequestBody, Source

Evidence = Literal["clear", "uncertain"]


class PredictedChange(BaseModel):
    """A predicted change in a 90-day probability if the action is taken now rather than not at all in the
    90 days, with its 95% interval."""

    estimate: float = Field(examples=[-0.021])
    ci_low: float = Field(examples=[-0.04])
    ci_high: float = Field(examples=[0.002])


class ActionOut(BaseModel):
    recommendation_id: str = Field(description="quote it in POST /v1/recommendations/{id}/feedback")
    rank: int
    action: str = Field(examples=["health_check_call"])
    channel: Channel
    rationale: str
    eligibility: list[str]
    expected_value: float | None = Field(
        description="uplift x value - cost, in dollars; null while actions are ranked by the rules"
    )
    churn_change: PredictedChange | None = Field(
        description="the uplift model's change in churn probability; null while ranked by the rules"
    )
    expansion_change: PredictedChange | None = Field(description="likewise for the expansion probability")
    effect_evidence: Evidence | None = Field(
        description="clear: the 95% interval of the effect on churn (or on expansion) lies wholly on the "
        "side that helps; uncertain: neither does, and the data cannot yet tell the action's effect from "
        "none; null while ranked by the rules"
    )
    probability_helps: float | None = Field(
        None,
        description="the posterior probability that the action lowers the account's churn risk "
        "(P(change < 0)), from the data pooled with the other actions or the playbook's prior; null while "
        "ranked by the rules",
    )
    cost_hours: float
    cost_usd: float
    cooldown_days: int
    needs_approval: bool


class Ineligible(BaseModel):
    action: str
    reasons: list[str]


#: the most actions one answer ranks: a playbook may hold more than the built-in twelve
MAX_ACTIONS = 50


class ActionsRequest(RequestBody):
    limit: int = Field(5, ge=1, le=MAX_ACTIONS)
    include_ineligible: bool = False
    channels: list[str] | None = Field(None, description="only actions on these channels")
    exclude: list[str] = Field(default_factory=list, description="actions not to recommend")


class ActionsResponse(BaseModel):
    api_version: str = API_VERSION
    request_id: str
    account_id: str
    source: Source
    fallback_reason: Fallback | None
    ranking: Literal["uplift", "rules"]
    ranking_note: str
    health_band: HealthBand | None
    play: str
    actions: list[ActionOut]
    ineligible: list[Ineligible] | None = None
