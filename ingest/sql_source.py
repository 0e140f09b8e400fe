"""Contract tables read from a database through SQLAlchemy, in bounded batches, past each watermark.

Any database SQLAlchemy has a dialect for serves (PostgreSQL through psycopg 3 here; Snowflake and
BigQuery through the dialect packages a user installs). Rows are streamed: a server-side cursor
(`stream_results`) hands over `batch_rows` at a time, and each batch becomes one `Frame`, so memory holds
one batch however large the table, and the frames take the file path's validation, quarantine and commit.

Values keep the database's types where Arrow has them (a zoned time stays a zoned time, JSON an object),
and become text where it has not, so validation names the exact value it rejects. An incremental table
(events, by default) is read in (ts, id) order and only past its watermark, the last (ts, id) read before;
a row with no ts or id cannot be placed against it, so it is read (and quarantined) every run until fixed.
Everything about the source (that each table and mapped column exists) is checked before the first row is
read, so a mistake costs a query that returns nothing.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from core.contract import TS
from core.errors import RetainError
from core.urls import described, redact, sqlalchemy_url
from ingest.coerce import as_mask, coerce
from ingest.column_mapping import FIELDS, WATERMARK_FIELDS, ColumnMapping, SourceTable
from ingest.readers import Frame
from ingest.summary import SqlRead, SqlTableRead
from ingest.validate import CLOCK_SKEW
from store.watermarks import Watermark, kind_of

#: rows per fetch, and per frame: a batch of a wide events table as Python rows is about ten MB
BATCH_ROWS = 20_000
CONNECT_TIMEOUT_SECONDS = 5
#: the packages that bring the dialects named in the docs, for a URL whose dialect is not installed
DIALECT_PACKAGES = {"snowflake": "snowflake-sqlalchemy", "bigquery": "sqlalchemy-bigquery"}


def database_name(url: str) -> str:
    """The database as shown to a person and as its watermarks are keyed: its URL as written, without the
    password (which may change without the watermarks starting over)."""
    return redact(url)


@dataclass(frozen=True)
class _Plan:
    """How one contract table is read: its statement, and which source column becomes which column."""

    source: SourceTable
    statement: sa.Select[Any]
    #: per source column in result order: its name in the frame, or None when a mapped column replaces it
    names: tuple[str | None, ...]
    #: result positions of the (ts, id) pair an incremental read advances on
    key: tuple[int, int] | None
    before: Watermark | None


@dataclass
class _Read:
    rows: int = 0
    last: Watermark | None = None


@dataclass
class SqlSource:
    """A database's contract tables, planned (each source checked) when opened, read by `frames()`."""

    url: str = field(repr=False)
    mapping: ColumnMapping
    watermarks: dict[tuple[str, str], Watermark]
    batch_rows: int = BATCH_ROWS
    plans: list[_Plan] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    reads: dict[str, _Read] = field(default_factory=dict)
    _marked: dict[tuple[str, str], Watermark] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.database = database_name(self.url)
        #: the latest ts a watermark may take: validation's bound for things that happened
        self.latest = datetime.now(UTC) + CLOCK_SKEW
        self._engine = _engine(self.url)
        try:
            with self._said("cannot reach the database"), self._engine.connect() as connection:
                for source in self.mapping.tables.values():
                    plan = _plan(connection, source, self.watermarks.get((source.table, source.origin)))
                    if plan is None:
                        self.skipped.append(f"{source.table}: the database has no table {source.name}")
                    else:
                        self.plans.append(plan)
        except BaseException:
            self._engine.dispose()
            raise
        if not self.plans:
            raise RetainError(
                f"{self.database} has none of the tables {', '.join(self.mapping.tables)}; "
                "name where they are in a --mapping file"
            )

    def __enter__(self) -> SqlSource:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._engine.dispose()

    def frames(self) -> Iterator[Frame]:
        """Each planned table's rows past its watermark, `batch_rows` at a time, accounts first."""
        with self._said("cannot read from"), self._engine.connect() as connection:
            for plan in self.plans:
                yield from self._frames(connection, plan)

    def runs(self, rows: int) -> Iterator[Iterator[Frame]]:
        """The frames in runs of about `rows` rows (a run ends with the frame that reaches it), at least one.
        A run's frames are read only once the previous run was taken, so each can be committed, and the
        watermarks moved, before the next batch leaves the database."""
        frames = self.frames()
        first = next(frames, None)
        if first is None:
            yield iter(())
        while first is not None:
            yield _run(first, frames, rows)
            first = next(frames, None)

    def _frames(self, connection: sa.Connection, plan: _Plan) -> Iterator[Frame]:
        read = self.reads[plan.source.table] = _Read()
        streamed = connection.execution_options(stream_results=True, yield_per=self.batch_rows)
        label = f"{self.database}#{_label(plan.source)}"
        for rows in streamed.execute(plan.statement).partitions():
            read.rows += len(rows)
            data = _arrow(rows, plan.names)
            if plan.key is not None:
                read.last = _last_key(rows, data, plan, self.latest) or read.last
            yield Frame(plan.source.table, label, data)

    def advanced(self) -> dict[tuple[str, str], Watermark]:
        """The watermarks that moved since the last call (or the start): the last (ts, id) read of each
        incremental table, by (table, origin)."""
        moved = {}
        for plan in self.plans:
            read, key = self.reads.get(plan.source.table), (plan.source.table, plan.source.origin)
            if read is not None and read.last is not None and read.last != self._marked.get(key, plan.before):
                moved[key] = self._marked[key] = read.last
        return moved

    def report(self) -> SqlRead:
        tables = {}
        for plan in self.plans:
            read = self.reads.get(plan.source.table, _Read())
            after = read.last if read.last is not None else plan.before
            tables[plan.source.table] = SqlTableRead(
                source=_label(plan.source),
                rows_read=read.rows,
                incremental=plan.source.incremental,
                watermark_before=None if plan.before is None else str(plan.before),
                watermark_after=None if after is None else str(after),
            )
        rows = sum(t.rows_read for t in tables.values())
        return SqlRead(database=self.database, rows_read=rows, tables=tables, skipped=list(self.skipped))

    @contextlib.contextmanager
    def _said(self, what: str) -> Iterator[None]:
        """A database's error as one line naming the database (never its password)."""
        try:
            yield
        except sa.exc.SQLAlchemyError as e:
            raise RetainError(f"{what} {self.database}: {described(e, self.url)}") from e


def _run(first: Frame, frames: Iterator[Frame], rows: int) -> Iterator[Frame]:
    yield first
    taken = first.data.num_rows
    while taken < rows and (frame := next(frames, None)) is not None:
        taken += frame.data.num_rows
        yield frame


def _engine(url: str) -> sa.Engine:
    """An engine for `url` (unpooled: one ingest, two connections); a URL SQLAlchemy cannot read, or whose
    dialect is not installed, is a `RetainError` naming what to install."""
    shown = database_name(url)
    try:
        target = sa.make_url(sqlalchemy_url(url))
    except (sa.exc.ArgumentError, ValueError) as e:
        raise RetainError(f"--from-sql {shown} is not a database URL ({e})") from e
    postgres = target.get_backend_name() == "postgresql"
    try:
        # hide_parameters: an error's message would otherwise carry a watermark's values
        return sa.create_engine(
            target,
            poolclass=NullPool,
            hide_parameters=True,
            connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS} if postgres else {},
        )
    except (sa.exc.NoSuchModuleError, ImportError) as e:
        package = DIALECT_PACKAGES.get(target.get_backend_name(), "its SQLAlchemy dialect and driver")
        raise RetainError(f"--from-sql {shown}: no driver for {target.drivername}; install {package}") from e


def _plan(connection: sa.Connection, source: SourceTable, before: Watermark | None) -> _Plan | None:
    """How `source` is read, after checking it exists and has every column the mapping names; None for a
    default table the database lacks."""
    if source.name is not None:
        schema, _, name = source.name.rpartition(".")
        if not sa.inspect(connection).has_table(name, schema=schema or None):
            if not source.named:
                return None
            raise source.refuse(("table",), f"{source.table}: the database has no table {source.name}")
        base: sa.FromClause = sa.table(name, schema=schema or None)
    else:
        # escaped: a colon in the query's text ('10:00', x::text) is SQL, never a bound parameter
        base = sa.text(str(source.query).replace(":", r"\:")).columns().subquery("retain_source")
    everything: sa.Select[Any] = sa.select(sa.literal_column("*")).select_from(base)
    columns = list(connection.execute(everything.limit(0)).keys())
    names = _names(source, columns)
    key, statement = None, everything
    if source.incremental:
        ts, id_ = (source.source_column(f) for f in WATERMARK_FIELDS[source.table])
        for contract_field, column in zip(WATERMARK_FIELDS[source.table], (ts, id_), strict=True):
            if column not in columns:
                raise source.refuse(
                    ("columns",),
                    f"{source.table}: the source has no column {column!r} for {contract_field}, which an "
                    f"incremental read orders by; map it under {source.table}.columns",
                )
        key = (columns.index(ts), columns.index(id_))
        statement = _past(everything, sa.column(ts), sa.column(id_), before)
    return _Plan(source, statement, names, key, before)


def _names(source: SourceTable, columns: list[str]) -> tuple[str | None, ...]:
    """Each result column's name in the frame: a mapped column takes its contract field's name, and a
    column already bearing a mapped field's name gives way to it; a mapped column the source lacks is
    refused at its line."""
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise source.refuse(
            ("query",), f"{source.table}: the source gives column(s) {', '.join(repeated)} more than once"
        )
    for contract_field, column in source.columns.items():
        if column not in columns:
            raise source.refuse(
                ("columns", contract_field),
                f"{source.table}.columns.{contract_field}: the source has no column {column!r}; "
                f"it has {', '.join(columns) or 'none'}",
            )
    renamed = {column: contract_field for contract_field, column in source.columns.items()}
    shadowed = set(source.columns) & set(FIELDS[source.table])
    return tuple(renamed.get(c, None if c in shadowed else c) for c in columns)


def _past(
    everything: sa.Select[Any], ts: sa.ColumnClause[Any], id_: sa.ColumnClause[Any], before: Watermark | None
) -> sa.Select[Any]:
    """Rows after `before` in (ts, id) order, in that order; rows missing either are always read."""
    ordered = everything.order_by(ts, id_)
    if before is None:
        return ordered
    return ordered.where(
        sa.or_(
            ts > before.ts,
            sa.and_(ts == before.ts, id_ > before.id),
            ts.is_(None),
            id_.is_(None),
        )
    )


def _last_key(rows: Sequence[sa.Row[Any]], data: pa.Table, plan: _Plan, latest: datetime) -> Watermark | None:
    """The batch's last (ts, id) that may bound the next read: the largest in the database's own order
    among rows with an id and a readable ts no later than `latest`. A placeholder date ahead (9999-12-31)
    would otherwise hide every row after it; such rows stay past the watermark, read again each run."""
    assert plan.key is not None
    ts_field, id_field = WATERMARK_FIELDS[plan.source.table]
    ts = coerce(data.column(ts_field), TS)
    bounding = (
        ~ts.bad
        & as_mask(pc.less_equal(ts.values, pa.scalar(latest, TS)))
        & as_mask(pc.is_valid(data.column(id_field)))
    )
    found = np.flatnonzero(bounding)
    if not found.size:
        return None
    row = rows[int(found[-1])]
    mark = Watermark(row[plan.key[0]], row[plan.key[1]])
    for value in (mark.ts, mark.id):
        if kind_of(value) is None:
            raise plan.source.refuse(
                ("incremental",),
                f"{plan.source.table}: a watermark cannot be kept on {type(value).__name__} values; set "
                "incremental: false, or give the column as a timestamp or text",
            )
    return mark


def _arrow(rows: Sequence[sa.Row[Any]], names: tuple[str | None, ...]) -> pa.Table:
    """A batch of rows as columns; a column replaced by a mapped one is dropped."""
    values = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    return pa.table({name: _column(column) for name, column in zip(names, values, strict=True) if name})


def _column(values: Sequence[Any]) -> pa.Array:
    """Arrow's own type where it has one for the database's values (times keep their zone); text where not,
    for validation to judge. JSON, decimals and UUIDs are always text, each value on its own: inferred
    from a batch, their shape (a struct's fields, a decimal's scale) would vary with the batch's other
    rows, and so would a quarantined row's raw text, which must be the same every time it is read."""
    try:
        array = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
        return pa.array([_text(v) for v in values], pa.string())
    kind = array.type
    if pa.types.is_nested(kind) or pa.types.is_decimal(kind) or isinstance(kind, pa.ExtensionType):
        return pa.array([_text(v) for v in values], pa.string())
    return array


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value, default=str, sort_keys=True)
    return str(value)


def _label(source: SourceTable) -> str:
    """The source as a frame and the summary name it: its table, or its contract table's query."""
    return source.name if source.name is not None else f"{source.table} query"
