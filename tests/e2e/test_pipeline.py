"""The foundation end to end: simulate -> ingest -> features, judged against the simulator's truth (on the
session's uplift world, which the real pipeline built that way), and the CLI's chain in RETAIN_HOME."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
from sklearn.metrics import roc_auc_score

from features.stored import read_features
from store.delta import Store
from tests.support.worlds import UpliftWorld

HORIZON = pd.Timedelta(days=90)


def test_health_formula_is_clearly_worse_than_the_oracle(uplift_world: UpliftWorld) -> None:
    features = read_features(uplift_world.store).to_pandas()
    truth = pd.read_parquet(uplift_world.simulation / "truth" / "probabilities.parquet")
    outcomes = pd.read_parquet(uplift_world.simulation / "truth" / "outcomes.parquet")
    truth["cutoff"] = pd.to_datetime(truth["cutoff"], utc=True)
    rows = features.merge(truth, on=["account_id", "cutoff"]).merge(outcomes, on="account_id")
    churn_at = pd.to_datetime(rows["churn_date"], utc=True)
    rows["churned"] = (churn_at > rows["cutoff"]) & (churn_at <= rows["cutoff"] + HORIZON)
    matured = rows[rows["cutoff"] + HORIZON <= pd.Timestamp(uplift_world.end, tz="UTC")]
    assert len(matured) > 2_000 and matured["churned"].sum() > 50

    oracle_auc = roc_auc_score(matured["churned"], matured["p_churn"])
    health_auc = roc_auc_score(matured["churned"], -matured["health_score"])
    assert 0.75 <= oracle_auc <= 0.92
    assert health_auc > 0.5, "the health formula should still carry signal"
    assert oracle_auc - health_auc >= 0.05, (oracle_auc, health_auc)


def _retain(*args: str, home: Path) -> dict:
    env = {**os.environ, "RETAIN_HOME": str(home)}
    done = subprocess.run(
        [sys.executable, "-m", "retain", *args, "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_cli_chain_defaults_to_retain_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _retain(
        "simulate",
        "--accounts",
        "60",
        "--days",
        "120",
        "--seed",
        "5",
        "--out",
        str(tmp_path / "sim"),
        home=home,
    )
    ingested = _retain("ingest", str(tmp_path / "sim"), home=home)
    built = _retain("features", "build", "--cutoffs", "2025-03-31,2025-04-30", home=home)
    assert ingested["accepted"]["events"] > 0
    assert built["rows"] > 0
    store = Store(home)
    assert (home / "lake" / "events" / "_delta_log").is_dir(), "the tables are Delta tables in RETAIN_HOME"
    assert built["read"] == {table: ingested["versions"].get(table) for table in built["read"]}
    assert built["version"] == store.version("features")
    assert read_features(store).num_rows == built["rows"]
    assert (home / "feast").is_dir()
