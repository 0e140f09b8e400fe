"""The same path, ingest → features → train → score, on a local folder and on S3 (moto's real server).

Everything runs through the CLI in subprocesses, as a person would run it: `--store` names the folder
or `s3://bucket/prefix`, RETAIN_HOME the local state of the S3 store, and the AWS_* environment the
endpoint and credentials that delta-rs reads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from features.cutoffs import cutoff_instant
from features.stored import read_features
from retain.core.contract import TS
from retain.core.store import TABLES, Store
from retain.simulate import SimConfig, simulate_to
from serving.batch import SCORES, SCORES_SCHEMA
from tests.support.s3 import S3Bucket, s3_bucket  # noqa: F401  (the fixture)

KINDS = ("folder", "s3")
PREFIX = "deployments/acme"
#: the smallest world and budget that train a churn model (tests/support/served.py)
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


@dataclass(frozen=True)
class Paths:
    """Both stores taken through the path, and the bucket that holds the S3 store's tables."""

    runs: dict[str, Run]
    bucket: S3Bucket


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory, s3_bucket: S3Bucket) -> Paths:  # noqa: F811
    root = tmp_path_factory.mktemp("object-store")
    simulate_to(SimConfig(accounts=400, days=420, seed=5, start=date(2024, 7, 1)), root / "sim")
    config = root / "churn.yaml"
    config.write_text(CONFIG)
    places = {"folder": (str(root / "folder"), root / "folder"), "s3": (s3_bucket.uri(PREFIX), root / "home")}
    runs = {
        kind: take_the_path(Run(location, home, root / f"scores-{kind}"), root / "sim", config)
        for kind, (location, home) in places.items()
    }
    return Paths(runs, s3_bucket)


def at(cutoff: str) -> ds.Expression:
    return ds.field("cutoff") == pa.scalar(cutoff_instant(date.fromisoformat(cutoff)), TS)


def scores_at(store: Store, cutoff: str) -> pd.DataFrame:
    table = store.read(SCORES, SCORES_SCHEMA, scan=at(cutoff))
    return table.to_pandas().sort_values("account_id", ignore_index=True)


@pytest.mark.parametrize("kind", KINDS)
def test_the_path_runs_and_the_scores_table_keeps_one_batch_per_cutoff(paths: Paths, kind: str) -> None:
    run = paths.runs[kind]
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
    runs = paths.runs
    folder, s3 = (runs[kind].said for kind in KINDS)
    for step, keys in {
        "ingest": ("accepted", "duplicates", "quarantined", "versions"),
        "features": ("rows", "accounts", "cutoffs", "columns", "version", "read"),
        "score": ("cutoff", "rows", "scores_version"),
    }.items():
        assert {k: s3[step][k] for k in keys} == {k: folder[step][k] for k in keys}, step
    # DuckDB sums floats in whatever order its threads finish, so two builds of the same events may differ
    # in the last bits (about 1e-12): equal within 1e-9, every key, count and category exactly
    in_s3, in_folder = (
        read_features(runs[kind].store).to_pandas().sort_values(["cutoff", "account_id"], ignore_index=True)
        for kind in ("s3", "folder")
    )
    pd.testing.assert_frame_equal(in_s3, in_folder, check_exact=False, rtol=1e-9)
    # the two churn models were trained apart, and LightGBM bins on distinct values, which such last bits
    # can split: the same accounts are scored, and the health score (the rules, no model) is the same
    newest = folder["score"]["cutoff"]
    columns = ["account_id", "cutoff", "health_score"]
    pd.testing.assert_frame_equal(
        scores_at(runs["s3"].store, newest)[columns],
        scores_at(runs["folder"].store, newest)[columns],
        check_exact=False,
        rtol=1e-9,
    )


def test_the_s3_store_keeps_its_tables_in_the_bucket_and_none_at_home(paths: Paths) -> None:
    run = paths.runs["s3"]
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
    run, secret = paths.runs["s3"], paths.bucket.secret
    assert os.environ["AWS_SECRET_ACCESS_KEY"] == secret, "the commands ran with the secret to hide"
    assert len(run.printed) == 2 * len(run.said) and any("scoring" in text for text in run.printed)
    assert not [text for text in run.printed if secret in text]
    assert not [p for p in run.home.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
