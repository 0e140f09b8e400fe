"""Where each contract table's rows come from in a database, and which source column holds each field.

A database seldom names things as the contract does, so a YAML file says it once per contract table::

    events:
      table: analytics.product_events     # or  query: SELECT ... (its result is read as the table)
      columns: {event_id: id, ts: occurred_at, event_type: name, properties: payload}

A field the mapping does not name is read from the source column of its own name, so a database that
already uses the contract's names (as the simulator's files do) needs no file at all. A key the contract
does not know (a misspelt field, an unknown table) would otherwise map nothing, silently; it is refused at
its line instead. The same shape (`table:` or `query:`, then `columns:`) serves any feature that reads
contract tables from a database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.contract import ACCOUNT_SCHEMA, EVENT_COLUMNS, INTERVENTION_SCHEMA, PROPERTIES
from core.errors import RetainError
from core.settings import Settings
from ingest.mapping_file import KeyPath, MappingFile, read_mapping_file
from store.adopted_events import AdoptedEvents

#: the contract tables a database can feed, in the order they are read: accounts first, since events and
#: interventions name them
CONTRACT_TABLES = ("accounts", "interventions", "events")
#: the fields a mapping may name per table (events may also give their properties as one JSON column)
FIELDS: dict[str, tuple[str, ...]] = {
    "accounts": tuple(ACCOUNT_SCHEMA.names),
    "events": (*EVENT_COLUMNS, *PROPERTIES, "properties"),
    "interventions": tuple(INTERVENTION_SCHEMA.names),
}
#: the (time, id) a table's watermark advances on; accounts have no event time, so they have none
WATERMARK_FIELDS: dict[str, tuple[str, str]] = {
    "events": ("ts", "event_id"),
    "interventions": ("ts", "intervention_id"),
}
#: read only rows past the watermark unless the mapping says otherwise: events grow without bound, while
#: interventions are few and often logged after the fact, so they are read whole, like accounts
INCREMENTAL = {"accounts": False, "interventions": False, "events": True}
_KEYS = ("table", "query", "columns", "incremental")


@dataclass(frozen=True)
class SourceTable:
    """One contract table's source: a database table (`name`, maybe schema-qualified) or a `query`."""

    table: str
    name: str | None = None
    query: str | None = None
    #: contract field -> source column, for the fields not read from a column of their own name
    columns: dict[str, str] = field(default_factory=dict)
    incremental: bool = False
    #: named in a mapping file: a database without it is an error, not a table skipped
    named: bool = False
    file: MappingFile | None = field(default=None, repr=False, compare=False)

    @property
    def origin(self) -> str:
        """The source as a person and the watermark name it: the table, or the query's text."""
        return self.name if self.name is not None else f"query: {self.query}"

    def source_column(self, contract_field: str) -> str:
        return self.columns.get(contract_field, contract_field)

    def refuse(self, at: KeyPath, message: str) -> RetainError:
        """An error at the mapping file's line for `at` (below this table's key), or plain without a file."""
        if self.file is None:
            return RetainError(message)
        return self.file.refuse((self.table, *at), message)


@dataclass(frozen=True)
class ColumnMapping:
    """Each contract table's source; a table absent here is not read."""

    tables: dict[str, SourceTable]
    path: Path | None = None


def default_mapping() -> ColumnMapping:
    """Every contract table from the database table of its own name, columns by their own names."""
    return ColumnMapping({t: SourceTable(t, name=t, incremental=INCREMENTAL[t]) for t in CONTRACT_TABLES})


def read_column_mapping(path: Path) -> ColumnMapping:
    """A mapping file's sources; a table it leaves out keeps the default, and one set to null is not read."""
    file = read_mapping_file(path)
    content = file.content
    if not isinstance(content, dict):
        raise file.refuse((), "a column mapping is a YAML mapping of accounts, events, interventions")
    tables = dict(default_mapping().tables)
    for table, entry in content.items():
        if table not in CONTRACT_TABLES:
            raise file.refuse(
                (table,), f"{table!r} is not a contract table; expected one of {', '.join(CONTRACT_TABLES)}"
            )
        if entry is None:
            del tables[table]
            continue
        tables[table] = _source_table(file, table, entry)
    return ColumnMapping({t: tables[t] for t in CONTRACT_TABLES if t in tables}, Path(path))


def _source_table(file: MappingFile, table: str, entry: Any) -> SourceTable:
    """One table's entry checked key by key: a table or a query (not both), columns, incremental."""
    if not isinstance(entry, dict):
        raise file.refuse((table,), f"{table}: expected keys {', '.join(_KEYS)} (or null: not read)")
    for key in entry:
        if key not in _KEYS:
            raise file.refuse((table, key), f"{table}: unknown key {key!r}; expected {', '.join(_KEYS)}")
    if "table" in entry and "query" in entry:
        raise file.refuse((table, "query"), f"{table}: give a table or a query, not both")
    name, query = _text(file, table, entry, "table"), _text(file, table, entry, "query")
    if query is not None:
        query = query.strip().rstrip(";").strip()
    incremental = entry.get("incremental", INCREMENTAL[table])
    if not isinstance(incremental, bool):
        raise file.refuse((table, "incremental"), f"{table}.incremental: expected true or false")
    if incremental and table not in WATERMARK_FIELDS:
        raise file.refuse(
            (table, "incremental"), f"{table} have no event time to keep a watermark on; they are read whole"
        )
    return SourceTable(
        table,
        name=name if name is not None or query is not None else table,
        query=query,
        columns=_columns(file, table, entry.get("columns") or {}),
        incremental=incremental,
        named=True,
        file=file,
    )


def _text(file: MappingFile, table: str, entry: dict[str, Any], key: str) -> str | None:
    value = entry.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise file.refuse((table, key), f"{table}.{key}: expected text")
    if key == "table" and any(not part.strip() for part in value.split(".")):
        raise file.refuse((table, key), f"{table}.table: {value!r} is not a name like SCHEMA.TABLE")
    return value.strip()


def _columns(file: MappingFile, table: str, columns: Any) -> dict[str, str]:
    """contract field -> source column; a field the contract's table lacks is refused at its line."""
    if not isinstance(columns, dict):
        raise file.refuse((table, "columns"), f"{table}.columns: expected `contract_field: source_column`")
    fields, taken = FIELDS[table], dict[str, str]()
    for contract_field, source in columns.items():
        at: KeyPath = (table, "columns", contract_field)
        if contract_field not in fields:
            raise file.refuse(
                at,
                f"{contract_field!r} is not a field of the contract's {table}; its fields are "
                f"{', '.join(fields)}",
            )
        if not isinstance(source, str) or not source.strip():
            raise file.refuse(at, f"{table}.columns.{contract_field}: expected a source column's name")
        if source in taken:
            raise file.refuse(at, f"{table}: source column {source!r} is already mapped to {taken[source]}")
        taken[source] = contract_field
    return {contract_field: source for source, contract_field in taken.items()}


def settings_adoption(settings: Settings) -> AdoptedEvents | None:
    """The events table `settings.events_source` adopts, or None: the store's own events."""
    return None if settings.events_source is None else adopted_events(settings.events_source)


def adopted_events(path: Path) -> AdoptedEvents:
    """The events table a mapping file's `events:` entry names, to be read in place of the store's: its
    `table:` a Delta or Parquet folder (or URI), or a catalog table on Spark; its `columns:` as for a
    database. A query, or the properties as one JSON column, cannot be read in place and is refused."""
    events = read_column_mapping(path).tables.get("events")
    if events is None or not events.named:
        raise RetainError(f"{path}: an adopted events table needs an `events:` entry naming its table")
    if events.query is not None or events.name is None:
        raise events.refuse(("query",), "events: an adopted table is read in place; give its `table:`")
    if "properties" in events.columns:
        raise events.refuse(
            ("columns", "properties"), "events: an adopted table maps each property to a column of its own"
        )
    return AdoptedEvents(events.name, dict(events.columns))
