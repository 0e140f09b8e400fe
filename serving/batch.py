"""Batch scoring: every active account at a cutoff with the champions, or any table with one model.

Feature rows come straight from the store's feature table, filtered to the cutoff. That file is the
offline source Feast serves (`features/feast_repo.py`), built once from the feature definitions, so there
is no second implementation; an exact-cutoff read needs no point-in-time join, which would return the
same rows at several times the cost (FIELD_NOTES: 12 s and 4.3 GB for 1M entity rows with DuckDB).

Rows are scored in chunks (exact TreeSHAP dominates), written as they go to a temporary
file that replaces the output only when complete. The same rows, with their cutoff, then replace that
cutoff's rows of the store's `scores` Delta table in one transaction: a reader sees the previous batch
or the new one, and each version's note names the champions that scored it. The output may also be a
database table (`core/sql_out.py`), whose rows at the cutoff the batch replaces likewise.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from tqdm import tqdm

from core.contract import TS
from core.csv_cells import safe_cells
from core.errors import RetainError
from core.files import atomic_path
from core.settings import Settings
from core.sql_out import BatchTable, SqlTable, batch_table
from features.alerts import Alerted
from features.cutoffs import cutoff_instant
from features.definitions import KEYS
from features.stored import TABLE as FEATURES
from features.stored import feature_dataset, read_features
from registry.models import VersionInfo, load_scoring_model
from registry.pyfunc import score_frame
from registry.tracking import ID_TAG
from serving.assess import RANGE_TOLERANCE
from store.delta import Store, commit_with_retry
from training.artifact import ScoringModel

JOIN_KEY, TIMESTAMP = KEYS
CHUNK = 100_000
TOP_REASONS = 3
CHURN = "churn"
EXPANSION = "expansion"
HEALTH = ("health_score", "health_band")
OUTPUT = pa.schema(
    [
        (JOIN_KEY, pa.string()),
        ("churn_probability", pa.float64()),
        ("expansion_probability", pa.float64()),
        ("health_score", pa.float64()),
        ("health_band", pa.string()),
        ("reasons", pa.string()),
    ]
)
#: the store's table of batches: the output's rows, keyed by account and cutoff like the feature table
SCORES = "scores"
SCORES_SCHEMA = OUTPUT.insert(1, pa.field(TIMESTAMP, TS))
SCORE_STEP = "score"


def scored_cutoffs(store: Store) -> list[datetime]:
    """The cutoffs the store's `scores` table holds a batch for, oldest first."""
    found = store.read(SCORES, SCORES_SCHEMA, columns=[TIMESTAMP])[TIMESTAMP]
    return sorted(pc.unique(found).to_pylist())


def _chunks(rows: pa.Table | pd.DataFrame, size: int, desc: str) -> Iterator[pd.DataFrame]:
    """Consecutive slices as frames, with a progress bar on stderr. An Arrow table becomes pandas one
    slice at a time, so a million rows are never all held as Python objects."""
    with tqdm(total=len(rows), desc=desc, unit="row", unit_scale=True, disable=None) as bar:
        for start in range(0, len(rows), size):
            if isinstance(rows, pa.Table):
                part = rows.slice(start, size).to_pandas()
            else:
                part = rows.iloc[start : start + size]
            yield part
            bar.update(len(part))


def _require_columns(present: Iterable[str], columns: Iterable[str], what: str) -> None:
    have = set(present)
    missing = [c for c in columns if c not in have]
    if missing:
        raise RetainError(f"{what} lacks the model's column(s): {', '.join(missing)}")


def cutoff_rows(store: Store, cutoff: date, columns: list[str], version: int | None = None) -> pa.Table:
    """The feature table's rows at `cutoff` (one per account active then), only `columns`, from its
    `version` (default: the latest)."""
    features = feature_dataset(store, version)
    _require_columns(features.schema.names, columns, "the feature table")
    instant = pa.scalar(cutoff_instant(cutoff), TS)
    table = features.to_table(columns=columns, filter=pc.field(TIMESTAMP) == instant)
    if table.num_rows == 0:
        known = features.to_table(columns=[TIMESTAMP])[TIMESTAMP].unique().to_pylist()
        listed = ", ".join(d.date().isoformat() for d in sorted(known)[-6:])
        raise RetainError(f"no feature rows at cutoff {cutoff.isoformat()}; latest cutoffs: {listed}")
    return table


@dataclass(frozen=True)
class Champions:
    """The versions a store's batch was scored with; expansion may be missing (its column is then null
    and `notes` say why)."""

    churn: VersionInfo
    expansion: VersionInfo | None
    notes: list[str] = field(default_factory=list)


def _champions(store: Store, settings: Settings) -> tuple[ScoringModel, ScoringModel | None, Champions]:
    churn, churn_info = load_scoring_model(store, settings, f"{CHURN}@champion")
    try:
        expansion, expansion_info = load_scoring_model(store, settings, f"{EXPANSION}@champion")
    except RetainError as e:
        return churn, None, Champions(churn_info, None, [f"expansion_probability is null: {e}"])
    return churn, expansion, Champions(churn_info, expansion_info)


def score_accounts(
    churn: ScoringModel, expansion: ScoringModel | None, rows: pd.DataFrame, top: int = TOP_REASONS
) -> pa.Table:
    """One chunk of the batch output: both probabilities, health, and the churn score's top reasons."""
    churn_scores = score_frame(churn, rows, top=top)
    expansion_probability = expansion.predict(rows) if expansion is not None else np.full(len(rows), np.nan)
    columns = {
        JOIN_KEY: rows[JOIN_KEY].to_numpy(dtype=object),
        "churn_probability": churn_scores["probability"].to_numpy(),
        "expansion_probability": pa.array(expansion_probability, pa.float64(), from_pandas=True),
        "health_score": rows["health_score"].to_numpy(dtype="float64"),
        "health_band": rows["health_band"].to_numpy(dtype=object),
        "reasons": churn_scores["reasons"].to_numpy(dtype=object),
    }
    return pa.Table.from_pydict(columns, schema=OUTPUT)


def publish_scores(
    store: Store, cutoff: date, scored: Path, models: Champions, features_version: int | None
) -> int:
    """Replace the `scores` table's rows at `cutoff` with the batch in `scored` (a file of OUTPUT), in one
    transaction whose note names the champions and the feature version; the new table version. The
    first batch creates the table."""
    instant = pa.scalar(cutoff_instant(cutoff), TS)
    note = {
        "step": SCORE_STEP,
        "cutoff": cutoff.isoformat(),
        "models": {v.name: v.version for v in (models.churn, models.expansion) if v is not None},
        "read": {"features": features_version},
    }

    def with_cutoff() -> pa.RecordBatchReader:
        """The file's rows with their cutoff, streamed: a retry after a conflict reads them anew."""
        batches = ds.dataset(scored, schema=OUTPUT, format="parquet").to_batches()
        return pa.RecordBatchReader.from_batches(
            SCORES_SCHEMA,
            (b.add_column(1, TIMESTAMP, pa.repeat(instant, b.num_rows)) for b in batches),
        )

    return commit_with_retry(
        SCORES,
        lambda: store.write(
            SCORES,
            with_cutoff(),
            "overwrite",
            json.dumps(note, sort_keys=True),
            replace_where=f"{TIMESTAMP} = '{instant.as_py().isoformat()}'",
        ),
    )


@dataclass(frozen=True)
class StoreScores:
    """A batch of the store's accounts at a cutoff: how many, where (the file or the database table, and
    the `scores` table's version that holds them), with which champions, how fast."""

    cutoff: date
    rows: int
    #: the Parquet file, or the database table as its URL with the password redacted
    out: Path | str
    scores_version: int
    models: Champions
    seconds: float
    rows_per_second: float
    #: accounts whose risk band changed since the cutoff scored before, recorded for the webhooks (set by
    #: `retain.api`)
    alerts: Alerted | None = None


@dataclass(frozen=True)
class TableScores:
    """A table scored with one registered model."""

    table: Path
    model: VersionInfo
    rows: int
    out: Path
    seconds: float
    rows_per_second: float


@contextlib.contextmanager
def _batch_file(out: Path | SqlTable) -> Iterator[tuple[Path, BatchTable | None]]:
    """Where the batch's Parquet is written: a temporary sibling of the file it replaces once complete,
    or, for a database table, a temporary file and the table, reached (created, or checked) first."""
    if isinstance(out, Path):
        with atomic_path(out) as tmp:
            yield tmp, None
        return
    with batch_table(out, TIMESTAMP, OUTPUT, unique=JOIN_KEY) as table, tempfile.TemporaryDirectory() as tmp:
        yield Path(tmp) / "scores.parquet", table


def score_store(
    store: Store,
    settings: Settings,
    cutoff: date,
    out: Path | SqlTable,
    *,
    chunk: int = CHUNK,
) -> StoreScores:
    """Score every account active at `cutoff` with `churn@champion` and `expansion@champion` into a
    Parquet file (or a database table's rows at `cutoff`) and the store's `scores` table, in this process
    or, with `settings.engine` spark, on Spark's executors. The output is replaced only once the store's
    table committed."""
    started = time.perf_counter()
    churn, expansion, models = _champions(store, settings)
    needed = {*churn.features, *(expansion.features if expansion else []), *HEALTH}
    features_version = store.version(FEATURES)
    columns = [JOIN_KEY, *sorted(needed - {JOIN_KEY})]
    with _batch_file(out) as (tmp, table):
        if settings.engine == "spark":
            # deferred: PySpark is optional, and a local batch never needs it
            from serving.batch_spark import score_cutoff

            scored = score_cutoff(
                store, settings, cutoff, columns, features_version, (churn, expansion), score_accounts, OUTPUT
            )
            pq.write_table(scored, tmp)
            count = scored.num_rows
        else:
            rows = cutoff_rows(store, cutoff, columns, features_version)
            with pq.ParquetWriter(tmp, OUTPUT) as writer:
                for part in _chunks(rows, chunk, f"score {cutoff.isoformat()}"):
                    writer.write_table(score_accounts(churn, expansion, part))
            count = len(rows)
        version = publish_scores(store, cutoff, tmp, models, features_version)
        if table is not None:
            with pq.ParquetFile(tmp) as scored_file:
                table.replace(cutoff, scored_file.iter_batches())
    seconds = time.perf_counter() - started
    return StoreScores(
        cutoff=cutoff,
        rows=count,
        out=out if isinstance(out, Path) else str(out),
        scores_version=version,
        models=models,
        seconds=round(seconds, 3),
        rows_per_second=round(count / seconds, 1),
    )


def score_table(
    store: Store,
    settings: Settings,
    table: Path,
    model_ref: str,
    out: Path,
    *,
    id_column: str | None = None,
    chunk: int = CHUNK,
) -> TableScores:
    """Score a table with one registered model into a CSV of the id, `probability` and `reasons`.

    The id column defaults to the one the model was trained with (a table model's lineage), else
    `account_id`."""
    started = time.perf_counter()
    model, info = load_scoring_model(store, settings, model_ref)
    id_column = id_column or info.tags.get(ID_TAG, JOIN_KEY)
    # Training's reader, so a table is typed the same when scored as when trained on; it lives with the
    # Feast-backed training sets, hence imported only on this path.
    from training.dataset import read_table

    rows = read_table(table)
    if rows.empty:
        raise RetainError(f"{table} has no rows")
    if id_column not in rows.columns:
        raise RetainError(f"{table} has no id column {id_column!r}; name it with --id")
    _require_columns(rows.columns, model.features, str(table))
    with atomic_path(out) as tmp:
        for i, part in enumerate(_chunks(rows, chunk, f"score {table.name}")):
            scored = score_frame(model, part, top=TOP_REASONS)
            scored.insert(0, id_column, part[id_column])
            safe_cells(scored).to_csv(tmp, mode="w" if i == 0 else "a", header=i == 0, index=False)
    seconds = time.perf_counter() - started
    return TableScores(
        table=table,
        model=info,
        rows=len(rows),
        out=out,
        seconds=round(seconds, 3),
        rows_per_second=round(len(rows) / seconds, 1),
    )


@dataclass(frozen=True)
class ModelAnswered:
    """An account the API answers with the churn model, not the rules, at the scores' cutoff."""

    account_id: str
    cutoff: date
    churn_probability: float
    model: VersionInfo


def riskiest_model_answered(store: Store, settings: Settings, scores: Path, cutoff: date) -> ModelAnswered:
    """The riskiest account of a batch scored at `cutoff` that the API answers with the churn champion. The
    API falls back to the rules for an account that has left by the newest published cutoff, so `cutoff`
    must be that one, and for inputs outside the model's training range (`RANGE_TOLERANCE`); the server's
    clock (`--as-of`) must be within the freshness limit of `cutoff`."""
    latest = pc.max(read_features(store, [TIMESTAMP])[TIMESTAMP]).as_py().date()
    if cutoff != latest:
        raise RetainError(
            f"the API serves the newest cutoff, {latest}: score at --cutoff {latest}, not {cutoff}"
        )
    if not scores.exists():
        raise RetainError(f"no scores at {scores}: run `retain score --cutoff {cutoff} --out {scores}` first")
    churn, info = load_scoring_model(store, settings, f"{CHURN}@champion")
    rows = cutoff_rows(store, cutoff, [JOIN_KEY, *churn.features]).to_pandas()
    in_range = rows.loc[[not flags for flags in churn.out_of_range(rows, RANGE_TOLERANCE)], JOIN_KEY]
    scored = pq.read_table(scores, columns=[JOIN_KEY, "churn_probability"]).to_pandas()
    candidates = scored[scored[JOIN_KEY].isin(in_range)].sort_values(
        ["churn_probability", JOIN_KEY], ascending=[False, True]
    )
    if candidates.empty:
        raise RetainError(f"no account in {scores} is answered by {info.name}/{info.version}")
    best = candidates.iloc[0]
    return ModelAnswered(str(best[JOIN_KEY]), cutoff, float(best["churn_probability"]), info)
