"""The API's request and response bodies (v1): typed, with examples, so `/docs` is a usable manual.

Field names are a contract with playbook engines: add fields, never rename or repurpose one within v1.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, JsonValue

from features.alerts import ALERT_TYPES
from retain.core.catalogue import Channel
from retain.ingest.validate import EARLIEST

API_VERSION = "v1"
Source = Literal["model", "rules"]
RiskBand = Literal["low", "medium", "high", "critical"]
HealthBand = Literal["healthy", "neutral", "at_risk", "critical"]
FallbackCode = Literal[
    "inactive_account",
    "no_champion",
    "no_feature_row",
    "stale_features",
    "out_of_range",
    "model_error",
    "feature_store_unavailable",
]
FeedbackStatus = Literal["accepted", "rejected", "done"]
#: the end of the times a request may give: past it a date is a placeholder (9999-12-31) or a typo
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
_RANGE = f"from {EARLIEST:%Y-%m-%d} to before {LATEST:%Y-%m-%d}"


def _believable(moment: datetime) -> datetime:
    """A time inside [EARLIEST, LATEST), as ingest judges telemetry; a placeholder such as 0001-01-01
    would otherwise overflow when converted to UTC. A naive time is compared as UTC (it is refused later,
    where a zone is required)."""
    if not EARLIEST <= (moment if moment.tzinfo else moment.replace(tzinfo=UTC)) < LATEST:
        raise ValueError(f"give a time {_RANGE}")
    return moment


#: a time a request gives, bounded to a believable range (a 422 naming the field outside it)
RequestTime = Annotated[datetime, AfterValidator(_believable)]

_REASON: dict[str, Any] = {
    "feature": "active_users_30v30",
    "text": "Monthly active users changed -48% versus the previous 30 days",
    "direction": "raises",
    "points": 6.3,
    "value": -0.48,
}


class RequestBody(BaseModel):
    """Requests refuse unknown fields, so a typo is a 422 naming it rather than a silent default."""

    model_config = ConfigDict(extra="forbid")


class ErrorDetail(BaseModel):
    code: str = Field(description="stable machine-readable code", examples=["account_not_found"])
    message: str = Field(examples=["no account 'acc-99999' in the store"])
    fields: list[dict[str, str]] = Field(
        default_factory=list,
        description="for invalid_request: each bad field's location and what is wrong with it",
        examples=[[{"field": "body.accounts[0].account_id", "message": "Field required"}]],
    )


class ErrorBody(BaseModel):
    api_version: str = API_VERSION
    request_id: str
    error: ErrorDetail


class RiskReason(BaseModel):
    """One driver of the churn score, as a sentence (an item of `reasons`); `points` moves the churn
    probability (percentage points)."""

    feature: str
    text: str
    direction: Literal["raises", "lowers"]
    points: float | None = Field(description="probability points; null for rules-based reasons")
    value: Any = None

    model_config = ConfigDict(json_schema_extra={"examples": [_REASON]})


class Fallback(BaseModel):
    code: FallbackCode
    message: str = Field(examples=["features computed at 2025-10-31 are 30 days old (limit 14)"])


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


class ModelRef(BaseModel):
    name: str = Field(examples=["churn"])
    version: str = Field(examples=["3"])

    @property
    def label(self) -> str:
        """`churn/3`: how logs and the decision log name a version."""
        return f"{self.name}/{self.version}"


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


class InterventionIn(RequestBody):
    account_id: str = Field(min_length=1, max_length=200, examples=["acc-00042"])
    action: str = Field(examples=["health_check_call"])
    owner: str | None = Field(None, max_length=200, description="who took it", examples=["csm-007"])
    channel: str | None = Field(None, max_length=50, examples=["call"])
    ts: RequestTime | None = Field(
        None,
        description=f"when it was taken (timezone required; {_RANGE}); default: the serving clock, now",
    )
    intervention_id: str | None = Field(
        None, min_length=1, max_length=200, description="your id; resending the same id records it once"
    )


class InterventionOut(BaseModel):
    api_version: str = API_VERSION
    request_id: str
    intervention_id: str
    account_id: str
    action: str
    ts: datetime
    recorded: bool = Field(description="false when this intervention_id was already recorded")


class FeedbackIn(RequestBody):
    status: FeedbackStatus
    reason: str | None = Field(None, max_length=2_000, description="required when rejected")
    actor: str | None = Field(None, max_length=200, examples=["csm-007"])
    channel: str | None = Field(None, max_length=50)
    at: RequestTime | None = Field(None, description=f"when it was given ({_RANGE}); default: now")


class FeedbackOut(BaseModel):
    api_version: str = API_VERSION
    request_id: str
    feedback_id: str
    recommendation_id: str
    status: FeedbackStatus
    intervention_id: str | None = Field(description="set when `done` recorded the action as an intervention")
    queued: bool = Field(
        False,
        description="true (status 202) when the decision log could not take it at once: it waits in the "
        "service's queue and is written when the log is back",
    )


class ReloadOut(BaseModel):
    api_version: str = API_VERSION
    request_id: str
    models: dict[str, ModelRef | None]
    changed: list[str]
    errors: dict[str, str]


class WebhookIn(RequestBody):
    url: str = Field(
        min_length=1,
        max_length=2_000,
        description="http(s); not a link-local or cloud metadata address, nor a name resolving to one",
        examples=["https://playbooks.example.com/retain"],
    )
    events: list[str] = Field(
        min_length=1,
        max_length=50,
        description=f"alert types ({', '.join(ALERT_TYPES)}), * for every alert type, and action.execute "
        "for the autopilot's orders to execute an action (only when named)",
        examples=[["usage_drop", "risk_band_changed"]],
    )


class WebhookOut(BaseModel):
    """A subscription as listed: never its secret, and its URL without a password."""

    webhook_id: str = Field(examples=["wh_3f9a1c0b7d2e"])
    url: str
    events: list[str]
    created_at: datetime
    pending: int = Field(description="deliveries waiting to be sent, or sent again")
    dead: int = Field(description="deliveries that failed every attempt (GET /v1/webhooks/failed)")


class WebhookResponse(WebhookOut):
    api_version: str = API_VERSION
    request_id: str


class WebhookCreated(WebhookResponse):
    secret: str = Field(
        description="signs every delivery (webhook-signature, by the Standard Webhooks spec): whsec_ and "
        "base64; shown in this answer only, never again"
    )


class WebhookRotateIn(RequestBody):
    overlap_seconds: float | None = Field(
        None,
        ge=0,
        le=30 * 86_400,
        description="how long the secret replaced keeps signing beside the new one; 0 drops it at once "
        "(a leaked secret); default RETAIN_WEBHOOKS__ROTATION_OVERLAP_SECONDS, a day",
    )


class WebhookRotated(WebhookCreated):
    previous_until: datetime | None = Field(
        description="until when the secret replaced still signs; null when it was dropped at once"
    )


class WebhookList(BaseModel):
    api_version: str = API_VERSION
    request_id: str
    webhooks: list[WebhookOut]


class FailedDeliveryOut(BaseModel):
    alert_id: str
    type: str
    account_id: str | None
    webhook_id: str
    url: str
    attempts: int
    last_error: str | None


class FailedDeliveries(BaseModel):
    api_version: str = API_VERSION
    request_id: str
    deliveries: list[FailedDeliveryOut]


class RetryIn(RequestBody):
    """Which dead deliveries to send again: of one alert, of one webhook, of both, or all."""

    alert_id: str | None = Field(None, min_length=1, max_length=200)
    webhook_id: str | None = Field(None, min_length=1, max_length=200)
    all: bool = False


class RetryOut(BaseModel):
    api_version: str = API_VERSION
    request_id: str
    retried: int = Field(description="dead deliveries made pending again, their attempts counted from zero")


class AutopilotSwitchIn(RequestBody):
    """Which switch to set: the whole autopilot's (no action), or one autonomous action's."""

    action: str | None = Field(
        None, min_length=1, max_length=200, description="an autonomous action; none for the whole autopilot"
    )
    reason: str | None = Field(None, max_length=2_000, description="why, for whoever resumes it")


class AutopilotSwitchOut(BaseModel):
    scope: str = Field(description="* for the whole autopilot, else the action", examples=["*"])
    paused: bool
    reason: str | None
    actor: str = Field(description="who set it: `key KEY_ID`, `cli`, or `autopilot` for a pause for harm")
    at: datetime
    evidence: dict[str, JsonValue] | None = Field(description="the figures behind a pause for harm")


class AutopilotSwitchResponse(AutopilotSwitchOut):
    api_version: str = API_VERSION
    request_id: str


class AutopilotSwitches(BaseModel):
    api_version: str = API_VERSION
    request_id: str
    switches: list[AutopilotSwitchOut]


class Liveness(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    """What `/readyz` reports, each dependency tried at the time of asking: ready when a churn champion
    is loaded, the online store answers a read of real rows, the tables read and the decision log takes a
    write."""

    ready: bool
    model: bool = Field(description="a churn champion is loaded")
    uplift: bool = Field(description="an uplift champion is loaded (else the rules rank actions)")
    store: bool = Field(description="the online feature store is loaded and answered a read")
    tables: bool = Field(description="every table the service reads can be read, and was loaded")
    errors: dict[str, str] = Field(description="what could not be loaded or reached, and why")
    decision_log: str = Field(description="the decision log's database, password redacted")
    decision_log_writable: bool = Field(description="a write to the decision log landed")
