"""The path, ingest → features → train → score, on S3 (moto's real server), held against a local folder.

Everything runs through the CLI in subprocesses, as a person would run it: `--store` names the folder
or `s3://bucket/prefix`, RETAIN_HOME the local state of the S3 store, and the AWS_* environment the
endpoint and credentials that delta-rs reads. The folder takes the same simulation through ingest and
the feature build only: what the two stores must agree on (the rows, the features, the health score) is
made there; training and scoring read it back through the same commands on either store, and
tests/unit/test_batch_scoring.py re-scores a cutoff on a folder store through the CLI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from core.contract import TS
from features.cutoffs import cutoff_instant
from features.stored import read_features
from serving.batch import SCORES, SCORES_SCHEMA
from store.delta import TABLES, Store
from tests.support.s3 import S3Bucket, s3_bucket  # noqa: F401  (the fixture)
from tests.support.served import World

PREFIX = "deployments/acme"
#: the budget that trains a churn model on the smallest world (tests/support/served.py)
CONFIG = "n_trials: 2\nplots: false\nmin_train_rows: 200\nmin_window_positives: 5\n"


@dataclass
class Run:
    """One store taken through the path: where it is, what each command said, and all it printed."""

    location: str
    home: Path
    out: Path
    said: dict[str, Any] = field(default_factory=dict)
    printed: list[str] = field(default_factory=list)

    @property
    def store(self) -> Store:
        return Store.at(self.location, self.home)

    def retain(self, step: str, *args: str) -> Any:
        """Run `retain ARGS --store LOCATION --json`, keep what it printed, and return its JSON."""
        done = subprocess.run(
            [sys.executable, "-m", "retain", *args, "--store", self.location, "--json"],
            env={**os.environ, "RETAIN_HOME": str(self.home)},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        self.printed += [done.stdout, done.stderr]
        assert done.returncode == 0, done.stderr[-3000:]
        self.said[step] = json.loads(done.stdout)
        return self.said[step]


def take_the_path(run: Run, simulation: Path, config: Path) -> Run:
    """Ingest, build, train churn, then score the newest cutoff twice with the one before in between: the
    table must keep each cutoff's batch once."""
    run.retain("ingest", "ingest", str(simulation))
    built = run.retain("features", "features", "build")
    run.retain("train", "train", "--model", "churn", "--config", str(config))
    *_, before, newest = built["cutoffs"]
    for step, cutoff in (("score", newest), ("score before", before), ("score again", newest)):
        run.retain(step, "score", "--cutoff", cutoff, "--out", str(run.out / f"{step}.parquet"))
    run.retain("history", "store", "history", SCORES)
    return run


def ingest_and_build(run: Run, simulation: Path) -> Run:
    """Ingest and build the features (not published: the folder's online store is not compared)."""
    run.retain("ingest", "ingest", str(simulation))
    run.retain("features", "features", "build", "--no-online")
    return run


@dataclass(frozen=True)
class Paths:
    """The S3 store taken through the path, the folder store through ingest and the feature build, and
    the bucket that holds the S3 store's tables."""

    s3: Run
    folder: Run
    bucket: S3Bucket


@pytest.fixture(scope="module")
def paths(
    tmp_path_factory: pytest.TempPathFactory,
    s3_bucket: S3Bucket,  # noqa: F811
    served_world: World,
) -> Paths:
    """Both stores take in the served world's simulation (400 accounts, the smallest that trains a churn
    model: tests/support/served.py), which no test changes."""
    root, simulation = tmp_path_factory.mktemp("object-store"), served_world.root / "sim"
    config = root / "churn.yaml"
    config.write_text(CONFIG)
    s3 = Run(s3_bucket.uri(PREFIX), root / "home", root / "scores-s3")
    folder = Run(str(root / "folder"), root / "folder", root / "scores-folder")
    # side by side: each thread only waits on its command's subprocess (the S3 store's commands wait on
    # this process's S3 server, which answers from threads of its own)
    with ThreadPoolExecutor(max_workers=1) as pool:
        built = pool.submit(ingest_and_build, folder, simulation)
        take_the_path(s3, simulation, config)
        built.result()
    return Paths(s3, folder, s3_bucket)


def at(cutoff: str) -> ds.Expression:
    return ds.field("cutoff") == pa.scalar(cutoff_instant(date.fromisoformat(cutoff)), TS)


def scores_at(store: Store, cutoff: str) -> pd.DataFrame:
    table = store.read(SCORES, SCORES_SCHEMA, scan=at(cutoff))
    return table.to_pandas().sort_values("account_id", ignore_index=True)


def test_the_path_runs_and_the_scores_table_keeps_one_batch_per_cutoff(paths: Paths) -> None:
    run = paths.s3
    store, said = run.store, run.said
    assert said["ingest"]["accepted"]["events"] > 10_000 and said["ingest"]["store"] == run.location
    features = store.dataset("features")
    assert features is not None and features.count_rows() == said["features"]["rows"]
    assert "champion" in said["train"]["mlflow"]["aliases"]

    newest, before = said["score"]["cutoff"], said["score before"]["cutoff"]
    active = features.count_rows(filter=at(newest))
    assert said["score"]["rows"] == said["score again"]["rows"] == active > 100
    versions = [said[step]["scores_version"] for step in ("score", "score before", "score again")]
    assert versions == [0, 1, 2]
    table = store.read(SCORES, SCORES_SCHEMA).to_pandas()
    assert table.groupby("cutoff").size().to_dict() == {
        pd.Timestamp(before, tz="UTC"): said["score before"]["rows"],
        pd.Timestamp(newest, tz="UTC"): active,
    }
    in_file = pd.read_parquet(run.out / "score again.parquet").sort_values("account_id", ignore_index=True)
    pd.testing.assert_frame_equal(scores_at(store, newest).drop(columns="cutoff"), in_file)

    # the history through the CLI: deltalake 1.6.6 holds the GIL while it lists the log, so an in-process
    # call would wait on this process's own S3 server
    notes = {c["version"]: json.loads(c["retain"]) for c in said["history"]}
    assert notes[2] == {
        "step": "score",
        "cutoff": newest,
        "models": {"churn": said["train"]["mlflow"]["version"]},
        "read": {"features": said["features"]["version"]},
    }


def test_the_object_store_holds_the_same_rows_and_scores_as_the_folder(paths: Paths) -> None:
    folder, s3 = paths.folder.said, paths.s3.said
    for step, keys in {
        "ingest": ("accepted", "duplicates", "quarantined", "versions"),
        "features": ("rows", "accounts", "cutoffs", "columns", "version", "read", "alerts"),
    }.items():
        assert {k: s3[step][k] for k in keys} == {k: folder[step][k] for k in keys}, step
    # the alerts are derived from the tables on the object store as on the folder (Arrow reads both)
    assert s3["features"]["alerts"]["raised"] > 0 and s3["features"]["alerts"]["error"] is None
    assert all(s3[step]["alerts"]["error"] is None for step in ("score", "score before", "score again"))
    # DuckDB sums floats in whatever order its threads finish, so two builds of the same events may differ
    # in the last bits (about 1e-12): equal within 1e-9, every key, count and category exactly
    in_s3, in_folder = (
        read_features(run.store).to_pandas().sort_values(["cutoff", "account_id"], ignore_index=True)
        for run in (paths.s3, paths.folder)
    )
    pd.testing.assert_frame_equal(in_s3, in_folder, check_exact=False, rtol=1e-9)
    # a batch score copies each active account's health score (the rules, no model) from the features at
    # its cutoff: the S3 store's batch holds the accounts the folder's features hold active then, with the
    # folder's health scores (the churn model is not compared: LightGBM bins on distinct values, which
    # such last bits can split)
    newest = s3["score"]["cutoff"]
    assert newest == folder["features"]["cutoffs"][-1]
    columns = ["account_id", "cutoff", "health_score"]
    active = in_folder.loc[in_folder["cutoff"] == pd.Timestamp(newest, tz="UTC"), columns]
    assert s3["score"]["rows"] == len(active) > 100
    pd.testing.assert_frame_equal(
        scores_at(paths.s3.store, newest)[columns],
        active.reset_index(drop=True),
        check_exact=False,
        rtol=1e-9,
    )


def test_the_s3_store_keeps_its_tables_in_the_bucket_and_none_at_home(paths: Paths) -> None:
    run = paths.s3
    keys = paths.bucket.keys(f"{PREFIX}/")
    for table in ("accounts", "events", "interventions", "features", SCORES):
        assert any(k.startswith(f"{PREFIX}/{table}/_delta_log/") and k.endswith(".json") for k in keys), table
        assert any(k.startswith(f"{PREFIX}/{table}/") and k.endswith(".parquet") for k in keys), table
    assert any(k.startswith(f"{PREFIX}/events/event_date=") for k in keys)
    assert {k.split("/")[2] for k in keys} <= set(TABLES)
    at_home = [p.relative_to(run.home) for p in run.home.rglob("*")]
    assert not [p for p in at_home if "_delta_log" in p.parts or p.parts[0] == "lake"]
    assert (run.home / "mlflow").is_dir() and (run.home / "feast").is_dir()


def test_the_secret_key_is_never_printed_or_written_at_home(paths: Paths) -> None:
    run, secret = paths.s3, paths.bucket.secret
    assert os.environ["AWS_SECRET_ACCESS_KEY"] == secret, "the commands ran with the secret to hide"
    assert len(run.printed) == 2 * len(run.said) and any("scoring" in text for text in run.printed)
    assert not [text for text in run.printed if secret in text]
    assert not [p for p in run.home.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
