"""The store under faults: a real `retain` SIGKILLed mid-write, two ingests racing, and files that cannot be
read. After each, the store opens at a version it had, shows every row once, and a re-run completes."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from core.settings import Settings
from features.run import build_and_publish
from ingest.run import ingest_path
from simulate import SimConfig, simulate_to
from store.delta import TABLES, Store
from tests.support.faults import RETAIN, Killed, kill_mid_write, run_retain, table_files

#: each table's natural id: a row landing twice would repeat it
KEYS = {
    "accounts": "account_id",
    "interventions": "intervention_id",
    "events": "event_id",
    "quarantine": "quarantine_id",
}


@dataclass(frozen=True)
class World:
    """A simulation, and its telemetry cut into two ingests by account: `part_a` (accounts, interventions
    and half the accounts' events) then `part_b` (the other half's events). Each ingest writes one file
    into every event day's partition, so after both there is work for a compaction."""

    sim: Path
    part_a: Path
    part_b: Path
    #: every id the simulation holds, per table
    ids: dict[str, set[str]]


def _sim_ids(sim: Path) -> dict[str, set[str]]:
    return {
        "accounts": set(pq.read_table(sim / "accounts.parquet", columns=["account_id"])[0].to_pylist()),
        "interventions": set(
            pq.read_table(sim / "interventions.parquet", columns=["intervention_id"])[0].to_pylist()
        ),
        "events": set(ds.dataset(sim / "events").to_table(columns=["event_id"])[0].to_pylist()),
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("faults")
    sim = root / "sim"
    simulate_to(SimConfig(accounts=300, days=365, seed=5, start=date(2025, 1, 1)), sim)
    accounts = sorted(pq.read_table(sim / "accounts.parquet", columns=["account_id"])[0].to_pylist())
    first_half = pa.array(accounts[: len(accounts) // 2])
    events = ds.dataset(sim / "events").to_table()
    in_a = pc.is_in(events["account_id"], first_half)
    (root / "a").mkdir()
    (root / "b").mkdir()
    shutil.copy(sim / "accounts.parquet", root / "a")
    shutil.copy(sim / "interventions.parquet", root / "a")
    pq.write_table(events.filter(in_a), root / "a" / "events.parquet")
    pq.write_table(events.filter(pc.invert(in_a)), root / "b" / "events.parquet")
    return World(sim, root / "a", root / "b", _sim_ids(sim))


def _folder(store: Store, table: str) -> Path:
    return Path(store.uri(table))


def _rows(store: Store) -> dict[str, int]:
    return {t: 0 if (found := store.dataset(t)) is None else found.count_rows() for t in TABLES}


def _ids_once(store: Store, table: str) -> set[str]:
    """The table's ids, after checking none is there twice."""
    found = store.dataset(table)
    ids = [] if found is None else found.to_table(columns=[KEYS[table]])[0].to_pylist()
    assert len(ids) == len(set(ids)), f"{table}: {len(ids) - len(set(ids))} ids are there more than once"
    return set(ids)


def _live_files(store: Store, table: str) -> set[Path]:
    found = store.delta(table)
    return set() if found is None else {Path(u.removeprefix("file://")) for u in found.file_uris()}


def _assert_killed_mid_write(store: Store, table: str, killed: Killed, version: int | None) -> None:
    """The kill came after the command wrote data files to `table` and before it committed them."""
    assert killed.returncode == -signal.SIGKILL, f"the command ended before the kill: {killed.stderr}"
    assert killed.orphans, "killed before the command wrote a data file: not mid-write"
    assert not killed.commits, f"killed too late: {table} had its commit {sorted(killed.commits)}"
    assert store.version(table) == version, f"{table} moved on although its commit never landed"
    assert not killed.orphans & _live_files(store, table), "a file of the killed write is live"


def _assert_nothing_half_visible(
    store: Store, versions: dict[str, int | None], rows: dict[str, int], may_land: set[str], note: str
) -> None:
    """Every table opens at the version it had, but those in `may_land` (committed before the kill, each
    commit whole and noted by the killed step), and every table shows the rows it showed."""
    now = store.versions()
    landed = {t for t in TABLES if now[t] != versions[t]}
    assert landed <= may_land, f"tables moved on without a commit of theirs: {landed - may_land}"
    for table in landed:
        newer = [c for c in store.history(table) if c.version > (versions[table] or -1)]
        assert all((c.retain or "").startswith(note) for c in newer), newer
    assert _rows(store) == rows, "a reader sees part of the killed write"


def test_an_ingest_killed_mid_merge_leaves_every_table_as_it_was(world: World, tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    ingest_path(store, world.part_a)
    versions, rows = store.versions(), _rows(store)

    killed = kill_mid_write(["ingest", str(world.sim), "--store", str(store.root)], _folder(store, "events"))

    _assert_killed_mid_write(store, "events", killed, versions["events"])
    # publish merges accounts and interventions before events; this input changes neither
    _assert_nothing_half_visible(store, versions, rows, {"accounts", "interventions"}, "ingest ")
    again = run_retain("ingest", str(world.sim), "--store", str(store.root), "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["accepted"]["events"] == len(world.ids["events"]) - rows["events"]
    for table, ids in world.ids.items():
        assert _ids_once(store, table) == ids, table
    assert _rows(store)["quarantine"] == 0


def test_a_compaction_killed_mid_rewrite_leaves_the_tables_as_they_were(world: World, tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    ingest_path(store, world.part_a)
    ingest_path(store, world.part_b)
    versions, rows = store.versions(), _rows(store)
    files = len(_live_files(store, "events"))

    killed = kill_mid_write(["store", "compact", "--store", str(store.root)], _folder(store, "events"))

    _assert_killed_mid_write(store, "events", killed, versions["events"])
    # accounts are compacted before events (one file: nothing to do, but a commit would be whole)
    _assert_nothing_half_visible(store, versions, rows, {"accounts"}, "compact:")
    again = run_retain("store", "compact", "--store", str(store.root))
    assert again.returncode == 0, again.stderr
    assert [c.operation for c in store.history("events") if c.version > (versions["events"] or 0)] == [
        "OPTIMIZE"
    ]
    assert len(_live_files(store, "events")) < files, "the re-run compacted the events"
    assert _rows(store) == rows
    assert _ids_once(store, "events") == world.ids["events"]


def test_a_feature_build_killed_mid_write_keeps_the_previous_feature_table(
    world: World, tmp_path: Path
) -> None:
    store = Store(tmp_path / "store")
    ingest_path(store, world.sim)
    build_and_publish(store, Settings(home=store.root), None, None, online=False)
    versions, rows = store.versions(), _rows(store)
    built = versions["features"]
    assert built is not None

    killed = kill_mid_write(
        ["features", "build", "--no-online", "--store", str(store.root)], _folder(store, "features")
    )

    _assert_killed_mid_write(store, "features", killed, built)
    # the build compacts every table first (nothing to do here: one file per partition)
    _assert_nothing_half_visible(store, versions, rows, set(TABLES) - {"features"}, "compact:")
    again = run_retain("features", "build", "--no-online", "--store", str(store.root), "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["version"] == store.version("features") == built + 1
    assert _rows(store)["features"] == rows["features"], "the same store and cutoffs, the same rows"


def _overlapping(world: World, root: Path, days: slice, interventions: slice) -> Path:
    """A folder with all accounts, some interventions, some event days and the same CSV of 1 good row and
    2 bad ones."""
    root.mkdir()
    shutil.copy(world.sim / "accounts.parquet", root)
    table = pq.read_table(world.sim / "interventions.parquet")
    pq.write_table(table.slice(interventions.start, interventions.stop), root / "interventions.parquet")
    for day in sorted((world.sim / "events").iterdir())[days]:
        shutil.copytree(day, root / "events" / day.name)
    account = min(world.ids["accounts"])
    (root / "events" / "late.csv").write_text(
        "event_id,account_id,user_id,ts,event_type,properties\n"
        f'late-1,{account},,2025-06-01T10:00:00Z,feature.used,"{{""feature"": ""reports"", ""count"": 3}}"\n'
        f"late-2,{account},,yesterday,feature.used,\n"
        "late-3,ghost,,2025-06-01,coffee.brewed,\n"
    )
    return root


def test_two_ingests_racing_over_overlapping_files_land_each_row_once(world: World, tmp_path: Path) -> None:
    n = len(world.ids["interventions"])
    first = _overlapping(world, tmp_path / "first", slice(0, 240), slice(0, 2 * n // 3))
    second = _overlapping(world, tmp_path / "second", slice(120, None), slice(n // 3, n))
    store = Store(tmp_path / "store")
    command = [RETAIN, "ingest", "--json", "--store", str(store.root)]
    racers = [
        subprocess.Popen([*command, str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for path in (first, second)
    ]
    while all(r.poll() is None for r in racers) and not table_files(_folder(store, "events")).commits:
        time.sleep(0.005)
    both_running = all(r.poll() is None for r in racers)
    done = [r.communicate(timeout=300) for r in racers]

    assert [r.returncode for r in racers] == [0, 0], [err for _, err in done]
    assert both_running, "one ingest ended before the other wrote: they never raced"
    assert _ids_once(store, "accounts") == world.ids["accounts"]
    assert _ids_once(store, "interventions") == world.ids["interventions"]
    assert _ids_once(store, "events") == world.ids["events"] | {"late-1"}
    assert len(_ids_once(store, "quarantine")) == 2, "the same bad rows of both inputs, quarantined once"
    accepted = [json.loads(out)["accepted"] for out, _ in done]
    assert sum(a["events"] for a in accepted) == len(world.ids["events"]) + 1, "each row told once"


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Store]:
    """A small simulation, and a store holding its first two weeks (so untouched means something)."""
    root = tmp_path_factory.mktemp("bad-input")
    sim = root / "sim"
    simulate_to(SimConfig(accounts=40, days=30, seed=3, start=date(2025, 1, 1)), sim)
    shutil.rmtree(sim / "truth")
    early = root / "early"
    early.mkdir()
    shutil.copy(sim / "accounts.parquet", early)
    for day in sorted((sim / "events").iterdir())[:14]:
        shutil.copytree(day, early / "events" / day.name)
    store = Store(root / "store")
    ingest_path(store, early)
    return sim, store


def _first_events_file(sim: Path) -> Path:
    return min((sim / "events").rglob("*.parquet"))


def _truncated(sim: Path, path: Path) -> None:
    whole = _first_events_file(sim).read_bytes()
    path.write_bytes(whole[: len(whole) // 2])


def _without_event_id(sim: Path, path: Path) -> None:
    pq.write_table(pq.read_table(_first_events_file(sim)).drop_columns(["event_id"]), path)


#: a file that cannot be ingested: its name, how it is made, and what the error says of it
BAD_FILES = {
    "truncated parquet": ("zz-truncated.parquet", _truncated, "cannot read"),
    "parquet without event_id": (
        "zz-no-id.parquet",
        _without_event_id,
        "missing required column(s) event_id",
    ),
    "garbage named parquet": (
        "zz-garbage.parquet",
        lambda sim, path: path.write_bytes(b"PAR1" + bytes(range(256)) * 8),
        "cannot read",
    ),
    "empty parquet": ("zz-empty.parquet", lambda sim, path: path.write_bytes(b""), "cannot read"),
    "empty csv": ("zz-empty.csv", lambda sim, path: path.write_bytes(b""), "empty CSV"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_a_bad_file_among_good_ones_is_named_and_the_store_is_untouched(
    case: str, small: tuple[Path, Store], tmp_path: Path
) -> None:
    sim, base = small
    store = Store(tmp_path / "store")
    shutil.copytree(base.root, store.root)
    folder = tmp_path / "input"
    shutil.copytree(sim, folder)
    name, make, says = BAD_FILES[case]
    bad = folder / name  # read last: after the accounts, every good event file and the interventions
    make(sim, bad)
    versions, rows = store.versions(), _rows(store)

    done = run_retain("ingest", str(folder), "--store", str(store.root))

    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(bad) in errors[0] and says in errors[0], done.stderr
    assert "Traceback" not in done.stderr
    assert store.versions() == versions
    assert _rows(store) == rows, "nothing of the good files landed either"
