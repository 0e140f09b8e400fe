"""A small bring-your-own table is trained as an AutoML tool would: tuned by cross-validation within its time
budget, calibrated out of fold, refitted on every row, with its text columns as LightGBM categories."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from typer.testing import CliRunner

from core.settings import Settings
from retain.cli import app
from training.artifact import model_matrix
from training.calibration import fit_calibrator
from training.config import TrainConfig
from training.crossval import calibrate_out_of_fold, cv_folds, tune_cv
from training.logodds import expit
from training.run import train_table

BUDGET = 6.0
#: each region's churn log-odds: no order of the names sorts them, so a split on codes would need many cuts
REGIONS = {"north": 1.2, "south": -1.0, "east": 0.9, "west": -0.8, "centre": 0.0, "islands": 1.5}


def accounts(rows: int = 3_000, seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    region = rng.choice(list(REGIONS), rows)
    logins = rng.gamma(2.0, 10.0, rows)
    logit = -1.5 + np.vectorize(REGIONS.get)(region) - 0.05 * logins
    churned = rng.random(rows) < expit(logit)
    return pd.DataFrame(
        {"customer": [f"c{i}" for i in range(rows)], "region": region, "logins": logins, "churned": churned}
    )


def categorical_splits(booster: lgb.Booster) -> set[str]:
    """The features some node of the booster splits on by category (`==` on a set of levels)."""
    names = booster.feature_name()
    found: set[str] = set()

    def walk(node: dict[str, Any]) -> None:
        if "split_feature" in node:
            if node["decision_type"] == "==":
                found.add(names[node["split_feature"]])
            walk(node["left_child"])
            walk(node["right_child"])

    for tree in booster.dump_model()["tree_info"]:
        walk(tree["tree_structure"])
    return found


def test_a_small_table_is_cross_validated_within_its_budget_and_refitted_on_every_row(tmp_path: Path) -> None:
    table = accounts()
    path = tmp_path / "accounts.csv"
    table.to_csv(path, index=False)
    config = TrainConfig(n_trials=None, timeout_seconds=BUDGET, plots=False)
    result = train_table(path, "churned", "customer", None, "acme", config, settings=Settings())
    metrics, model = result.metrics, result.model

    assert metrics["seconds"] <= BUDGET, "the time budget bounds the whole training, not only the tuning"
    assert metrics["evaluation"] == "cross_validation" and metrics["folds"] == 5
    assert metrics["model"]["rows"] == len(table), "every row is judged, out of fold"
    assert metrics["model"]["auc"] > 0.72 and metrics["logistic"]["auc"] > 0.72
    assert set(result.flat_metrics) >= {"cv_auc", "cv_pr_auc", "cv_lift_top_decile", "logistic_cv_auc"}

    # the final booster is the chosen parameters and tree count trained on every row of the table
    assert metrics["rows_refitted"] == len(table)
    params = {k: v for k, v in result.params.items() if not k.startswith("config.")}
    rounds = params.pop("num_boost_round")
    x = model_matrix(table, model.features, model.categories)
    y = table["churned"].to_numpy(dtype=int)
    again = lgb.train(
        params, lgb.Dataset(x, y, params={"feature_pre_filter": False, "verbosity": -1}), rounds
    )
    assert model.booster.num_trees() == rounds == metrics["tuning"]["trees"]
    np.testing.assert_allclose(model.booster.predict(x), again.predict(x))

    assert model.categories == {"region": sorted(REGIONS)}
    assert categorical_splits(model.booster) == {"region"}, "the text column is a native LightGBM category"
    assert metrics["calibration"] in ("platt", "isotonic")
    assert set(metrics["calibration_log_loss"]) == {"platt", "isotonic"}


def test_a_budget_spent_before_tuning_still_yields_the_first_trial() -> None:
    """On a busy machine the baseline can use the whole tuning share; the first trial must run anyway."""
    table = accounts(600, seed=3)
    x, y = table[["logins"]], table["churned"].to_numpy(dtype=int)
    config = TrainConfig(n_trials=None, timeout_seconds=1.0, plots=False).model_copy(update={"seed": 7})
    folds = cv_folds(y, table["customer"], 3, 7)
    tuned = tune_cv(x, y, folds, config, "late", deadline=time.perf_counter() - 1.0)
    assert tuned.trials == 1 and tuned.pruned == 0 and 0.5 < tuned.best_value <= 1.0


def test_the_calibrator_is_chosen_and_judged_out_of_fold() -> None:
    """Each fold's calibrated figures come from a calibrator fitted on the other folds; the method with the
    lower cross-fitted log loss wins and is then fitted on every out-of-fold prediction."""
    rng = np.random.default_rng(1)
    y = (rng.random(4_000) < 0.2).astype(int)
    oof = expit(rng.normal(-1.5, 0.6, 4_000) + 1.2 * y)  # overconfident in no direction Platt cannot fix
    folds = cv_folds(y, pd.Series(np.arange(4_000)), 5, seed=0)
    chosen = calibrate_out_of_fold(oof, y, folds)

    assert chosen.method == min(chosen.log_loss, key=lambda m: chosen.log_loss[m])
    fitted, held = folds[2]
    expected = fit_calibrator(chosen.method, oof[fitted], y[fitted]).predict(oof[held])
    np.testing.assert_allclose(chosen.cross_fitted[held], expected)
    np.testing.assert_allclose(
        chosen.calibrator.predict(oof), fit_calibrator(chosen.method, oof, y).predict(oof)
    )


def test_folds_keep_an_ids_rows_together() -> None:
    ids = pd.Series([f"c{i % 700}" for i in range(2_100)])
    y = (np.arange(2_100) % 7 == 0).astype(int)
    for fitted, held in cv_folds(y, ids, 5, seed=3):
        assert not set(ids.iloc[fitted]) & set(ids.iloc[held])


def test_the_cli_trains_a_table_on_a_time_budget_reports_cross_validated_figures_and_scores_it(
    tmp_path: Path,
) -> None:
    table = accounts(2_000, seed=9)
    path = tmp_path / "accounts.csv"
    table.to_csv(path, index=False)
    store = ["--store", str(tmp_path / "store")]
    args = ["train", "--table", str(path), "--label", "churned", "--id", "customer", "--name", "acme"]
    runner = CliRunner()
    trained = runner.invoke(app, [*args, *store, "--time-budget", "4"])
    assert trained.exit_code == 0, trained.output
    assert "Cross-validated" in trained.stdout and "refitted on all 2000 rows" in trained.stdout

    out = tmp_path / "scores.csv"
    scored = runner.invoke(app, ["score", "--table", str(path), "--model", "acme", "--out", str(out), *store])
    assert scored.exit_code == 0, scored.output
    assert len(pd.read_csv(out)) == 2_000, "the registered model loads where table scoring loads it"

    refused = runner.invoke(app, ["train", "--model", "churn", "--time-budget", "4", *store])
    assert "--time-budget go with --table" in str(refused.exception)
