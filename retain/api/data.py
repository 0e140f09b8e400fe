"""Data in: a simulated customer base, telemetry validated into the store, and the point-in-time feature
table built from it."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import RetainError
from core.settings import Settings
from retain.api.common import StoreLike, open_store, settings_or_default
from retain.api.store import compacted

if TYPE_CHECKING:
    from features.run import FeatureBuild
    from ingest.run import IngestSummary
    from simulate import Simulation


def simulate(
    out: Path,
    *,
    accounts: int = 2_000,
    days: int = 365,
    seed: int = 7,
    start: date = date(2025, 1, 1),
    workers: int | None = None,
    holdout_share: float | None = None,
    drift: str | None = None,
) -> Simulation:
    """Generate a customer base with known truth: same seed, same bytes. `holdout_share` defaults to the
    simulator's (`SimConfig.holdout_share`); `drift` (`release@DATE`, `tier_mix@DATE`) changes the world
    from that date, for the monitor to find."""
    from simulate import Drift, SimConfig, simulate_to  # deferred: the simulator's modules

    changed = None if drift is None else Drift.parse(drift)
    config = SimConfig(accounts=accounts, days=days, seed=seed, start=start, drift=changed)
    if holdout_share is not None:
        config = dataclasses.replace(config, holdout_share=holdout_share)
    return simulate_to(config, Path(out), workers)


def ingest(
    source: Path | None = None,
    *,
    store: StoreLike = None,
    settings: Settings | None = None,
    adapter: str | None = None,
    mapping: Path | None = None,
    from_sql: str | None = None,
) -> IngestSummary:
    """Validate `source` (a simulator folder, event files, or an adapter's source, mapped by the adapter's
    `mapping` file where it takes one), or the database at the SQLAlchemy URL `from_sql` (its tables mapped
    by `mapping`, a column mapping; new events only, past the store's watermark), into the store: valid
    rows published, the rest quarantined with a reason. On the Spark engine (`settings.engine`), the
    duplicate check against the store's ids runs on Spark's executors."""
    from features.playbook_file import store_playbook
    from ingest.run import ingest_path, ingest_sql  # deferred: Arrow and the contract's validators

    if source is not None and from_sql is not None:
        raise RetainError("ingest reads a PATH or a database (--from-sql URL), not both")
    if source is None and from_sql is None:
        raise RetainError("ingest needs a PATH to read, or a database: --from-sql URL")
    if from_sql is not None and adapter is not None:
        raise RetainError("--adapter reads files; a database is mapped by --mapping alone")
    settings = settings_or_default(settings)
    opened = open_store(store, settings)
    actions = store_playbook(opened, settings).names  # interventions name the store's own actions
    spark = settings.spark if settings.engine == "spark" else None
    if from_sql is not None:
        return ingest_sql(opened, from_sql, mapping=mapping, actions=actions, spark=spark)
    assert source is not None
    return ingest_path(opened, Path(source), adapter=adapter, actions=actions, mapping=mapping, spark=spark)


def build_features(
    *,
    store: StoreLike = None,
    settings: Settings | None = None,
    cutoffs: Sequence[date] | None = None,
    out: Path | None = None,
    online: bool = True,
    as_of_version: int | None = None,
    full: bool = False,
) -> FeatureBuild:
    """The point-in-time feature table at `cutoffs` (default: month ends), written to the store as a new
    version and recorded as an MLflow run, or, with `out`, exported to that file alone (no version, no
    run); with `online`, the Feast repo applied and materialised for serving. The API's recorded actions
    are merged into the store first. `as_of_version` rebuilds from exactly the table versions (and
    cutoffs) that built that version of the feature table. The build reads only the event days the
    store's roll-ups lack and keeps the last build's rows at cutoffs nothing changed before; `full`
    rebuilds everything."""
    from features.playbook_file import store_playbook
    from features.run import build_and_publish  # deferred: DuckDB, and Feast when online
    from products import alerting  # deferred: the serving layer's outbox
    from registry.tracking import log_feature_build  # deferred: MLflow

    settings = settings_or_default(settings)
    where = compacted(store, settings)
    playbook = store_playbook(where, settings)  # its alert rules, checked before the build
    built = build_and_publish(
        where, settings, cutoffs, out, online=online, as_of_version=as_of_version, full=full
    )
    if built.version is None:
        return built
    run = log_feature_build(where, settings, built)
    alerts = alerting.record(where, settings, alerting.feature_alerts(where, playbook))
    return dataclasses.replace(built, mlflow_run=run, alerts=alerts)
