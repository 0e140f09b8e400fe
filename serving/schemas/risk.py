"""Explained risk: an account's churn and expansion probabilities with their reasons, health, freshness
and what changed; the batch scoring request and answer, and a page of the scored book.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from serving.schemas.actions import ActionOut
from serving.schemas.common import (
    API_VERSION,
    Fallback,
    HealthBand,
    ModelRef,
    RequestBody,
    RiskBand,
    Source,
)

_REASON: dict[str, Any] = {
    "feature": "active_users_30v30",
    "text": "Monthly active users changed -48% versus the previous 30 days",
    "direction": "raises",
    "points": 6.3,
    "value": -0.48,
}


class RiskReason(BaseModel):
    """One driver of the churn score, as a sentence (an item of `reasons`); `points` moves the churn
    probability (percentage points)."""

    feature: str
    text: str
    direction: Literal["raises", "lowers"]
    points: float | None = Field(description="probability points; null for rules-based reasons")
    value: Any = None

    model_config = ConfigDict(json_schema_extra={"examples": [_REASON]})


class Health(BaseModel):
    """The rules-based health formula (docs/domain.md): 0-100 components, weighted."""

    score: float | None
    band: HealthBand | None
    components: dict[str, float | None] = Field(
        examples=[{"usage": 42.0, "engagement": 61.5, "satisfaction": 70.0, "payment": 100.0}]
    )
    weights: dict[str, float] = Field(
        examples=[{"usage": 0.4, "engagement": 0.3, "satisfaction": 0.2, "payment": 0.1}]
    )


class Freshness(BaseModel):
    cutoff: datetime | None = Field(description="when the features were computed (events before it)")
    age_days: float | None
    limit_days: int
    fresh: bool


class Changes(BaseModel):
    """The difference from the previous scoring of this account served with other data or another model."""

    previous_scored_at: datetime
    previous_cutoff: datetime | None
    previous_source: Source
    previous_churn_probability: float | None
    churn_points: float | None = Field(description="change in churn probability, percentage points")
    previous_risk_band: RiskBand | None
    new_reasons: list[str] = Field(description="reasons shown now that were not shown before")
    resolved_reasons: list[str] = Field(description="reasons shown before that no longer are")


class Risk(BaseModel):
    """An account's explained risk: calibrated probabilities from the champions, or the rules, saying so."""

    account_id: str
    source: Source
    fallback_reason: Fallback | None
    churn_probability: float | None = Field(description="calibrated; null when the rules answer")
    expansion_probability: float | None
    horizon_days: int
    risk_band: RiskBand | None
    health: Health
    reasons: list[RiskReason]
    changes: Changes | None = Field(description="null the first time an account is scored")
    models: dict[str, ModelRef | None]
    features: Freshness
    notes: list[str] = Field(default_factory=list)
    next_best_actions: list[ActionOut] = Field(default_factory=list)


class RiskResponse(Risk):
    api_version: str = API_VERSION
    request_id: str

    @classmethod
    def answering(cls, request_id: str, risk: Risk) -> RiskResponse:
        """The risk as `GET /v1/accounts/{id}/risk` sends it; built without validating the risk again
        (it was validated when made)."""
        return cls.model_construct(request_id=request_id, api_version=API_VERSION, **dict(risk))


def _not_true_or_false(value: object) -> object:
    """No feature is a boolean (a flag is 0 or 1), and pydantic would read `true` as 1: the model would
    score a value nobody gave as a number."""
    if isinstance(value, bool):
        raise ValueError("expected a number or text, not true or false (a flag is 0 or 1)")
    return value


#: an inline feature's value: a number, text (a category) or null (unknown)
FeatureValue = Annotated[float | int | str | None, BeforeValidator(_not_true_or_false)]


class ScoreItem(RequestBody):
    account_id: str = Field(min_length=1, max_length=200, examples=["acc-00042"])
    features: dict[str, FeatureValue] | None = Field(
        None,
        description="bring your own feature values (feature name -> value); omitted: read the store",
        examples=[None],
    )


class ScoreRequest(RequestBody):
    accounts: list[ScoreItem] = Field(min_length=1, description="at most `max_batch` (1,000 by default)")
    actions: int = Field(0, ge=0, le=12, description="also rank this many next-best actions per account")

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"accounts": [{"account_id": "acc-00042"}], "actions": 0}]},
    )


class ItemError(BaseModel):
    index: int
    account_id: str
    code: str
    message: str


class ScoreResponse(BaseModel):
    api_version: str = API_VERSION
    request_id: str
    results: list[Risk]
    errors: list[ItemError]


class ScoredAccount(BaseModel):
    """One account of the scored book, as the cockpit's book lists it."""

    account_id: str
    name: str = Field(description="the account's name; its id when the accounts table has none")
    tier: str = Field(examples=["enterprise"])
    segment: str | None
    csm_id: str | None
    source: Source
    fallback_reason: Fallback | None
    churn_probability: float | None = Field(description="calibrated; null when the rules answer")
    risk_band: RiskBand | None
    arr: float | None
    arr_at_risk: float | None = Field(description="churn probability x ARR; null when the rules answer")
    health_score: float | None
    health_band: HealthBand | None
    renewal_date: datetime | None
    days_to_renewal: int | None


class AccountsResponse(BaseModel):
    """A page of the scored book, by ARR at risk (rules answers after), narrowed by the filters."""

    api_version: str = API_VERSION
    request_id: str
    as_of: datetime = Field(description="when the book was scored (the serving clock)")
    cutoff: datetime | None = Field(description="the newest feature build the scores read")
    total: int = Field(description="accounts matching the filters, on every page")
    page: int
    page_size: int
    pages: int = Field(description="pages of `page_size` the matching accounts fill (at least 1)")
    accounts: list[ScoredAccount] = Field(description="empty past the last page")
