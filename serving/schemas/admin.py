"""The admin endpoints' bodies: webhook subscriptions, their secrets and failed deliveries, and the
autopilot's kill switches.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field, JsonValue

from features.alerts import ALERT_TYPES
from serving.schemas.common import API_VERSION, RequestBody


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
