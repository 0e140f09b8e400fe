"""Tracking and registry against real MLflow stores (SQLite under the store, and a real PostgreSQL).

Models are tiny LightGBM fits on synthetic rows whose churn risk follows a known logit, so a model trained
on clean labels reliably beats one trained on noisy or shuffled labels on a fresh window.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import psycopg
import pytest
from typer.testing import CliRunner

from core.errors import RetainError
from core.settings import Settings
from core.urls import redact
from registry import promotion
from registry.aliases import CHALLENGER, CHAMPION, champion_history
from registry.card import MODEL_CARD, model_card
from registry.models import load_scoring_model
from registry.promotion import promote, rollback
from registry.pyfunc import score_frame
from registry.tracking import active_uri, client, log_and_register, tracking_uri
from retain.cli import app
from store.delta import Store
from tests.support.models import FEATURES, PLOTS, feature_rows, fit_model, train_result, write_plots
from training.artifact import ScoringModel


@pytest.fixture(scope="module")
def plots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_plots(tmp_path_factory.mktemp("plots"))


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, Settings]:
    """One SQLite-backed store for the module (schema creation costs seconds); tests use their own names."""
    root = tmp_path_factory.mktemp("store")
    return Store(root), Settings(home=root)


@pytest.fixture(scope="module")
def window() -> tuple[pd.DataFrame, np.ndarray]:
    return feature_rows(4_000, 99)


def test_uris_default_under_the_store_and_postgres_gets_psycopg3(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    assert (
        tracking_uri(store, Settings(home=store.root)) == f"sqlite:///{store.root.resolve()}/mlflow/mlflow.db"
    )
    configured = Settings(mlflow_tracking_uri="postgresql://retain:s3cret@db:5432/mlflow")
    assert tracking_uri(store, configured) == "postgresql+psycopg://retain:s3cret@db:5432/mlflow"
    explicit = Settings(mlflow_tracking_uri="postgresql+psycopg2://db/mlflow")
    assert tracking_uri(store, explicit) == "postgresql+psycopg2://db/mlflow"
    assert redact("postgresql+psycopg://retain:s3cret@db:5432/mlflow") == (
        "postgresql+psycopg://retain:***@db:5432/mlflow"
    )


def test_serving_array_predicts_exactly_as_lightgbms_pandas_path() -> None:
    """The served fast path must not change a score: unseen levels, None, NaN and int columns included."""
    model = fit_model(seed=3)
    rows, _ = feature_rows(300, 11)
    rows.loc[rows.index[:5], "tier"] = "platinum"
    rows["open_p1p2_tickets"] = rows["open_p1p2_tickets"].astype("int64")
    expected_margin = model.booster.predict(model.matrix(rows), raw_score=True)
    expected_contrib = model.booster.predict(model.matrix(rows), pred_contrib=True)
    np.testing.assert_array_equal(model.margin(rows), expected_margin)
    np.testing.assert_array_equal(
        model.booster.predict(model.array(rows), pred_contrib=True), expected_contrib
    )  # the array encoding is the pandas path's
    # the explainer's own TreeSHAP (training/treeshap.py) equals LightGBM's to rounding
    np.testing.assert_allclose(model.contributions(rows), expected_contrib, rtol=0, atol=1e-12)
    probability, reasons = model.explain(rows.iloc[[7]], top=2)
    assert probability[0] == pytest.approx(model.predict(rows)[7], rel=1e-12)
    assert [r.feature for r in reasons[0]] == [
        model.features[j] for j in np.argsort(-np.abs(expected_contrib[7, :-1]))[:2]
    ]


def test_run_holds_params_metrics_plots_lineage_and_the_model(
    mlflow_store: tuple[Store, Settings],
    plots: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store, settings = mlflow_store
    model = fit_model()
    uri_before = (mlflow.is_tracking_uri_set(), os.environ.get("MLFLOW_TRACKING_URI"))
    logged = log_and_register(store, settings, train_result(model, plots), "churn")
    assert (mlflow.is_tracking_uri_set(), os.environ.get("MLFLOW_TRACKING_URI")) == uri_before
    assert logged.version == "1" and set(logged.aliases) == {CHAMPION, CHALLENGER}
    assert logged.model_uri.startswith("models:/m-") and logged.registered_uri == "models:/churn/1"

    mlflow_client = client(store, settings)
    run = mlflow_client.get_run(logged.run_id)
    assert run.data.params["num_leaves"] == "7" and run.data.params["tuning.trials"] == "3"
    assert run.data.metrics["test_auc"] == pytest.approx(0.8)
    assert run.data.tags["lineage.feature_service"] == "churn_v1"
    assert run.data.tags["lineage.data_hash"] == "sha256:0123abcd"
    assert run.data.tags["lineage.rows.train"] == "600"
    assert json.loads(run.data.tags["lineage.cutoffs.test"]) == ["2025-04-30"]
    files = {f.path for f in mlflow_client.list_artifacts(logged.run_id)}
    assert {"lineage.json", "metrics.json", "plots"} <= files
    plot_files = {Path(f.path).name for f in mlflow_client.list_artifacts(logged.run_id, "plots")}
    assert plot_files == {f"{name}.png" for name in PLOTS}
    lineage = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/lineage.json")
    assert lineage["cutoffs"]["test"] == ["2025-04-30"]
    # Artifacts live under the store, not under ./mlruns of the working directory.
    assert run.info.artifact_uri.startswith(store.root.resolve().as_uri())

    version = mlflow_client.get_model_version("churn", "1")
    assert version.tags["test_auc"] == "0.8" and version.tags["kind"] == "churn"

    # pyfunc puts the model's copy of our code first on sys.path; later tests' worker processes inherit it
    monkeypatch.setattr(sys, "path", list(sys.path))
    with active_uri(tracking_uri(store, settings)):
        info = mlflow.models.get_model_info("models:/churn@champion")
        pyfunc = mlflow.pyfunc.load_model("models:/churn@champion")
    assert info.signature.inputs.input_names() == FEATURES
    assert info.signature.outputs.input_names() == ["probability", "reasons"]
    assert info.saved_input_example_info is not None

    rows, _ = feature_rows(300, 7)
    predicted = pyfunc.predict(rows[FEATURES])
    np.testing.assert_allclose(predicted["probability"].to_numpy(), model.predict(rows), rtol=0, atol=1e-12)
    assert predicted["reasons"].tolist() == score_frame(model, rows)["reasons"].tolist()
    reasons = json.loads(predicted["reasons"].iloc[0])
    assert {"feature", "text", "direction", "points", "value"} <= set(reasons[0])

    loaded, version_info = load_scoring_model(store, settings, "churn@champion")
    np.testing.assert_array_equal(loaded.predict(rows), model.predict(rows))
    assert version_info.version == "1" and CHAMPION in version_info.aliases


def test_a_registered_version_carries_its_model_card(
    mlflow_store: tuple[Store, Settings], plots: dict[str, Path]
) -> None:
    store, settings = mlflow_store
    result = train_result(fit_model(seed=10), plots)
    logged = log_and_register(store, settings, result, "churn_card")
    mlflow_client = client(store, settings)
    artifact_uri = mlflow_client.get_run(logged.run_id).info.artifact_uri
    card = mlflow.artifacts.load_text(f"{artifact_uri}/{MODEL_CARD}")
    assert card == model_card(result, "churn_card", logged.version)
    assert mlflow_client.get_model_version("churn_card", logged.version).description == card


def test_promotion_refuses_worse_promotes_better_forces_with_reason_and_rolls_back(
    mlflow_store: tuple[Store, Settings], plots: dict[str, Path], window: tuple[pd.DataFrame, np.ndarray]
) -> None:
    store, settings = mlflow_store
    name = "churn_promotion"
    mlflow_client = client(store, settings)

    def champion() -> str:
        return str(mlflow_client.get_model_version_by_alias(name, CHAMPION).version)

    def register(model: ScoringModel) -> str:
        return log_and_register(store, settings, train_result(model, plots), name).version

    first = register(fit_model(seed=1, noise=0.5))
    worse = register(fit_model(seed=2, noise=1.0, trees=5))
    refused = promote(store, settings, name, window=window)
    assert refused.decision == "refused" and refused.champion == first and refused.scores is not None
    assert refused.scores.challenger.auc < refused.scores.champion.auc - 0.005
    assert champion() == first

    better = register(fit_model(seed=3, n=3_000, trees=60))
    promoted = promote(store, settings, name, window=window)
    assert promoted.decision == "promoted", promoted.verdict
    assert promoted.scores is not None
    assert promoted.scores.challenger.brier <= promoted.scores.champion.brier
    assert champion() == better
    assert promote(store, settings, name, window=window).decision == "unchanged"

    forced_version = register(fit_model(seed=4, noise=1.0, trees=5))
    with pytest.raises(RetainError, match="--reason"):
        promote(store, settings, name, window=window, force=True)
    forced = promote(store, settings, name, window=window, force=True, reason="pilot on new segment")
    assert forced.decision == "forced" and forced.gate == "failed"
    tags = mlflow_client.get_model_version(name, forced_version).tags
    assert tags["promotion_reason"] == "pilot on new segment" and tags["promotion_forced"] == "true"
    assert champion_history(mlflow_client, name) == [first, better, forced_version]

    assert rollback(store, settings, name).model_dump(exclude_none=True) == {
        "name": name,
        "rolled_back": forced_version,
        "champion": better,
        "history": [first, better],
    }
    assert rollback(store, settings, name).champion == first
    with pytest.raises(RetainError, match="no previous champion"):
        rollback(store, settings, name)
    assert champion() == first
    assert worse not in champion_history(mlflow_client, name)


def test_unknown_model_and_alias_are_clear_errors(mlflow_store: tuple[Store, Settings]) -> None:
    store, settings = mlflow_store
    with pytest.raises(RetainError, match="no registered model 'nobody'"):
        load_scoring_model(store, settings, "nobody@champion")
    with pytest.raises(RetainError, match="no version aliased 'staging'"):
        load_scoring_model(store, settings, "churn@staging")
    with pytest.raises(RetainError, match="no registered model"):
        promote(store, settings, "nobody", window=feature_rows(10, 1))


def test_cli_promote_prints_the_comparison_and_rollback_restores(
    mlflow_store: tuple[Store, Settings],
    plots: dict[str, Path],
    window: tuple[pd.DataFrame, np.ndarray],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store, settings = mlflow_store
    name = "churn_cli"
    for model in (fit_model(seed=5, noise=0.5), fit_model(seed=6, noise=1.0, trees=5)):
        log_and_register(store, settings, train_result(model, plots), name)
    asked: list[str] = []

    def latest_window(store_: Store, settings_: Settings, kind: str) -> tuple[pd.DataFrame, np.ndarray]:
        asked.append(kind)
        return window

    monkeypatch.setattr(promotion, "_latest_window", latest_window)
    runner = CliRunner()
    args = ["--model", name, "--store", str(store.root)]
    refused = runner.invoke(app, ["promote", *args, "--json"])
    assert refused.exit_code == 1 and asked == ["churn"]
    assert json.loads(refused.stdout)["decision"] == "refused"
    assert "champion v1" in refused.stderr and "challenger v2" in refused.stderr

    forced = runner.invoke(
        app, ["promote", *args, "--force", "--reason", "holiday freeze exception", "--json"]
    )
    assert forced.exit_code == 0, forced.output
    assert json.loads(forced.stdout)["champion"] == "2"
    # a new champion is an alert for the webhooks, recorded in the store's decision log
    assert json.loads(forced.stdout)["alerts"] == {
        "raised": 1,
        "new": 1,
        "known": 0,
        "deliveries": 0,
        "error": None,
    }
    restored = runner.invoke(app, ["rollback", *args])
    assert restored.exit_code == 0, restored.output
    assert restored.stdout == (
        f"{name}: version 2 rolled back; the champion is version 1 again\n"
        "  alerts: 1 raised, 1 new, 0 deliveries queued for the webhooks\n"
    )


@pytest.mark.service
def test_postgresql_backend_over_a_real_connection(
    postgres_database: str, plots: dict[str, Path], window: tuple[pd.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    store = Store(tmp_path / "store")
    settings = Settings(home=store.root, mlflow_tracking_uri=postgres_database)
    champion_model = fit_model(seed=8, noise=0.5)
    logged = log_and_register(store, settings, train_result(champion_model, plots), "churn")
    assert logged.tracking_uri.startswith("postgresql+psycopg://")
    assert not (store.root / "mlflow" / "mlflow.db").exists()
    log_and_register(store, settings, train_result(fit_model(seed=9, n=3_000, trees=60), plots), "churn")
    assert promote(store, settings, "churn", window=window).decision == "promoted"
    assert rollback(store, settings, "churn").champion == "1"

    loaded, info = load_scoring_model(store, settings, "churn@champion")
    rows, _ = feature_rows(50, 3)
    np.testing.assert_array_equal(loaded.predict(rows), champion_model.predict(rows))
    run = client(store, settings).get_run(str(info.run_id))
    assert run.info.artifact_uri.startswith(store.root.resolve().as_uri())
    with psycopg.connect(postgres_database) as con:
        versions = con.execute("SELECT count(*) FROM model_versions WHERE name = 'churn'").fetchone()
    assert versions == (2,)
