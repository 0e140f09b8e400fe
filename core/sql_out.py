"""Batches written to a database table, where reverse-ETL tools (Hightouch, Census, a CRM's sync) read them:
`--out 'postgresql://USER@HOST:5432/DB#TABLE'` or `--out 'sqlite:///PATH.db#TABLE'`.

A batch is keyed by one date (a scoring run's cutoff, a plan's week) and replaces that key's rows: the
delete and the inserts are one transaction, so a reader sees the previous batch or the new one, and a crash
leaves the previous one. The table is created with typed columns when missing, and an existing one is
checked for the columns, before the slow part. SQLAlchemy Core gives PostgreSQL and SQLite one code path;
the URL is shown, in results and errors alike, with its password redacted.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from core.errors import RetainError
from core.urls import described, redact, sqlalchemy_url

#: the URLs a table can be written to: PostgreSQL (psycopg 3) and SQLite
SCHEMES = ("postgresql", "postgres", "postgresql+psycopg", "sqlite")
#: a table's name, optionally after its schema (`analytics.churn_scores`): written unquoted, it keeps
#: the same name in every database and in the SQL a reverse-ETL tool is configured with
_NAME = re.compile(r"(?:([A-Za-z_][A-Za-z0-9_]*)\.)?([A-Za-z_][A-Za-z0-9_]*)")
CONNECT_TIMEOUT_SECONDS = 5
#: each Arrow type a batch has, as a column type every database reads back the same
_SQL_TYPES: dict[pa.DataType, type[sa.types.TypeEngine[Any]]] = {
    pa.string(): sa.Text,
    pa.float64(): sa.Double,
    pa.bool_(): sa.Boolean,
    pa.int64(): sa.BigInteger,
    pa.date32(): sa.Date,
}
USAGE = "a file, or a database table as postgresql://USER@HOST:PORT/DB#TABLE or sqlite:///PATH#TABLE"


@dataclass(frozen=True)
class SqlTable:
    """A table in a database: where `--out URL#TABLE` sends a batch."""

    #: as the user wrote it, password included: never shown (`str` redacts it)
    url: str = field(repr=False)
    name: str
    schema: str | None = None

    def __str__(self) -> str:
        qualified = f"{self.schema}.{self.name}" if self.schema else self.name
        return f"{redact(self.url)}#{qualified}"


def destination(out: str | Path) -> Path | SqlTable:
    """Where `--out` sends a batch: a file, or a table when it is a URL (`scheme://...#TABLE`). A URL
    of another scheme, one SQLAlchemy cannot read or one without a table is a `RetainError`."""
    text = str(out)
    scheme, sep, _ = text.partition("://")
    if not sep:
        return Path(text)
    url, _, table = text.partition("#")
    shown = redact(url)
    if scheme.lower() not in SCHEMES:
        raise RetainError(f"--out {shown}: {scheme}:// is not supported; --out takes {USAGE}")
    try:
        parsed = sa.make_url(sqlalchemy_url(url))
    except (sa.exc.ArgumentError, ValueError) as e:
        raise RetainError(f"--out {shown} is not a database URL ({e}); --out takes {USAGE}") from e
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise RetainError(f"--out {shown}: SQLite needs a file, as sqlite:///PATH#TABLE")
    named = _NAME.fullmatch(table)
    if named is None:
        said = "names no table" if not table else f"names the table {table!r}, which is not a plain name"
        raise RetainError(
            f"--out {shown} {said}: end it with #TABLE or #SCHEMA.TABLE (letters, digits, underscores)"
        )
    return SqlTable(url, named.group(2), named.group(1))


class BatchTable:
    """A reachable table of `key`-dated batches with `columns`; `replace` writes one batch."""

    def __init__(self, target: SqlTable, engine: sa.Engine, table: sa.Table, key: str) -> None:
        self.target, self._engine, self._table, self._key = target, engine, table, key

    def replace(self, value: date, batches: Iterable[pa.RecordBatch]) -> int:
        """The rows whose key is `value` replaced by the batches' rows, in one transaction; how many."""
        rows = 0
        with _said(self.target), self._engine.begin() as connection:
            connection.execute(sa.delete(self._table).where(self._table.c[self._key] == value))
            for batch in batches:
                if batch.num_rows:
                    records = [{self._key: value, **row} for row in batch.to_pylist()]
                    connection.execute(sa.insert(self._table), records)
                    rows += batch.num_rows
        return rows


@contextlib.contextmanager
def batch_table(target: SqlTable, key: str, columns: pa.Schema, unique: str) -> Iterator[BatchTable]:
    """The target as a table of batches: a date column `key`, then `columns` typed as Arrow types them,
    and (`key`, `unique`) the primary key. Created when missing; an existing table gains a nullable column
    a newer Retain writes (its earlier rows read it as NULL) and must have every other. The database is
    reached here, so an unreachable one fails before the batch is computed."""
    table = sa.Table(
        target.name,
        sa.MetaData(schema=target.schema),
        sa.Column(key, sa.Date(), primary_key=True),
        *(
            sa.Column(f.name, _SQL_TYPES[f.type](), primary_key=f.name == unique, nullable=f.nullable)
            for f in columns
        ),
    )
    engine = _engine(target)
    try:
        with _said(target), engine.begin() as connection:
            table.create(connection, checkfirst=True)
            present = {c["name"] for c in sa.inspect(connection).get_columns(target.name, target.schema)}
            for column in table.columns:
                if column.name not in present and column.nullable and not column.primary_key:
                    _add_column(connection, table, column)
                    present.add(column.name)
        missing = [c.name for c in table.columns if c.name not in present]
        if missing:
            raise RetainError(f"the table {target} lacks the column(s) {', '.join(missing)}: name another")
        yield BatchTable(target, engine, table, key)
    finally:
        engine.dispose()


def _add_column(connection: sa.Connection, table: sa.Table, column: sa.Column[Any]) -> None:
    """ALTER TABLE ... ADD COLUMN, quoted and typed in the connection's dialect."""
    quote = connection.dialect.identifier_preparer
    kind = column.type.compile(dialect=connection.dialect)
    connection.exec_driver_sql(
        f"ALTER TABLE {quote.format_table(table)} ADD COLUMN {quote.format_column(column)} {kind}"
    )


def _engine(target: SqlTable) -> sa.Engine:
    url = sa.make_url(sqlalchemy_url(target.url))
    postgres = url.get_backend_name() == "postgresql"
    # hide_parameters: a failed insert's message would otherwise carry rows
    return sa.create_engine(
        url,
        hide_parameters=True,
        poolclass=NullPool,
        connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS} if postgres else {},
    )


@contextlib.contextmanager
def _said(target: SqlTable) -> Iterator[None]:
    """A database's error as a `RetainError` naming the table by its redacted URL."""
    try:
        yield
    except sa.exc.SQLAlchemyError as e:
        raise RetainError(f"cannot write to {target}: {described(e, target.url)}") from e
