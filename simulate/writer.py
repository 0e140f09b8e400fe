"""The output folder: where each table goes, written with pyarrow so the same input gives the same bytes.

    DIR/accounts.parquet, DIR/interventions.parquet
    DIR/events/date=YYYY-MM-DD/part-<chunk>.parquet   (partitioned by arrival date)
    DIR/truth/{probabilities,outcomes,action_effects,holdouts}.parquet   (never for models)
    DIR/truth/{plan_effects,plan_arms}.parquet   (only when the team followed a plan schedule)
    DIR/truth/drift.json   (only when the world drifted)

Single-file tables get one row group per chunk, appended in chunk order. A stepped run (stepped.py)
writes the same files per increment under DIR/increments/ instead, and its truth as above.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from core.contract import ACCOUNT_SCHEMA, EVENT_SCHEMA, INTERVENTION_SCHEMA
from simulate.config import Drift
from simulate.drift import drift_record
from simulate.engine import ChunkResult
from simulate.truth import (
    EFFECT_SCHEMA,
    HOLDOUT_SCHEMA,
    OUTCOME_SCHEMA,
    PLAN_ARM_SCHEMA,
    PLAN_EFFECT_SCHEMA,
    PROBABILITY_SCHEMA,
)

TABLES: dict[str, pa.Schema] = {
    "accounts.parquet": ACCOUNT_SCHEMA,
    "interventions.parquet": INTERVENTION_SCHEMA,
    "truth/probabilities.parquet": PROBABILITY_SCHEMA,
    "truth/outcomes.parquet": OUTCOME_SCHEMA,
    "truth/action_effects.parquet": EFFECT_SCHEMA,
    "truth/holdouts.parquet": HOLDOUT_SCHEMA,
}
#: written beside TABLES when the CS team follows a plan schedule
PLAN_TABLES: dict[str, pa.Schema] = {
    "truth/plan_effects.parquet": PLAN_EFFECT_SCHEMA,
    "truth/plan_arms.parquet": PLAN_ARM_SCHEMA,
}
OUTPUTS = ("accounts.parquet", "interventions.parquet", "events", "truth")
COMPRESSION = "zstd"


def prepare(out: Path) -> None:
    """Clear a previous simulation's outputs (only those) so no stale partition survives."""
    clear(out, OUTPUTS)
    (out / "events").mkdir()
    (out / "truth").mkdir()


def clear(out: Path, outputs: Iterable[str]) -> None:
    """Remove the files or folders `outputs` from `out` (made if missing)."""
    out.mkdir(parents=True, exist_ok=True)
    for name in outputs:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def write_drift(out: Path, drift: Drift | None) -> None:
    """truth/drift.json, when the world drifted."""
    if drift is not None:
        (out / "truth" / "drift.json").write_text(json.dumps(drift_record(drift), indent=2) + "\n")


def write_table(out: Path, name: str, table: pa.Table) -> None:
    """A single-file table (a name of TABLES) written whole, in one row group."""
    pq.write_table(table.cast(TABLES[name]), out / name, compression=COMPRESSION)


def write_partition(out: Path, day: date, chunk: int, table: pa.Table) -> None:
    folder = out / "events" / f"date={day.isoformat()}"
    folder.mkdir(exist_ok=True)
    pq.write_table(table.cast(EVENT_SCHEMA), folder / f"part-{chunk:05d}.parquet", compression=COMPRESSION)


class TableWriters:
    """One ParquetWriter per single-file table named (from TABLES or PLAN_TABLES); `append` adds a row
    group in call order."""

    def __init__(self, out: Path, names: list[str]) -> None:
        schemas = {**TABLES, **PLAN_TABLES}
        self._writers = {
            name: pq.ParquetWriter(out / name, schemas[name], compression=COMPRESSION) for name in names
        }

    def append(self, result: ChunkResult) -> None:
        """The chunk's rows of every table named."""
        for name, writer in self._writers.items():
            writer.write_table(_table(result, name))

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()


def _table(result: ChunkResult, name: str) -> pa.Table:
    """The chunk's rows for the output table `name`."""
    return {
        "accounts.parquet": result.accounts,
        "interventions.parquet": result.interventions,
        "truth/probabilities.parquet": result.probabilities,
        "truth/outcomes.parquet": result.outcomes,
        "truth/action_effects.parquet": result.effects,
        "truth/holdouts.parquet": result.holdouts,
        "truth/plan_effects.parquet": result.plan_effects,
        "truth/plan_arms.parquet": result.plan_arms,
    }[name]
