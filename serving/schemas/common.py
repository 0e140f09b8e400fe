"""What every body of the API (v1) shares: the version, the bands and sources an answer names, a time a
request may give, the strict request base, the error body, a fallback and a model version.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from ingest.validate import EARLIEST

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
#: the end of the times a request may give: past it a date is a placeholder (9999-12-31) or a typo
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
TIME_RANGE = f"from {EARLIEST:%Y-%m-%d} to before {LATEST:%Y-%m-%d}"


def _believable(moment: datetime) -> datetime:
    """A time inside [EARLIEST, LATEST), as ingest judges telemetry; a placeholder such as 0001-01-01
    would otherwise overflow when converted to UTC. A naive time is compared as UTC (it is refused later,
    where a zone is required)."""
    if not EARLIEST <= (moment if moment.tzinfo else moment.replace(tzinfo=UTC)) < LATEST:
        raise ValueError(f"give a time {TIME_RANGE}")
    return moment


#: a time a request gives, bounded to a believable range (a 422 naming the field outside it)
RequestTime = Annotated[datetime, AfterValidator(_believable)]


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


class Fallback(BaseModel):
    code: FallbackCode
    message: str = Field(examples=["features computed at 2025-10-31 are 30 days old (limit 14)"])


class ModelRef(BaseModel):
    name: str = Field(examples=["churn"])
    version: str = Field(examples=["3"])

    @property
    def label(self) -> str:
        """`churn/3`: how logs and the decision log name a version."""
        return f"{self.name}/{self.version}"
