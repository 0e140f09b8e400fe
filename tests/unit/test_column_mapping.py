"""A database source's column mapping: what it may say, what it defaults to, and every mistake refused at
its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import RetainError
from ingest.column_mapping import default_mapping, read_column_mapping


def _mapping(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mapping.yaml"
    path.write_text(text)
    return path


def test_without_a_file_every_table_is_read_by_its_own_name_and_only_events_incrementally() -> None:
    tables = default_mapping().tables

    assert list(tables) == ["accounts", "interventions", "events"]
    assert {t.name for t in tables.values()} == set(tables) and not any(t.columns for t in tables.values())
    assert [t.incremental for t in tables.values()] == [False, False, True]


def test_a_file_maps_tables_queries_and_columns_and_leaves_the_rest_at_their_defaults(tmp_path: Path) -> None:
    path = _mapping(
        tmp_path,
        "events:\n"
        "  table: analytics.product_events\n"
        "  columns: {event_id: id, ts: occurred_at, properties: payload}\n"
        "accounts:\n"
        "  query: SELECT * FROM crm.accounts WHERE NOT deleted;\n"
        "  columns: {tier: plan_tier}\n"
        "interventions: null\n",
    )

    tables = read_column_mapping(path).tables

    assert list(tables) == ["accounts", "events"]
    events, accounts = tables["events"], tables["accounts"]
    assert events.name == "analytics.product_events" and events.incremental and events.named
    assert events.columns == {"event_id": "id", "ts": "occurred_at", "properties": "payload"}
    assert events.source_column("ts") == "occurred_at" and events.source_column("account_id") == "account_id"
    assert accounts.name is None and accounts.query == "SELECT * FROM crm.accounts WHERE NOT deleted"
    assert accounts.origin == "query: SELECT * FROM crm.accounts WHERE NOT deleted"


def test_a_table_given_only_its_columns_is_read_from_the_table_of_its_name(tmp_path: Path) -> None:
    events = read_column_mapping(_mapping(tmp_path, "events:\n  columns:\n    ts: occurred_at\n")).tables[
        "events"
    ]

    assert events.name == "events" and events.query is None and events.columns == {"ts": "occurred_at"}


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (
            "events:\n  columns:\n    event_id: id\n    timestamp: at\n",
            "line 4: 'timestamp' is not a field of",
        ),
        ("accounts:\n  columns:\n    account_id: id\n    count: n\n", "line 4: 'count' is not a field of"),
        ("event:\n  table: raw\n", "line 1: 'event' is not a contract table"),
        ("events:\n  table: raw\n  where: x > 1\n", "line 3: events: unknown key 'where'"),
        ("events:\n  table: raw\n  query: SELECT 1\n", "line 3: events: give a table or a query, not both"),
        ("accounts:\n  table: crm.accounts\n  incremental: true\n", "line 3: accounts have no event time"),
        ("events:\n  incremental: sometimes\n", "line 2: events.incremental: expected true or false"),
        ("events:\n  table: analytics.\n", "line 2: events.table: 'analytics.' is not a name"),
        (
            "events:\n  columns:\n    ts: at\n    user_id: at\n",
            "line 4: events: source column 'at' is already",
        ),
        ("events:\n  columns:\n    ts: 3\n", "line 3: events.columns.ts: expected a source column's name"),
        ("- events\n", "line 1: a column mapping is a YAML mapping"),
        ("events: [raw]\n", "line 1: events: expected keys table, query, columns, incremental"),
    ],
)
def test_a_mistake_is_refused_at_its_line(tmp_path: Path, text: str, said: str) -> None:
    with pytest.raises(RetainError) as refused:
        read_column_mapping(_mapping(tmp_path, text))

    assert str(refused.value).startswith(f"{tmp_path / 'mapping.yaml'}, ")
    assert said in str(refused.value)
