"""A feature build for some cutoffs never costs the store its history: `--out` writes only its file, and a
build into the store that would drop cutoffs the feature table holds is refused (issue 35). Each test
compares the store and the online store before and after, so the order they run in does not matter."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from core.errors import RetainError
from core.settings import Settings
from features.cutoffs import cutoff_instant
from features.feast_repo import feature_store, online_features
from features.run import build_and_publish
from features.stored import read_features
from retain.cli import app, main
from simulate import SimConfig
from store.delta import Store
from tests.support.worlds import published_store

#: one of the month ends the world's table holds, not its latest
OLD_CUTOFF = date(2025, 3, 31)


@dataclass(frozen=True)
class Published:
    """A small simulated store whose month-end feature table was built and published online."""

    store: Store
    settings: Settings
    accounts: list[str]


def _cutoffs(store: Store) -> list[date]:
    column = read_features(store, columns=["cutoff"])["cutoff"]
    return sorted(instant.date() for instant in pc.unique(column).to_pylist())


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Published:
    root = tmp_path_factory.mktemp("feature-builds")
    store, settings = published_store(root, SimConfig(accounts=60, days=150, seed=3, start=date(2025, 1, 1)))
    assert len(_cutoffs(store)) == 4
    accounts = sorted(pc.unique(read_features(store, columns=["account_id"])["account_id"]).to_pylist())
    return Published(store, settings, accounts)


def _online(world: Published) -> pd.DataFrame:
    return online_features(feature_store(world.store, world.settings), world.accounts, "churn_v1")


def test_out_writes_only_its_file_and_leaves_the_store_and_the_online_store(
    published: Published, tmp_path: Path
) -> None:
    store = published.store
    version, table, online = store.version("features"), read_features(store), _online(published)
    out = tmp_path / "march.parquet"
    command = ["features", "build", "--store", str(store.root), "--cutoffs", OLD_CUTOFF.isoformat()]

    result = CliRunner().invoke(app, [*command, "--out", str(out), "--json"])

    assert result.exit_code == 0, result.output
    built = json.loads(result.stdout)
    assert (built["version"], built["feast"], built["out"]) == (None, None, str(out))
    assert store.version("features") == version, "an export writes no version of the store's table"
    assert read_features(store).equals(table)
    pd.testing.assert_frame_equal(_online(published), online)
    exported = pq.read_table(out).to_pandas()
    assert set(exported["cutoff"]) == {pd.Timestamp(cutoff_instant(OLD_CUTOFF))}
    held = table.to_pandas()
    held = held[held["cutoff"] == pd.Timestamp(cutoff_instant(OLD_CUTOFF))].reset_index(drop=True)
    pd.testing.assert_frame_equal(exported, held, check_exact=False, rtol=1e-9)

    both = CliRunner().invoke(app, [*command, "--out", str(tmp_path / "again.parquet"), "--online"])
    assert isinstance(both.exception, RetainError) and "publishes nothing" in str(both.exception)
    assert not (tmp_path / "again.parquet").exists()


def test_a_store_build_that_would_drop_cutoffs_is_refused_and_a_superset_is_not(
    published: Published,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store, settings = published.store, published.settings
    version, online, held = store.version("features"), _online(published), _cutoffs(store)
    assert version is not None
    args = ["features", "build", "--store", str(store.root), "--cutoffs", OLD_CUTOFF.isoformat()]
    monkeypatch.setattr(sys, "argv", ["retain", *args])

    with pytest.raises(SystemExit) as exit_:
        main()

    assert exit_.value.code == 2
    message = capsys.readouterr().err
    assert (
        "drop 3 of its cutoffs" in message and "--out FILE" in message and "retain features build" in message
    )
    assert store.version("features") == version
    assert _cutoffs(store) == held
    pd.testing.assert_frame_equal(_online(published), online)

    later = date(2025, 5, 15)
    grown = build_and_publish(store, settings, [*held, later], None, online=False)
    assert grown.version == version + 1
    assert _cutoffs(store) == [*held, later]
