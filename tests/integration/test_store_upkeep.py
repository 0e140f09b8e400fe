"""The store's upkeep through the CLI: migrating a store of the earlier layout, a table's history, and
compaction merging the API's recorded actions in."""

from __future__ import annotations

import json
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from core.contract import ACCOUNT_SCHEMA, EVENT_SCHEMA, INTERVENTION_SCHEMA, TS
from core.settings import Settings
from features.stored import read_features
from retain.cli import app, main
from simulate import SimConfig, simulate_to
from store.decision_log import DecisionLog, TakenAction
from store.delta import Store

CONTRACT = {"accounts": ACCOUNT_SCHEMA, "events": EVENT_SCHEMA, "interventions": INTERVENTION_SCHEMA}


@pytest.fixture(scope="module")
def simulation(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("upkeep") / "sim"
    simulate_to(SimConfig(accounts=30, days=90, seed=4, start=date(2025, 1, 1)), folder)
    return folder


def _contract_rows(simulation: Path) -> dict[str, pa.Table]:
    """The simulation's tables in the contract's columns, as an earlier store held its live rows."""
    events = ds.dataset(simulation / "events", format="parquet", partitioning="hive").to_table()
    tables = {
        "accounts": pq.read_table(simulation / "accounts.parquet"),
        "events": events,
        "interventions": pq.read_table(simulation / "interventions.parquet"),
    }
    return {name: t.select(CONTRACT[name].names).cast(CONTRACT[name]) for name, t in tables.items()}


def _old_store(root: Path, rows: dict[str, pa.Table]) -> None:
    """A store of the earlier layout: Parquet parts under tables/, named live by manifest.json, and the
    feature table as one file (the events split in two parts, as two ingests left them)."""
    live: dict[str, list[str]] = {}
    for name, table in rows.items():
        half = table.num_rows // 2 if name == "events" else table.num_rows
        parts = [table.slice(0, half), table.slice(half)] if half < table.num_rows else [table]
        for i, part in enumerate(parts):
            path = Path("tables") / name / f"part-{i}.parquet"
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(part, root / path)
            live.setdefault(name, []).append(path.as_posix())
    (root / "manifest.json").write_text(json.dumps({"tables": live}))
    features = pa.table(
        {"account_id": ["a", "b"], "cutoff": pa.array([datetime(2025, 1, 31, tzinfo=UTC)] * 2, TS)}
    )
    (root / "features").mkdir()
    pq.write_table(features, root / "features" / "account_features.parquet")


def _refused(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> str:
    """The one error line the CLI prints for bad input (exit code 2)."""
    monkeypatch.setattr(sys, "argv", ["retain", *args])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    (line,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    return line


def _cli(*args: str) -> Any:
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_an_earlier_store_is_refused_until_migrated_in_place_once(
    simulation: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    old, rows = tmp_path / "old", _contract_rows(simulation)
    _old_store(old, rows)

    refused = _refused(["features", "build", "--store", str(old), "--no-online"], monkeypatch, capsys)
    assert f"retain store migrate --from {old} --store {old}" in refused

    first = _cli("store", "migrate", "--from", str(old), "--store", str(old))
    written = {t["table"]: (t["rows_read"], t["rows_written"]) for t in first["tables"]}
    assert written == {
        "accounts": (rows["accounts"].num_rows,) * 2,
        "interventions": (rows["interventions"].num_rows,) * 2,
        "events": (rows["events"].num_rows,) * 2,
        "quarantine": (0, 0),
        "features": (2, 2),
    }
    store = Store(old)
    for name, table in rows.items():
        stored = store.read(name, CONTRACT[name]).sort_by(CONTRACT[name].names[0])
        assert stored.equals(table.sort_by(CONTRACT[name].names[0])), name
    assert read_features(store).num_rows == 2

    again = _cli("store", "migrate", "--from", str(old), "--store", str(old))
    assert {t["table"]: t["rows_written"] for t in again["tables"] if t["table"] != "features"} == {
        "accounts": 0,
        "interventions": 0,
        "events": 0,
        "quarantine": 0,
    }
    ingested = _cli("ingest", str(simulation), "--store", str(old))
    assert ingested["accepted"] == {"accounts": 0, "events": 0, "interventions": 0}


def test_history_names_each_step_and_compaction_merges_recorded_actions_once(
    simulation: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    store = Store(tmp_path / "store")
    ingested = _cli("ingest", str(simulation), "--store", str(store.root))
    log = DecisionLog.for_store(store, Settings(home=store.root))
    account = store.read("accounts", ACCOUNT_SCHEMA, ["account_id"]).column("account_id")[0].as_py()
    at = datetime(2025, 3, 30, 9, tzinfo=UTC)
    try:
        assert log.record_taken(
            TakenAction("api-1", account, at, "in_app_nudge", "csm-1", "in_app", "targeted", None),
            "req-1",
            None,
        )
    finally:
        log.close()

    compacted = _cli("store", "compact", "--store", str(store.root))
    assert compacted["merged"]["pending"] == compacted["merged"]["added"] == 1
    assert {t["table"] for t in compacted["tables"]} == {"accounts", "events", "interventions"}
    assert _cli("store", "compact", "--store", str(store.root))["merged"]["pending"] == 0

    history = _cli("store", "history", "interventions", "--store", str(store.root))
    notes = [commit["retain"] or "" for commit in history]
    assert [c["version"] for c in history] == sorted((c["version"] for c in history), reverse=True)
    (ingest,) = [c for c in history if (c["retain"] or "").startswith(f"ingest {ingested['ingest_id']}")]
    assert ingest["metrics"]["num_added_rows"] == ingested["accepted"]["interventions"] > 0
    assert any("the API's recorded actions" in note for note in notes)
    stored = store.read("interventions", INTERVENTION_SCHEMA)
    assert stored.filter(pa.compute.equal(stored["intervention_id"], "api-1")).num_rows == 1

    unknown = _refused(["store", "history", "labels", "--store", str(store.root)], monkeypatch, capsys)
    assert "table: expected one of" in unknown
