"""The scheduler's code location: the weekly loop and the monthly retrain as Dagster assets over
`retain.api`, on two schedules (docs/methods/scheduling.md).

`dagster dev -m retain.orchestration` serves it (`pip install 'retain[dagster]' dagster-webserver`). Each
asset is one verb of the API, the verb a `retain` command calls, so a run does what the cron lines of the
method note do. The store stays the one source of truth: assets hand nothing to each other, each reads
what the one above it wrote to the store; their dependencies only order them, so a failed step fails the
run and nothing below it is materialised. A `RetainError` fails its step with its one line, as the CLI
prints it, not a traceback.
"""

import contextlib
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from core.errors import RetainError
from core.settings import Settings
from retain import api
from store.delta import Store

#: the asset groups: what the weekly loop makes, and what the monthly retrain decides
WEEKLY, MONTHLY = "weekly", "monthly"
#: the registered models the retrain trains and puts through the gate, in that order
MODELS: tuple[api.ModelKind, ...] = ("churn", "expansion", "uplift")
#: the weekly assets that take the run's week
WEEK_STEPS = ("scores", "plan", "digest")


class RetainResource(dg.ConfigurableResource):
    """Where both jobs run and how: the store, the settings over the `RETAIN_*` environment, the source
    the weekly loop ingests, the CSMs' hours and the training configs. A deployment names these once, in
    its own `definitions(RetainResource(...))`; `defs` takes the environment's store and no source."""

    store: str | None = Field(
        default=None,
        description="the store's folder, or an s3://, gs:// or az:// URI for its tables "
        "[default: the settings' home: RETAIN_HOME, else ./.retain]",
    )
    settings: dict[str, Any] = Field(
        default_factory=dict,
        description="settings over the RETAIN_* environment, named as in core/settings.py, e.g. "
        "{'engine': 'spark', 'value': {'holdout_share': 0.2}}",
    )
    source: str | None = Field(
        default=None,
        description="what the weekly loop ingests first: a folder of event files, or an adapter's source; "
        "none: nothing is ingested and the loop runs on what the store holds",
    )
    adapter: str | None = Field(default=None, description="the source's adapter, e.g. ravenstack")
    mapping: str | None = Field(default=None, description="the adapter's YAML mapping of the source's names")
    capacity_hours: float = Field(
        default=8.0, gt=0, description="hours each CSM has for planned actions a week"
    )
    train_config: str | None = Field(default=None, description="churn and expansion training config (YAML)")
    uplift_config: str | None = Field(default=None, description="uplift training config (YAML)")
    out: str | None = Field(
        default=None, description="folder for the scores, plan and digest files [default: STORE/reports]"
    )

    def located(self) -> tuple[Store, Settings]:
        """The store and the settings it is run with: the environment's, under `settings`."""
        with failing():
            try:
                settings = Settings(**self.settings)
            except ValueError as e:
                raise RetainError(f"bad configuration: {e}") from e
            return api.open_store(self.store, settings), settings

    def folder(self, store: Store) -> Path:
        """Where the loop's files go: `out`, else the store's `reports` folder (beside its tables)."""
        return Path(self.out) if self.out is not None else store.root / "reports"


class WeekConfig(dg.Config):
    """The week a run of the loop is for: a scheduled run takes the week it starts in; a backfill or a
    replay of a simulated store names its Monday."""

    week: str | None = Field(
        default=None, description="the week's Monday, YYYY-MM-DD [default: this week's, UTC]"
    )

    def monday(self, today: date | None = None) -> date:
        """The Monday named, or this week's; another day is refused, as the digest refuses it."""
        if self.week is None:
            day = today or datetime.now(UTC).date()
            return day - timedelta(days=day.weekday())
        try:
            day = date.fromisoformat(self.week)
        except ValueError as e:
            raise dg.Failure(description=f"week {self.week!r}: not a date (YYYY-MM-DD)") from e
        if day.weekday() != 0:
            monday = day - timedelta(days=day.weekday())
            raise dg.Failure(description=f"week {day}: not a Monday; its week starts on {monday}")
        return day


@contextlib.contextmanager
def failing() -> Iterator[None]:
    """A `RetainError` fails the step with its message for a person (what to fix), as the CLI's exit 2
    does; any other exception keeps its traceback, for it is a bug."""
    try:
        yield
    except RetainError as e:
        raise dg.Failure(description=str(e)) from e


def _known(metadata: Mapping[str, object]) -> dict[str, Any]:
    """The metadata without its unknowns: Dagster shows a value, not a null."""
    return {key: value for key, value in metadata.items() if value is not None}


# -- the weekly loop: ingest -> features -> scores -> plan -> digest -----------------------------------


@dg.asset(group_name=WEEKLY)
def telemetry(context: dg.AssetExecutionContext, retain: RetainResource) -> dg.MaterializeResult:
    """The source's telemetry validated into the store, bad rows quarantined, rows it holds skipped. With
    no source configured nothing is read: the store is fed another way (`retain ingest` at the source's
    own pace; the API's recorded actions are merged in by the feature build) and the loop runs on what it
    holds; the metadata says when its events were last written, so a stale feed shows."""
    store, settings = retain.located()
    if retain.source is None:
        context.log.info("no source configured: nothing ingested; the loop runs on what the store holds")
        written = _events_written(store, settings)
        return dg.MaterializeResult(metadata={"source": "none configured", "events_written_at": written})
    mapping = None if retain.mapping is None else Path(retain.mapping)
    with failing():
        ingested = api.ingest(
            Path(retain.source), store=store, settings=settings, adapter=retain.adapter, mapping=mapping
        )
    return dg.MaterializeResult(
        metadata={
            "source": ingested.source,
            "rows_accepted": sum(ingested.accepted.values()),
            "duplicates_skipped": sum(ingested.duplicates.values()),
            "rows_quarantined": ingested.quarantined.total,
            "accepted_by_table": dict(ingested.accepted),
            "table_versions": dict(ingested.versions),
        }
    )


def _events_written(store: Store, settings: Settings) -> str:
    """When rows last went into the events table (its compactions are no news), or `never`."""
    with failing():
        commits = api.store_history("events", store=store, settings=settings, limit=50)
    written = [c for c in commits if not c.operation.startswith(("OPTIMIZE", "VACUUM", "CREATE"))]
    return written[0].at.isoformat() if written else "never"


@dg.asset(name="features", group_name=WEEKLY, deps=[telemetry])
def feature_table(retain: RetainResource) -> dg.MaterializeResult:
    """The point-in-time feature table rebuilt at every month end as the store's new version (the API's
    recorded actions merged in first) and published to Feast's online store, which serving reads."""
    store, settings = retain.located()
    with failing():
        built = api.build_features(store=store, settings=settings)
    return dg.MaterializeResult(
        metadata=_known(
            {
                "features_version": built.version,
                "rows": built.rows,
                "accounts": built.accounts,
                "cutoffs": len(built.cutoffs),
                "latest_cutoff": built.cutoffs[-1].isoformat() if built.cutoffs else None,
                "mlflow_run": built.mlflow_run,
                "alerts_new": built.alerts.new if built.alerts else None,
            }
        )
    )


# -- the monthly retrain: each model trained, then the promotion gate -----------------------------------


def _model_asset(kind: api.ModelKind) -> dg.AssetsDefinition:
    """The `kind` model trained on the store's features and registered as its new challenger."""

    @dg.asset(
        name=f"{kind}_model",
        group_name=MONTHLY,
        deps=[feature_table],
        description=f"The {kind} model trained on the store's features, logged to MLflow and registered "
        "as the new challenger (and champion if it is the first version)",
    )
    def trained(retain: RetainResource) -> dg.MaterializeResult:
        store, settings = retain.located()
        config = retain.uplift_config if kind == "uplift" else retain.train_config
        with failing():
            model = api.train(
                kind, store=store, settings=settings, config=None if config is None else Path(config)
            )
        headline = model.metrics.get("model")
        return dg.MaterializeResult(
            metadata=_known(
                {
                    "version": model.mlflow.version,
                    "aliases": ", ".join(model.mlflow.aliases),
                    "mlflow_run": model.mlflow.run_id,
                    "test_auc": headline.get("auc") if isinstance(headline, dict) else None,
                    "usable_actions": model.metrics.get("usable_actions"),
                }
            )
        )

    return trained


churn_model, expansion_model, uplift_model = (_model_asset(kind) for kind in MODELS)


@dg.asset(group_name=MONTHLY, deps=[churn_model, expansion_model, uplift_model])
def champions(context: dg.AssetExecutionContext, retain: RetainResource) -> dg.MaterializeResult:
    """Each model's challenger through the promotion gate: champion if it holds up on the latest out-of-time
    window, else the champion stays. A refusal is the gate doing its work, recorded as a result (and a
    warning), not a failure; `retain retrain` exits 1 on it for a cron to notice instead."""
    store, settings = retain.located()
    with failing():
        decided = {name: api.promote(name, store=store, settings=settings) for name in MODELS}
    refused = [name for name, promotion in decided.items() if promotion.decision == "refused"]
    for name in refused:
        context.log.warning(
            f"{name}: the gate kept champion {decided[name].champion}: {decided[name].reason}"
        )
    metadata: dict[str, Any] = {"refused": ", ".join(refused) or "none"}
    for name, promotion in decided.items():
        metadata[f"{name}_decision"] = promotion.decision
        metadata[f"{name}_champion"] = promotion.champion
        metadata[f"{name}_reason"] = promotion.reason
    return dg.MaterializeResult(metadata=metadata)


# -- the weekly loop, continued: what the champions make of the week ------------------------------------


def score_cutoff(store: Store, week: date) -> date:
    """The feature table's latest cutoff at or before the week's first midnight: month ends, as the models
    were trained on (weekly cutoffs in the table would change what they train on); never a later one, so
    a replayed week scores as it would have then."""
    from features.stored import stored_cutoffs  # deferred: Arrow, with the feature layer

    before = [cutoff for cutoff in stored_cutoffs(store) if cutoff <= week]
    if not before:
        raise RetainError(f"the feature table holds no cutoff on or before {week}: build the features first")
    return before[-1]


@dg.asset(group_name=WEEKLY, deps=[feature_table, champions])
def scores(retain: RetainResource, config: WeekConfig) -> dg.MaterializeResult:
    """Every account active at the scoring cutoff (`score_cutoff`) scored by the churn and expansion
    champions with their top reasons, into the store's `scores` table and `scores-CUTOFF.parquet`."""
    week = config.monday()
    store, settings = retain.located()
    with failing():
        cutoff = score_cutoff(store, week)
        scored = api.score(
            cutoff, retain.folder(store) / f"scores-{cutoff}.parquet", store=store, settings=settings
        )
    used = scored.models
    return dg.MaterializeResult(
        metadata=_known(
            {
                "week": week.isoformat(),
                "cutoff": cutoff.isoformat(),
                "rows_scored": scored.rows,
                "scores_version": scored.scores_version,
                "churn_champion": used.churn.version,
                "expansion_champion": used.expansion.version if used.expansion else None,
                "path": dg.MetadataValue.path(str(scored.out)),
                "alerts_new": scored.alerts.new if scored.alerts else None,
            }
        )
    )


@dg.asset(group_name=WEEKLY, deps=[scores, champions])
def plan(retain: RetainResource, config: WeekConfig) -> dg.MaterializeResult:
    """The week's plan: the actions where the uplift champion expects most value within each CSM's hours,
    a random holdout given none; into the store's `plans` table and `plan-WEEK.csv`."""
    week = config.monday()
    store, settings = retain.located()
    with failing():
        planned = api.plan(
            week,
            retain.capacity_hours,
            retain.folder(store) / f"plan-{week}.csv",
            store=store,
            settings=settings,
        )
    return dg.MaterializeResult(
        metadata=_known(
            {
                "week": week.isoformat(),
                "plan_size": planned.planned_actions,
                "accounts": planned.accounts,
                "holdout": planned.holdout,
                "no_action": planned.no_action,
                "expected_value_usd": round(planned.expected_value, 2),
                "needs_approval": planned.needs_approval,
                "by_action": dict(planned.by_action),
                "uplift_champion": planned.model.version,
                "path": dg.MetadataValue.path(str(planned.out)) if planned.out is not None else None,
                "alerts_new": planned.alerts.new if planned.alerts else None,
            }
        )
    )


@dg.asset(group_name=WEEKLY, deps=[plan])
def digest(retain: RetainResource, config: WeekConfig) -> dg.MaterializeResult:
    """The week's digest for leadership and CSM leads, rendered as `digest-WEEK.html` (an email page) and
    `digest-WEEK.json`; sending it is another step's."""
    week = config.monday()
    store, settings = retain.located()
    with failing():
        files = api.digest(week, retain.folder(store), store=store, settings=settings)
    return dg.MaterializeResult(
        metadata={
            "week": week.isoformat(),
            "html": dg.MetadataValue.path(str(files.html)),
            "json": dg.MetadataValue.path(str(files.json)),
            "headlines": dg.MarkdownMetadataValue("\n".join(f"- {line}" for line in files.headlines)),
        }
    )


# -- jobs, schedules and the code location --------------------------------------------------------------


@dg.config_mapping
def _one_week(config: WeekConfig) -> dict[str, Any]:
    """A run of the loop names its week once (`{"week": "2025-08-25"}`), for every step that takes it."""
    return {"ops": {step: {"config": {"week": config.week}} for step in WEEK_STEPS}}


#: in process, one step after another: the steps share one store (a compaction or a training beside
#: another would race for its tables) and import their libraries once
weekly_loop = dg.define_asset_job(
    "weekly_loop",
    selection=dg.AssetSelection.groups(WEEKLY),
    config=_one_week,
    executor_def=dg.in_process_executor,
    description="Ingest, features, scores, the plan and the digest of one week",
)
monthly_retrain = dg.define_asset_job(
    "monthly_retrain",
    selection=dg.AssetSelection.assets(champions).upstream(),
    executor_def=dg.in_process_executor,
    description="Ingest and features, then churn, expansion and uplift trained and put through the gate",
)
#: UTC, the clock of Retain's weeks and cutoffs; stopped until switched on, so trying the UI on a store
#: retrains nothing by surprise
weekly_schedule = dg.ScheduleDefinition(
    name="weekly_loop_schedule", job=weekly_loop, cron_schedule="0 6 * * 1", execution_timezone="UTC"
)
monthly_schedule = dg.ScheduleDefinition(
    name="monthly_retrain_schedule", job=monthly_retrain, cron_schedule="0 3 1 * *", execution_timezone="UTC"
)
ASSETS = [
    telemetry,
    feature_table,
    churn_model,
    expansion_model,
    uplift_model,
    champions,
    scores,
    plan,
    digest,
]


def definitions(retain: RetainResource | None = None) -> dg.Definitions:
    """The code location over `retain` (default: the environment's store and settings, no source): what a
    deployment's own definitions file returns with its resource, e.g. its source and hours."""
    return dg.Definitions(
        assets=ASSETS,
        jobs=[weekly_loop, monthly_retrain],
        schedules=[weekly_schedule, monthly_schedule],
        resources={"retain": retain if retain is not None else RetainResource()},
    )


defs = definitions()
