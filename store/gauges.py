"""The monitor's latest figures, kept in the store for the API to export as Prometheus gauges.

`retain monitor` overwrites the store's `gauges` table with one row per figure (a name, its labels and
value); `retain serve` reads the latest version at scrape time. The table lives beside the other Delta
tables, so an API on another machine sees the figures of a monitor run wherever the store is shared, and
its history keeps every run's figures.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa

from core.contract import TS
from store.delta import Store, commit_with_retry

TABLE = "gauges"
SCHEMA = pa.schema(
    [
        pa.field("name", pa.string(), nullable=False),
        #: the labels as canonical JSON, e.g. {"feature": "sessions_7d"}
        pa.field("labels", pa.string(), nullable=False),
        pa.field("value", pa.float64(), nullable=False),
        pa.field("help", pa.string(), nullable=False),
        pa.field("computed_at", TS, nullable=False),
    ]
)


@dataclass(frozen=True)
class Gauge:
    """One figure, as Prometheus names it: `retain_<name>{labels} value`."""

    name: str
    labels: dict[str, str]
    value: float
    help: str


def write_gauges(store: Store, gauges: list[Gauge], computed_at: datetime, note: str) -> int:
    """Replace every figure with these, in one transaction; the table's new version."""
    table = pa.Table.from_pydict(
        {
            "name": [g.name for g in gauges],
            "labels": [json.dumps(g.labels, sort_keys=True) for g in gauges],
            "value": [float(g.value) for g in gauges],
            "help": [g.help for g in gauges],
            "computed_at": pa.array([computed_at] * len(gauges), TS),
        },
        schema=SCHEMA,
    )
    return commit_with_retry(TABLE, lambda: store.write(TABLE, table, "overwrite", note))


def read_gauges(store: Store) -> list[Gauge]:
    """The latest monitor run's figures; none before the first run."""
    rows = store.read(TABLE, SCHEMA).to_pylist()
    return [Gauge(r["name"], json.loads(r["labels"]), r["value"], r["help"]) for r in rows]
