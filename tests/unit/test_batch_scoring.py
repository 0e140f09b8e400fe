"""Batch scoring with the registered champions: the store at a cutoff, and a bring-your-own table."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from core.errors import RetainError
from core.settings import Settings
from features.cutoffs import cutoff_instant
from features.stored import read_features
from registry.tracking import log_and_register
from retain.cli import app
from serving.batch import SCORES, SCORES_SCHEMA, riskiest_model_answered, score_store, score_table
from store.delta import Store
from tests.support.models import FEATURES, feature_rows, fit_model, train_result, write_plots
from training.artifact import ScoringModel

CUTOFFS = {date(2025, 5, 31): 60, date(2025, 6, 30): 45}
OUTPUT = [
    "account_id",
    "churn_probability",
    "expansion_probability",
    "health_score",
    "health_band",
    "reasons",
]


def write_feature_table(store: Store) -> pd.DataFrame:
    """A feature table in the build's layout: accounts active at each cutoff, features, health."""
    parts = []
    for i, (cutoff, accounts) in enumerate(CUTOFFS.items()):
        rows, _ = feature_rows(accounts, seed=20 + i)
        rows["account_id"] = [f"acct-{j:04d}" for j in range(accounts)]
        rows["cutoff"] = cutoff_instant(cutoff)
        rows["health_score"] = np.round(100 * (1 - rows["seat_utilisation"]), 1)
        rows["health_band"] = np.where(rows["health_score"] >= 60, "healthy", "at_risk")
        parts.append(rows)
    table = pd.concat(parts, ignore_index=True)
    table["cutoff"] = table["cutoff"].astype("datetime64[us, UTC]")
    publish_features(store, table)
    return table


def publish_features(store: Store, table: pd.DataFrame) -> None:
    """`table` as the store's new feature table version, as a build would write it."""
    store.write("features", pa.Table.from_pandas(table, preserve_index=False), "overwrite", "test features")


@pytest.fixture(scope="module")
def scored_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, Settings, dict[str, ScoringModel]]:
    root = tmp_path_factory.mktemp("batch")
    store, settings = Store(root / "store"), Settings(home=root / "store")
    write_feature_table(store)
    plots = write_plots(root / "plots")
    models = {"churn": fit_model(seed=11), "expansion": fit_model(seed=12, kind="expansion")}
    for name, model in models.items():
        log_and_register(store, settings, train_result(model, plots), name)
    return store, settings, models


def test_store_batch_scores_every_active_account_with_both_champions(
    scored_store: tuple[Store, Settings, dict[str, ScoringModel]], tmp_path: Path
) -> None:
    store, settings, models = scored_store
    out = tmp_path / "scores.parquet"
    summary = score_store(store, settings, date(2025, 6, 30), out, chunk=16)
    assert summary.rows == 45 and summary.models.expansion is not None
    assert summary.models.expansion.version == "1"

    scores = pd.read_parquet(out)
    assert list(scores.columns) == OUTPUT
    features = read_features(store).to_pandas()
    rows = features[features["cutoff"] == pd.Timestamp("2025-06-30", tz="UTC")].reset_index(drop=True)
    assert scores["account_id"].tolist() == rows["account_id"].tolist()
    np.testing.assert_allclose(scores["churn_probability"], models["churn"].predict(rows), atol=1e-12)
    np.testing.assert_allclose(scores["expansion_probability"], models["expansion"].predict(rows), atol=1e-12)
    assert scores["health_band"].tolist() == rows["health_band"].tolist()

    # Reasons are the top three exact TreeSHAP contributions (LightGBM's pred_contrib), in order, signed.
    churn = models["churn"]
    contributions = churn.booster.predict(churn.array(rows), pred_contrib=True)[:, :-1]
    for i, text in enumerate(scores["reasons"]):
        reasons = json.loads(text)
        order = np.argsort(-np.abs(contributions[i]), kind="stable")[: len(reasons)]
        assert [r["feature"] for r in reasons] == [FEATURES[j] for j in order]
        assert len(reasons) == min(3, int((contributions[i] != 0).sum()))
        for reason, j in zip(reasons, order, strict=True):
            assert reason["direction"] == ("raises" if contributions[i, j] > 0 else "lowers")
            assert reason["points"] * contributions[i, j] >= 0
            assert reason["text"]


def test_chunking_does_not_change_the_scores(
    scored_store: tuple[Store, Settings, dict[str, ScoringModel]], tmp_path: Path
) -> None:
    store, settings, _ = scored_store
    whole, parts = tmp_path / "whole.parquet", tmp_path / "parts.parquet"
    score_store(store, settings, date(2025, 5, 31), whole)
    score_store(store, settings, date(2025, 5, 31), parts, chunk=7)
    pd.testing.assert_frame_equal(pd.read_parquet(whole), pd.read_parquet(parts))


def test_missing_expansion_champion_gives_a_null_column_and_says_so(tmp_path: Path) -> None:
    store, settings = Store(tmp_path / "store"), Settings(home=tmp_path / "store")
    write_feature_table(store)
    log_and_register(store, settings, train_result(fit_model(seed=13), write_plots(tmp_path / "p")), "churn")
    summary = score_store(store, settings, date(2025, 5, 31), tmp_path / "out.parquet")
    assert summary.models.expansion is None
    assert "no registered model 'expansion'" in summary.models.notes[0]
    scores = pd.read_parquet(tmp_path / "out.parquet")
    assert scores["expansion_probability"].isna().all() and scores["churn_probability"].notna().all()

    with pytest.raises(RetainError, match="no feature rows at cutoff 2025-04-30; latest cutoffs: 2025-05-31"):
        score_store(store, settings, date(2025, 4, 30), tmp_path / "none.parquet")
    assert not (tmp_path / "none.parquet").exists()


def test_bring_your_own_table_gets_id_probability_and_reasons(
    scored_store: tuple[Store, Settings, dict[str, ScoringModel]], tmp_path: Path
) -> None:
    store, settings, models = scored_store
    rows, _ = feature_rows(25, seed=30)
    table = tmp_path / "accounts.csv"
    rows.rename(columns={"account_id": "customer"}).to_csv(table, index=False)
    out = tmp_path / "scored.csv"
    summary = score_table(store, settings, table, "churn@champion", out, id_column="customer", chunk=10)
    assert summary.rows == 25 and summary.model.version == "1"
    scored = pd.read_csv(out)
    assert list(scored.columns) == ["customer", "probability", "reasons"]
    assert scored["customer"].tolist() == rows["account_id"].tolist()
    np.testing.assert_allclose(scored["probability"], models["churn"].predict(pd.read_csv(table)), atol=1e-12)
    assert all(isinstance(json.loads(r), list) for r in scored["reasons"])

    rows.drop(columns=["tier"]).to_csv(tmp_path / "short.csv", index=False)
    with pytest.raises(RetainError, match="lacks the model's column"):
        score_table(store, settings, tmp_path / "short.csv", "churn", tmp_path / "x.csv")
    with pytest.raises(RetainError, match="no id column 'customer'"):
        score_table(
            store, settings, tmp_path / "short.csv", "churn", tmp_path / "x.csv", id_column="customer"
        )
    with pytest.raises(RetainError, match="no version aliased 'nope'"):
        score_table(store, settings, table, "churn@nope", tmp_path / "x.csv")
    assert not (tmp_path / "x.csv").exists()


def test_cli_score_both_ways(
    scored_store: tuple[Store, Settings, dict[str, ScoringModel]], tmp_path: Path
) -> None:
    store, _, _ = scored_store
    runner = CliRunner()
    table = tmp_path / "accounts.parquet"
    feature_rows(12, seed=31)[0].to_parquet(table)
    byo = runner.invoke(
        app,
        [
            "score",
            "--store",
            str(store.root),
            "--table",
            str(table),
            "--model",
            "churn",
            "--out",
            str(tmp_path / "o.csv"),
            "--json",
        ],
    )
    assert byo.exit_code == 0, byo.output
    assert json.loads(byo.stdout)["rows"] == 12
    assert list(pd.read_csv(tmp_path / "o.csv").columns) == ["account_id", "probability", "reasons"]

    batch = runner.invoke(
        app,
        ["score", "--store", str(store.root), "--cutoff", "2025-06-30", "--out", str(tmp_path / "o.parquet")],
    )
    assert batch.exit_code == 0, batch.output
    assert len(pd.read_parquet(tmp_path / "o.parquet")) == 45
    assert "Scored 45 accounts active at 2025-06-30 with churn version 1 and expansion" in batch.stdout
    assert str(tmp_path / "o.parquet") in batch.stdout

    both = runner.invoke(app, ["score", "--cutoff", "2025-06-30", "--table", str(table), "--out", "x"])
    assert isinstance(both.exception, RetainError)


def test_scoring_a_cutoff_again_replaces_its_batch_in_the_folder_store(
    scored_store: tuple[Store, Settings, dict[str, ScoringModel]], tmp_path: Path
) -> None:
    """Through the CLI on a folder store: a cutoff, the one before, then the first again. The scores table
    keeps one batch per cutoff, the file is the table's batch, and each version's note names the step,
    the cutoff, the champions and the feature version it read (the S3 store's run:
    tests/integration/test_object_store.py)."""
    store, _, _ = scored_store
    runner, said = CliRunner(), []
    for step, cutoff in enumerate(["2025-06-30", "2025-05-31", "2025-06-30"]):
        out = tmp_path / f"{step}.parquet"
        args = ["score", "--store", str(store.root), "--cutoff", cutoff, "--out", str(out), "--json"]
        done = runner.invoke(app, args)
        assert done.exit_code == 0, done.output
        said.append(json.loads(done.stdout))
    first = said[0]["scores_version"]
    assert [s["scores_version"] for s in said] == [first, first + 1, first + 2]
    assert [s["rows"] for s in said] == [45, 60, 45]
    table = store.read(SCORES, SCORES_SCHEMA).to_pandas()
    assert table.groupby("cutoff").size().to_dict() == {
        pd.Timestamp(cutoff_instant(cutoff)): rows for cutoff, rows in CUTOFFS.items()
    }
    newest = table[table["cutoff"] == pd.Timestamp(cutoff_instant(date(2025, 6, 30)))]
    pd.testing.assert_frame_equal(
        newest.drop(columns="cutoff").sort_values("account_id", ignore_index=True),
        pd.read_parquet(tmp_path / "2.parquet").sort_values("account_id", ignore_index=True),
    )
    notes = {c.version: json.loads(c.retain or "{}") for c in store.history(SCORES)}
    assert notes[first + 2] == {
        "step": "score",
        "cutoff": "2025-06-30",
        "models": {"churn": "1", "expansion": "1"},
        "read": {"features": store.version("features")},
    }


def test_the_example_account_is_the_riskiest_the_model_answers_itself(tmp_path: Path) -> None:
    store, settings = Store(tmp_path / "store"), Settings(home=tmp_path / "store")
    table = write_feature_table(store)
    model = fit_model(seed=11)
    model.ranges = {"open_p1p2_tickets": (0.0, 3.0)}
    log_and_register(store, settings, train_result(model, write_plots(tmp_path / "p")), "churn")
    scores = tmp_path / "scores.parquet"
    score_store(store, settings, date(2025, 6, 30), scores)
    by_risk = pd.read_parquet(scores).sort_values(
        ["churn_probability", "account_id"], ascending=[False, True]
    )
    ranked = by_risk["account_id"].tolist()
    assert riskiest_model_answered(store, settings, scores, date(2025, 6, 30)).account_id == ranked[0]

    # the riskiest account's input now lies far outside training: the API would answer it by the rules
    newest = table["cutoff"] == table["cutoff"].max()
    table.loc[newest & (table["account_id"] == ranked[0]), "open_p1p2_tickets"] = 40
    publish_features(store, table)
    found = riskiest_model_answered(store, settings, scores, date(2025, 6, 30))
    assert (found.account_id, found.model.version) == (ranked[1], "1")

    with pytest.raises(RetainError, match="the API serves the newest cutoff, 2025-06-30"):
        riskiest_model_answered(store, settings, scores, date(2025, 5, 31))
