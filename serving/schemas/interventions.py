"""Actions taken and feedback on recommendations: what a caller reports, and what it is told back."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from serving.schemas.common import API_VERSION, TIME_RANGE, RequestBody, RequestTime

FeedbackStatus = Literal["accepted", "rejected", "done"]


class InterventionIn(RequestBody):
    account_id: str = Field(min_length=1, max_length=200, examples=["acc-00042"])
    action: str = Field(examples=["health_check_call"])
    owner: str | None = Field(None, max_length=200, description="who took it", examples=["csm-007"])
    channel: str | None = Field(None, max_length=50, examples=["call"])
    ts: RequestTime | None = Field(
        None,
        description=f"when it was taken (timezone required; {TIME_RANGE}); default: the serving clock, now",
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
    at: RequestTime | None = Field(None, description=f"when it was given ({TIME_RANGE}); default: now")


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
