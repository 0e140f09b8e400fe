"""How far each incremental database source has been ingested: its watermark, kept in the store.

A watermark is the last (time, id) an ingest read from one source (a database, a contract table, the
table or query read for it); the next ingest reads only rows past it. It lives beside the tables it
describes, as a small Delta table under the lake, so it travels with them (a store on S3 is resumed from
any machine) and each write is one transaction. It is written only after the ingest's rows were
committed: a crash between the two leaves the old watermark, and the next run reads those rows again,
which the per-id write skips as duplicates. Values are kept as the database gave them (a zoned time, a
date, text, a number), each with its kind, so the next read compares like with like.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable, QueryBuilder
from deltalake.exceptions import TableNotFoundError

from core.contract import TS
from core.errors import RetainError
from store.delta import Store, commit_note, commit_with_retry

#: the folder under the lake (not a contract table: nothing but ingest reads it)
FOLDER = "sql_watermarks"
SCHEMA = pa.schema(
    [
        #: the database, by its URL without the password
        pa.field("source", pa.string(), nullable=False),
        pa.field("table", pa.string(), nullable=False),
        #: the source table's name, or the query's text: a changed query starts over
        pa.field("origin", pa.string(), nullable=False),
        pa.field("ts_kind", pa.string(), nullable=False),
        pa.field("ts_value", pa.string(), nullable=False),
        pa.field("id_kind", pa.string(), nullable=False),
        pa.field("id_value", pa.string(), nullable=False),
        pa.field("ingest_id", pa.string(), nullable=False),
        pa.field("updated_at", TS, nullable=False),
    ]
)
_KEY = ("source", "table", "origin")
#: each kind of value a watermark holds: its Python type (bool is an int: refused first), text, and back
_KINDS: dict[str, tuple[type, Any]] = {
    "datetime": (datetime, datetime.fromisoformat),
    "date": (date, date.fromisoformat),
    "int": (int, int),
    "decimal": (Decimal, Decimal),
    "float": (float, float),
    "uuid": (uuid.UUID, uuid.UUID),
    "str": (str, str),
}


@dataclass(frozen=True)
class Watermark:
    """The last (ts, id) read from a source, in the database's own types."""

    ts: Any
    id: Any

    def __str__(self) -> str:
        ts = self.ts.isoformat() if isinstance(self.ts, date) else str(self.ts)
        return f"{ts} / {self.id}"


def kind_of(value: Any) -> str | None:
    """The kind a watermark keeps `value` as; None when it cannot keep it (a boolean, bytes, a time)."""
    if isinstance(value, bool):
        return None
    return next((kind for kind, (type_, _) in _KINDS.items() if isinstance(value, type_)), None)


def read_watermarks(store: Store, source: str) -> dict[tuple[str, str], Watermark]:
    """The watermarks of `source` by (table, origin); none before its first incremental ingest."""
    found = _table(store)
    if found is None:
        return {}
    rows = pa.table(QueryBuilder().register("w", found).execute("SELECT * FROM w").read_all())
    marks = {}
    for row in rows.cast(SCHEMA).to_pylist():
        if row["source"] == source:
            ts, id_ = _decoded(row["ts_kind"], row["ts_value"]), _decoded(row["id_kind"], row["id_value"])
            marks[(row["table"], row["origin"])] = Watermark(ts, id_)
    return marks


def write_watermarks(
    store: Store, source: str, marks: dict[tuple[str, str], Watermark], ingest_id: str, now: datetime
) -> None:
    """Set these watermarks of `source` (others kept), in one transaction."""
    if not marks:
        return
    rows = pa.Table.from_pylist(
        [
            {
                "source": source,
                "table": table,
                "origin": origin,
                **_encoded("ts", mark.ts),
                **_encoded("id", mark.id),
                "ingest_id": ingest_id,
                "updated_at": now,
            }
            for (table, origin), mark in marks.items()
        ],
        schema=SCHEMA,
    )

    def upsert() -> None:
        target = DeltaTable.create(_uri(store), SCHEMA, mode="ignore")
        target.merge(
            source=rows,
            predicate=" AND ".join(f't."{k}" = s."{k}"' for k in _KEY),
            source_alias="s",
            target_alias="t",
            commit_properties=commit_note(f"ingest {ingest_id}: watermarks of {source}"),
        ).when_matched_update_all().when_not_matched_insert_all().execute()

    try:
        commit_with_retry(FOLDER, upsert)
    except OSError as e:
        raise RetainError(f"cannot write the watermarks to the store {store.location}: {e}") from e


def _uri(store: Store) -> str:
    return f"{store.lake}/{FOLDER}"


def _table(store: Store) -> DeltaTable | None:
    try:
        return DeltaTable(_uri(store))
    except TableNotFoundError:
        return None


def _encoded(prefix: str, value: Any) -> dict[str, str]:
    kind = kind_of(value)
    if kind is None:
        raise RetainError(f"a watermark cannot hold {type(value).__name__} values")
    text = value.isoformat() if isinstance(value, date) else str(value)
    return {f"{prefix}_kind": kind, f"{prefix}_value": text}


def _decoded(kind: str, text: str) -> Any:
    if kind not in _KINDS:
        raise RetainError(f"the store's watermarks hold a value of unknown kind {kind!r}")
    return _KINDS[kind][1](text)
