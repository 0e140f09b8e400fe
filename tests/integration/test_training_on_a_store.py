"""Churn and expansion models trained on a simulated store: beaten baselines, the oracle, honest windows."""

from __future__ import annotations

import dataclasses
import json
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from core.settings import Settings
from features.definitions import FEATURE_BY_NAME, RENEWAL_GRACE_DAYS
from features.run import register_store
from features.stored import read_features
from registry.tracking import client, log_and_register
from simulate import SimConfig
from store.delta import Store
from tests.support.worlds import published_store
from training.config import TrainConfig
from training.dataset import (
    LABEL,
    WINDOW,
    TrainingSet,
    evaluation_window,
    store_training_set,
)
from training.result import TrainResult
from training.run import fit_and_evaluate, train_model

HORIZON = 90
#: a small budget: the store tests run in a few minutes on 2 cores
TRIALS = 8
#: never lower churn risk by rising (docs/methods/risk-models.md: errors, overdue invoices, days since login)
RISING = (
    "errors_7d",
    "errors_30d",
    "errors_90d",
    "error_rate_7d",
    "error_rate_30d",
    "job_retries_7d",
    "invoices_overdue",
    "invoices_failed",
    "days_since_last_session",
)


# -- one simulation, one churn run ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class World:
    root: Path
    store: Store
    settings: Settings

    @property
    def truth(self) -> Path:
        return self.root / "sim"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("training")
    store, settings = published_store(
        root, SimConfig(accounts=2_000, days=540, seed=11, start=date(2024, 7, 1))
    )
    return World(root, store, settings)


def run_config(world: World, **overrides: Any) -> TrainConfig:
    defaults: dict[str, Any] = {
        "n_trials": TRIALS,
        "truth_dir": world.truth,
        "plots_dir": world.root / "plots",
    }
    return TrainConfig(**{**defaults, **overrides})


@pytest.fixture(scope="module")
def churn(world: World) -> TrainResult:
    return train_model(world.store, world.settings, "churn", run_config(world))


@pytest.fixture(scope="module")
def churn_set(world: World) -> TrainingSet:
    return store_training_set(
        world.store, world.settings, "churn", run_config(world).resolved(world.settings)
    )


def test_churn_model_beats_the_health_formula_and_nears_the_oracle(churn: TrainResult) -> None:
    m = churn.metrics
    assert m["model"]["auc"] - m["health"]["auc"] >= 0.05, (m["model"]["auc"], m["health"]["auc"])
    oracle = m["oracle"]
    # the gap moves from run to run with the feature build's last bits (DuckDB's threaded float sums, which
    # LightGBM's binning can see): 0.044 was seen on a run whose previous run passed at 0.04
    assert oracle["auc"] - oracle["model_auc_same_rows"] <= 0.05, (
        oracle["auc"],
        oracle["model_auc_same_rows"],
    )
    assert m["model"]["lift_top_decile"] > m["health"]["lift_top_decile"]
    assert m["ece"] < 0.03
    for key in ("test_auc", "health_test_auc", "logistic_test_auc", "oracle_test_auc", "test_ece"):
        assert key in churn.flat_metrics
    assert set(m["slices"]) == {"tier", "segment"}
    assert {"roc", "pr", "calibration", "lift", "shap_beeswarm", "shap_bar"} <= set(churn.plots)
    assert all(path.stat().st_size > 10_000 for path in churn.plots.values())


def test_the_test_window_is_the_latest_matured_cutoff_and_disjoint(world: World, churn: TrainResult) -> None:
    cutoffs = churn.lineage["cutoffs"]
    train, calibration, test = (set(cutoffs[w]) for w in ("train", "calibration", "test"))
    assert not (train & calibration) and not (train & test) and not (calibration & test)
    assert max(train) < min(calibration) <= max(calibration) < min(test)
    with duckdb.connect() as con:
        register_store(con, world.store)
        found = con.execute("SELECT max(ts) FROM events").fetchone()
    assert found is not None
    last = pd.Timestamp(found[0]).tz_convert("UTC")
    built = read_features(world.store, columns=["cutoff"])["cutoff"].to_pandas().unique()
    decided = last - pd.Timedelta(days=HORIZON + RENEWAL_GRACE_DAYS)
    assert test == {str(max(c for c in built if c <= decided).date())}
    assert churn.lineage["feature_service"].startswith("churn_v")


def test_the_tracked_run_records_the_table_versions_it_read(world: World, churn: TrainResult) -> None:
    """A run names the Delta version of every table it read, so the same data can be read again."""
    read = world.store.versions()
    assert read["events"] is not None and read["features"] is not None
    assert churn.lineage["table_versions"] == read
    logged = log_and_register(world.store, world.settings, churn, "churn")
    tags = client(world.store, world.settings).get_run(logged.run_id).data.tags
    assert {table: json.loads(tags[f"lineage.table_versions.{table}"]) for table in read} == read


def test_the_evaluation_window_for_promotion_is_the_test_window(world: World, churn: TrainResult) -> None:
    rows, labels = evaluation_window(world.store, world.settings, "churn")
    assert {str(c.date()) for c in rows["cutoff"]} == set(churn.lineage["cutoffs"]["test"])
    assert set(churn.model.features) | {"health_score"} <= set(rows.columns)
    assert roc_auc_score(labels, churn.model.predict(rows)) == pytest.approx(churn.metrics["model"]["auc"])


def test_accounts_churned_before_a_cutoff_are_excluded(world: World, churn_set: TrainingSet) -> None:
    with duckdb.connect() as con:
        register_store(con, world.store)
        cancelled = con.execute(
            "SELECT account_id, min(ts) AS at FROM events "
            "WHERE event_type = 'subscription.cancelled' GROUP BY account_id"
        ).df()
    rows = churn_set.rows.merge(cancelled, on="account_id")
    assert len(rows) > 0
    assert (rows["at"] >= rows["cutoff"]).all()


def test_no_test_row_reaches_tuning(churn_set: TrainingSet) -> None:
    parts = {
        w: set(zip(p["account_id"], p["cutoff"], strict=True)) for w, p in churn_set.rows.groupby(WINDOW)
    }
    assert not parts["test"] & (parts["train"] | parts["calibration"])
    assert (
        churn_set.rows.groupby(WINDOW)["cutoff"].max()["test"] > churn_set.part("calibration")["cutoff"].max()
    )


def test_more_errors_overdue_invoices_or_days_since_login_never_lower_churn_risk(churn: TrainResult) -> None:
    model = churn.model
    assert all(FEATURE_BY_NAME[f].direction == 1 for f in RISING)
    rows = churn.input_example
    rng = np.random.default_rng(0)
    base = pd.concat([rows] * 40, ignore_index=True)
    for name in RISING:
        base[name] = rng.uniform(0, 30, len(base)) if "rate" not in name else rng.uniform(0, 2, len(base))
    before = model.predict(base)
    for name in RISING:
        raised = base.copy()
        raised[name] = raised[name] + rng.uniform(0.1, 20, len(base))
        assert (model.predict(raised) >= before - 1e-12).all(), name
    everything = base.copy()
    everything[list(RISING)] = everything[list(RISING)] * 3 + 1
    assert (model.predict(everything) >= before - 1e-12).all()


def test_explanations_sum_to_the_raw_score(churn: TrainResult, churn_set: TrainingSet) -> None:
    rows = churn_set.part("test").head(300)
    contributions = churn.model.contributions(rows)
    np.testing.assert_allclose(contributions.sum(axis=1), churn.model.margin(rows), atol=1e-9)
    probability, reasons = churn.model.explain(rows.head(20))
    np.testing.assert_allclose(probability, churn.model.predict(rows.head(20)))
    assert all(len(r) == 3 for r in reasons)


def test_the_same_seed_and_data_give_the_same_metrics(world: World, churn: TrainResult) -> None:
    again = train_model(world.store, world.settings, "churn", run_config(world, plots=False))

    def stable(metrics: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in metrics.items() if k not in ("seconds", "tuning")}

    assert stable(again.metrics) == stable(churn.metrics)
    assert again.params == {**churn.params, "config.plots": False}
    assert {k: v for k, v in again.metrics["tuning"].items() if k != "seconds"} == {
        k: v for k, v in churn.metrics["tuning"].items() if k != "seconds"
    }


def test_shuffled_training_labels_drop_test_auc_to_chance(world: World, churn_set: TrainingSet) -> None:
    """Labels shuffled in every window the model learns from: train, and calibration, whose labels pick the
    trial and the number of trees (shuffling train alone leaves that selection to learn, ~0.6 AUC). What
    is left to find on the test window is leakage, and there is none. One shuffle is not enough: a model
    of noise that happens to split on a strong feature scores 0.45-0.61 on these 76 test positives (five
    shuffles measured, the same spread with the features before the trajectory ones), so the mean of three
    is judged; a leaking feature would score far above."""
    config = run_config(world, plots=False).resolved(world.settings)
    scores = []
    for seed in (1, 2, 3):
        rng = np.random.default_rng(seed)
        rows = churn_set.rows.copy()
        for window in ("train", "calibration"):
            part = rows[WINDOW] == window
            rows.loc[part, LABEL] = rng.permutation(rows.loc[part, LABEL].to_numpy())
        shuffled = dataclasses.replace(churn_set, rows=rows)
        scores.append(fit_and_evaluate(shuffled, "churn", "churn", config).metrics["model"]["auc"])
    assert abs(float(np.mean(scores)) - 0.5) < 0.1, scores


def test_expansion_model_trains_from_the_store(world: World) -> None:
    result = train_model(world.store, world.settings, "expansion", run_config(world, n_trials=4, plots=False))
    m = result.metrics
    assert m["model"]["auc"] > 0.7
    assert m["model"]["auc"] > m["health"]["auc"]
    assert m["oracle"]["auc"] > m["model"]["auc"] - 0.15
    assert result.lineage["monotone"] == {"increasing": [], "decreasing": []}
    assert result.lineage["feature_service"].startswith("expansion_v")
