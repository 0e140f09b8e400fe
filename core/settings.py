"""Typed settings, loaded once; a bad value stops start-up with a message naming it.

Precedence: explicit CLI flags, then `RETAIN_*` environment variables, then these defaults. Every path
defaults to a place under the store, so one folder is one self-contained deployment.
"""

from __future__ import annotations

import json
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class HealthWeights(BaseModel):
    """The rules-based health formula's weights (docs/domain.md): configuration, not code."""

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


class RiskBands(BaseModel):
    """Lower bounds of the churn-probability bands a served score falls in: low below `medium`."""

    medium: float = Field(0.10, gt=0, lt=1)
    high: float = Field(0.25, gt=0, lt=1)
    critical: float = Field(0.50, gt=0, lt=1)

    @model_validator(mode="after")
    def _ordered(self) -> RiskBands:
        if not self.medium < self.high < self.critical:
            raise ValueError("risk bands must satisfy medium < high < critical")
        return self


class ValueSettings(BaseModel):
    """What an action is worth in money (next-best actions and the weekly plan): uplift on churn x ARR at
    risk + uplift on expansion x expansion value - cost."""

    csm_hour_usd: float = Field(150.0, ge=0, description="what an hour of CSM time costs")
    expansion_share: float = Field(
        0.2, gt=0, description="an expansion's value as a share of the account's ARR (docs/domain.md: >= 10%)"
    )
    holdout_share: float = Field(
        0.1, ge=0, lt=1, description="weekly plan: share of accounts held out at random, no action"
    )
    explore_share: float = Field(
        0.05,
        ge=0,
        le=1,
        description="weekly plan: share of the accounts it would act on whose action is drawn by Thompson "
        "sampling from the posterior effects (exploration)",
    )


class ServeSettings(BaseModel):
    """The API's knobs (`RETAIN_SERVE__*`)."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    #: a feature row older than this (against `as_of`) is stale: the rules answer instead of the model
    freshness_days: int = Field(14, gt=0)
    #: the serving clock for freshness; unset means now (set it to replay a simulation or a backfill)
    as_of: date | None = None
    #: where every served score and recommendation is logged; default: SQLite under the store
    decision_log_url: str | None = Field(None, description="sqlite:///path or postgresql://user@host/db")
    #: log entries waiting to be written; beyond this a decision is dropped with a warning (feedback has
    #: a quarter more room)
    decision_log_queue: int = Field(10_000, gt=0)
    #: `/readyz` is 503 while the disk of a SQLite decision log has less free than this (MB of 10^6
    #: bytes): a probe row still fits long after a batch of entries no longer does
    log_min_free_mb: float = Field(64.0, ge=0)
    #: `/readyz` is 503 while more entries than this wait to be written (a busy API keeps a few hundred)
    log_max_pending: int = Field(1_000, gt=0)
    #: on shutdown, how long the log may keep writing what waits before it spills the rest to a file
    log_drain_seconds: float = Field(5.0, ge=0)
    #: where that file goes first; then `serving/spill` under the store, then the system's temporary
    #: folder: the first that takes it whole (the store's disk may be the one that is full)
    log_spill_dir: Path | None = None
    #: on SIGTERM, how long requests under way may finish before the server closes them and shuts down
    #: (the log's drain comes after)
    shutdown_seconds: float = Field(10.0, ge=0)
    #: where API keys live: a file under the store, or the decision log's database (several hosts)
    keys: Literal["file", "database"] = "file"
    #: seconds between checks of the champion aliases (0: only `POST /v1/admin/reload`)
    reload_seconds: float = Field(30.0, ge=0)
    #: requests worked on at once; more only take turns on the GIL
    threads: int = Field(4, gt=0, le=64)
    #: uvicorn worker processes, each with its own threads; more than one needs shared cockpit sessions
    workers: int = Field(1, gt=0, le=64)
    max_batch: int = Field(1_000, gt=0)
    max_body_bytes: int = Field(2_000_000, gt=0)
    top_reasons: int = Field(3, gt=0, le=10)
    risk_bands: RiskBands = RiskBands()


class WebhookSettings(BaseModel):
    """Pushing alerts to subscribed webhooks (`RETAIN_WEBHOOKS__*`): the retry schedule and the pace of the
    delivery worker (`retain serve` runs one; `retain webhooks deliver` runs one for a cron)."""

    #: failed tries after which a delivery is dead (listed by `retain webhooks failed`, sent again by
    #: `retry`); with the waits below, a receiver may be down for about nine hours before that
    max_attempts: int = Field(16, gt=0)
    #: the wait after the first failure, doubled after each further one up to `backoff_cap_seconds`
    backoff_seconds: float = Field(30.0, ge=0)
    backoff_cap_seconds: float = Field(3600.0, ge=0)
    #: how long a claimed delivery is its worker's alone: a worker killed mid-delivery has it sent again
    #: once this has passed, so it must outlast a request (`timeout_seconds`)
    lease_seconds: float = Field(60.0, gt=0)
    #: how long a receiver may take to answer one delivery
    timeout_seconds: float = Field(10.0, gt=0)
    #: the worker's pause between looks for due deliveries
    poll_seconds: float = Field(5.0, gt=0)
    #: how long a rotated-out signing secret keeps signing beside the new one (`retain webhooks rotate`)
    rotation_overlap_seconds: float = Field(86_400.0, ge=0, le=30 * 86_400)

    @model_validator(mode="after")
    def _lease_outlasts_a_request(self) -> WebhookSettings:
        if self.lease_seconds <= self.timeout_seconds:
            raise ValueError(
                f"webhooks: lease_seconds ({self.lease_seconds:g}) must exceed timeout_seconds "
                f"({self.timeout_seconds:g}), or a slow request could be sent twice at once"
            )
        return self


class CockpitSettings(BaseModel):
    """The CSM cockpit (`/ui`): how fresh its book is and how much it shows."""

    #: seconds a scored book of accounts is reused before it is scored again from the online store
    book_seconds: float = Field(60.0, ge=0)
    page_size: int = Field(50, gt=0, le=500)
    #: month-end cutoffs in an account's risk trend
    trend_cutoffs: int = Field(6, ge=2, le=24)
    #: days of events and actions in an account's timeline
    timeline_days: int = Field(90, gt=0)
    #: hours a login lasts without use
    session_hours: float = Field(8.0, gt=0)
    #: where logins live: one process's memory, or Redis (`redis_url`), shared by workers and hosts
    sessions: Literal["memory", "redis"] = "memory"
    #: where the scored book lives: each worker's memory (each scores its own), or Redis (`redis_url`),
    #: where one worker scores it for the deployment and the others read it
    book: Literal["memory", "redis"] = "memory"
    #: mark the cockpit's cookies Secure (sent over HTTPS only): set it when the cockpit is served over TLS
    cookie_secure: bool = False


class SparkSettings(BaseModel):
    """The Spark engine's session (`RETAIN_SPARK__*`); under spark-submit, the cluster's master wins."""

    #: where the session runs when nothing launched it: `local[N]` uses N cores of this machine
    master: str = "local[2]"
    #: a Spark Connect server, `sc://HOST:PORT` (Databricks serverless, shared clusters): when set, Retain
    #: runs through it (the DataFrame API only) instead of starting a session of its own
    remote: str | None = None
    app_name: str = "retain"
    #: extra Spark settings, e.g. {"spark.executor.memory": "8g"}
    conf: dict[str, str] = {}
    #: how Spark reads the store's Delta tables: natively (`format("delta")`, the cluster needs Delta
    #: Lake's jars), from the active Parquet files delta-rs lists, or natively when the session has the
    #: Delta extension and from the files otherwise
    delta: Literal["auto", "native", "files"] = "auto"

    @field_validator("remote")
    @classmethod
    def _connect_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("sc://"):
            raise ValueError("spark: remote must be a Spark Connect URL, sc://HOST:PORT")
        return value


class AutopilotSettings(BaseModel):
    """The autopilot (`RETAIN_AUTOPILOT__*`): the plan's autonomous actions executed with no CSM, under caps
    (docs/methods/autopilot.md)."""

    #: executions of any one action per UTC day, across runs
    max_per_action_per_day: int = Field(200, ge=0)
    #: executions of all actions together per UTC day, across runs
    max_per_day: int = Field(500, ge=0)
    #: how sure the holdout comparison must be that an action raises churn before it is paused (one-sided)
    harm_confidence: float = Field(0.95, gt=0.5, lt=1)
    #: the executions judged for harm: those of the weeks that started within this many days
    harm_window_days: int = Field(91, gt=0)
    #: `retain serve` runs the autopilot every `interval_seconds` in its main process when set
    worker: bool = False
    interval_seconds: float = Field(3600.0, gt=0)


#: the SMTP port each way of securing the connection uses when `smtp_port` is unset
SMTP_PORTS = {"starttls": 587, "ssl": 465, "none": 25}


def _http_url(value: str, name: str) -> str:
    if urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).hostname:
        raise ValueError(f"delivery: {name} must be an http(s) URL")
    return value


class DeliverySettings(BaseModel):
    """Where the weekly digest is mailed and posted, and alerts posted (`RETAIN_DELIVERY__*`,
    docs/methods/delivery.md): nothing is sent until a destination is set. The password and the Slack
    URLs (whose path is their token) are secrets: never shown, dumped or logged, nor quoted by an error
    about a bad value."""

    model_config = ConfigDict(hide_input_in_errors=True)

    smtp_host: str | None = None
    #: default by `smtp_security`: 587 for STARTTLS, 465 for SSL, 25 for none
    smtp_port: int | None = Field(None, gt=0, le=65535)
    #: `none` only for a relay on a trusted network: a login then goes in the clear
    smtp_security: Literal["starttls", "ssl", "none"] = "starttls"
    #: log in when set (with `smtp_password`); many internal relays take mail without a login
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout_seconds: float = Field(30.0, gt=0)
    mail_from: str | None = None
    #: the digest's recipients: `a@x.com,b@x.com` (or a JSON list)
    mail_to: Annotated[list[str], NoDecode] = []
    #: a Slack (or Mattermost, Rocket.Chat...) incoming webhook for the digest's headlines
    digest_slack_url: SecretStr | None = None
    #: an incoming webhook for the new alerts of each step that records them
    alerts_slack_url: SecretStr | None = None
    slack_timeout_seconds: float = Field(10.0, gt=0)
    #: where people open the cockpit, e.g. https://retain.example.com: links to `/ui/accounts/ID`; unset,
    #: messages name accounts without a link
    public_url: str | None = None

    @field_validator("mail_to", mode="before")
    @classmethod
    def _listed(cls, value: object) -> object:
        """`a@x.com, b@x.com` as a list, as every other list option takes it; a JSON list as well."""
        if isinstance(value, str):
            text = value.strip()
            return (
                json.loads(text)
                if text.startswith("[")
                else [p.strip() for p in text.split(",") if p.strip()]
            )
        return value

    @model_validator(mode="after")
    def _coherent(self) -> DeliverySettings:
        for address in [*self.mail_to, *([self.mail_from] if self.mail_from else [])]:
            if "@" not in address or any(c.isspace() or c in ",;<>" for c in address):
                raise ValueError(f"delivery: {address!r} is not a mail address like name@example.com")
        if (self.smtp_user is None) != (self.smtp_password is None):
            raise ValueError("delivery: smtp_user and smtp_password go together")
        for name in ("digest_slack_url", "alerts_slack_url"):
            secret = getattr(self, name)
            if secret is not None:
                _http_url(secret.get_secret_value(), name)
        if self.public_url is not None:
            _http_url(self.public_url, "public_url")
        return self


class NuisanceSampling(BaseModel):
    """Case-control sampling of the untreated rows in the propensity fits of uplift training and the causal
    report: every treated row is kept, the untreated are sampled down to `controls_per_treated` per treated
    row (never below `min_controls`) and each sampled one weighs 1 / its sampling rate, so a fit sees the
    whole fold in expectation at a fraction of its rows (`training.causal.doubly_robust.control_sample`)."""

    controls_per_treated: float = Field(
        10.0, ge=0, description="untreated rows kept per treated row; 0 keeps all"
    )
    min_controls: int = Field(20_000, ge=0, description="untreated rows kept at least (all if fewer)")


class Settings(BaseSettings):
    # a bad value's error names the setting, never the value: it may be a password, a token or a URL with one
    model_config = SettingsConfigDict(
        env_prefix="RETAIN_", env_nested_delimiter="__", extra="ignore", hide_input_in_errors=True
    )

    home: Path = Field(Path(".retain"), description="the store: one folder, one deployment")
    horizon_days: int = Field(90, gt=0, description="label horizon after a cutoff")
    health_weights: HealthWeights = HealthWeights()
    health_bands: HealthBands = HealthBands()
    engine: Literal["duckdb", "spark"] = Field(
        "duckdb", description="what runs the feature SQL, batch scoring and side-by-side fits"
    )
    spark: SparkSettings = SparkSettings()
    online_store: Literal["sqlite", "redis"] = "sqlite"
    offline_store: Literal["duckdb", "spark"] = Field(
        "duckdb", description="Feast's offline store for point-in-time training sets"
    )
    redis_url: str = "redis://127.0.0.1:6379/0"
    mlflow_tracking_uri: str | None = Field(
        None, description="MLflow backend, e.g. postgresql://...; default: SQLite under the store"
    )
    seed: int = 7
    events_source: Path | None = Field(
        None,
        description="a column mapping whose `events:` names a Delta or Parquet folder, or a catalog table "
        "(Spark), read in place of the store's events",
    )
    playbook: Path | None = Field(
        None, description="the playbook file; default: playbook.yaml in the store's folder, else the built-in"
    )
    serve: ServeSettings = ServeSettings()
    value: ValueSettings = ValueSettings()
    cockpit: CockpitSettings = CockpitSettings()
    webhooks: WebhookSettings = WebhookSettings()
    autopilot: AutopilotSettings = AutopilotSettings()
    delivery: DeliverySettings = DeliverySettings()
    nuisance_sampling: NuisanceSampling = NuisanceSampling()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
