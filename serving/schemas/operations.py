"""The operations endpoints' bodies: liveness, readiness and a reload of the champions."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from serving.schemas.common import API_VERSION, ModelRef


class ReloadOut(BaseModel):
    api_version: str = API_VERSION
    request_id: str
    models: dict[str, ModelRef | None]
    changed: list[str]
    errors: dict[str, str]


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
