"""Typed settings, loaded once; a bad value stops start-up with a message naming it.

Precedence: explicit CLI flags, then `RETAIN_*` environment variables, then these defaults. Every path
defaults to a place under the store, so one folder is one self-contained deployment.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class HealthWeights(BaseModel):
    """The rules-based health formula's weights (DOMAIN.md): configuration, not code."""

    usage: float = Field(0.40, ge=0)
    engagement: float = Field(0.30, ge=0)
    satisfaction: float = Field(0.20, ge=0)
    payment: float = Field(0.10, ge=0)

    @model_validator(mode="after")
    def _sum_to_one(self) -> HealthWeights:
        total = self.usage + self.engagement + self.satisfaction + self.payment
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"health weights must sum to 1, got {total:.4f}")
        return self


class HealthBands(BaseModel):
    """Lower bounds of the bands: healthy >= 80, neutral >= 60, at risk >= 40, else critical."""

    healthy: float = 80.0
    neutral: float = 60.0
    at_risk: float = 40.0

    @model_validator(mode="after")
    def _ordered(self) -> HealthBands:
        if not 0 <= self.at_risk < self.neutral < self.healthy <= 100:
            raise ValueError("health bands must satisfy 0 <= at_risk < neutral < healthy <= 100")
        return self


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RETAIN_", env_nested_delimiter="__", extra="ignore")

    home: Path = Field(Path(".retain"), description="the store: one folder, one deployment")
    horizon_days: int = Field(90, gt=0, description="label horizon after a cutoff")
    health_weights: HealthWeights = HealthWeights()
    health_bands: HealthBands = HealthBands()
    online_store: Literal["sqlite", "redis"] = "sqlite"
    redis_url: str = "redis://127.0.0.1:6379/0"
    mlflow_tracking_uri: str | None = Field(
        None, description="MLflow backend, e.g. postgresql://...; default: SQLite under the store"
    )
    seed: int = 7


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
