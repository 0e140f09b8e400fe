"""`retain monitor` on the served world: its figures against an independent computation from the
simulator's outcomes, its MLflow run, and its gauges on a real server's /metrics."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient
from sklearn.metrics import brier_score_loss, roc_auc_score

from experiments.monitor_drift import RELEASE_MOVES
from features.definitions import FEATURES, RENEWAL_GRACE_DAYS
from features.stored import read_features
from registry.models import load_scoring_model
from registry.tracking import tracking_uri
from store.gauges import read_gauges
from tests.support.served import Server, World
from tests.support.worlds import RELEASE, DriftedWorld
from training.config import TrainConfig


@pytest.fixture(scope="module")
def monitored(served_world: World, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("monitor")
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "retain",
            "monitor",
            "--store",
            str(served_world.store.root),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Monitor written to" in run.stdout
    assert (out / "monitor.html").read_text().startswith("<!doctype html>")
    return json.loads((out / "monitor.json").read_text())


def _outcome_labels(world: World, keys: pd.DataFrame, target: str) -> np.ndarray:
    """From the simulator's truth: churned (or first expanded) in (cutoff, cutoff + horizon]; and for churn an
    account that lapsed at a renewal date in the grace week before the cutoff, which still has a feature
    row and which the labels count as churn (docs/domain.md)."""
    outcomes = pd.read_parquet(world.root / "sim" / "truth" / "outcomes.parquet")
    column = {"churn": "churn_date", "expansion": "expansion_date"}[target]
    when = keys.merge(outcomes[["account_id", column]], on="account_id", how="left")[column]
    when = pd.to_datetime(when, utc=True)
    horizon = timedelta(days=world.settings.horizon_days)
    ahead = (when > keys["cutoff"]) & (when <= keys["cutoff"] + horizon)
    # a lapse (the simulator dates it at the renewal's midnight) in the grace week before the cutoff
    grace = timedelta(days=RENEWAL_GRACE_DAYS)
    lapsed = (when > keys["cutoff"] - grace) & (when <= keys["cutoff"]) & (when == when.dt.normalize())
    return (ahead | (lapsed & (target == "churn"))).to_numpy(int)


def test_realised_figures_equal_an_independent_computation_from_the_simulator(
    served_world: World, monitored: dict
) -> None:
    rows = read_features(served_world.store).to_pandas()
    rows["cutoff"] = pd.to_datetime(rows["cutoff"], utc=True)
    checked = 0
    # churn only: the truth dates an account's first expansion, while a label counts any in the horizon
    for target in [t for t in monitored["performance"] if t["target"] == "churn"]:
        model, info = load_scoring_model(
            served_world.store, served_world.settings, f"{target['target']}@champion"
        )
        assert info.version == target["model_version"]
        for cutoff in target["cutoffs"]:
            if not cutoff["matured"]:
                continue
            at = rows[rows["cutoff"] == pd.Timestamp(cutoff["cutoff"], tz="UTC")].reset_index(drop=True)
            y = _outcome_labels(served_world, at[["account_id", "cutoff"]], target["target"])
            p = model.predict(at)
            found = cutoff["realised"]["model"]["all"]
            assert found["rows"] == len(at) and found["positives"] == int(y.sum())
            assert found["auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-6)
            assert found["brier"] == pytest.approx(brier_score_loss(y, p), abs=1e-6)
            checked += 1
    assert checked >= 1, "the served world has a matured cutoff after the churn champion's training window"


def test_cbpe_interval_holds_the_realised_figure_where_labels_matured(monitored: dict) -> None:
    matured = [c for t in monitored["performance"] for c in t["cutoffs"] if c["matured"]]
    inside = [
        c["estimated"]["auc_low"] <= c["realised"]["model"]["all"]["auc"] <= c["estimated"]["auc_high"]
        for c in matured
    ]
    assert matured and sum(inside) >= 0.5 * len(inside)
    pending = [c for t in monitored["performance"] for c in t["cutoffs"] if not c["matured"]]
    assert pending and all(c["estimated"]["auc"] is not None and not c["realised"] for c in pending)


def test_the_run_is_logged_to_mlflow_and_kept_as_gauges(served_world: World, monitored: dict) -> None:
    uri = tracking_uri(served_world.store, served_world.settings)
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("monitoring")
    assert experiment is not None
    run = client.search_runs([experiment.experiment_id], max_results=1)[0]
    assert run.data.params["latest_cutoff"] == monitored["latest_cutoff"]
    churn = next(t for t in monitored["performance"] if t["target"] == "churn")
    last = [c for c in churn["cutoffs"] if c["matured"]][-1]["realised"]["model"]["all"]
    assert run.data.metrics["realised_auc_churn"] == pytest.approx(last["auc"])
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"monitor.html", "monitor.json"}
    gauges = {(g.name, tuple(g.labels.values())): g.value for g in read_gauges(served_world.store)}
    assert gauges[("realised_auc", ("churn",))] == pytest.approx(last["auc"])
    assert ("feature_psi", ("sessions_30d",)) in gauges


def test_a_server_exports_the_gauges_for_alerting(
    served_world: World, monitored: dict, tmp_path: Path
) -> None:
    server = Server(served_world, tmp_path / "server.log", served_world.latest)
    try:
        text = server.call("GET", "/metrics", key=None).text
    finally:
        server.stop()
    assert 'retain_monitor_realised_auc{model="churn"}' in text
    assert 'retain_monitor_feature_psi{feature="sessions_30d"}' in text
    assert "retain_monitor_drift_alarms" in text


def test_an_undrifted_world_raises_no_drift_alarm(monitored: dict) -> None:
    assert monitored["drift"]["values"] and monitored["drift"]["alarms"] == []


def _retrain(world: DriftedWorld, out: Path, config: TrainConfig) -> subprocess.CompletedProcess[str]:
    """`retain retrain` on the world, churn and expansion trained with `config`, uplift with a small one."""
    paths = {"config": out / "train.yaml", "uplift-config": out / "uplift.yaml"}
    out.mkdir(parents=True)
    paths["config"].write_text(yaml.safe_dump(config.model_dump(mode="json", exclude_defaults=True)))
    paths["uplift-config"].write_text(yaml.safe_dump({"min_effective_treated": 20}))
    options = [part for name, path in paths.items() for part in (f"--{name}", str(path))]
    command = ["retrain", "--store", str(world.store.root), "--out", str(out), *options, "--json"]
    return subprocess.run(
        [sys.executable, "-m", "retain", *command],
        capture_output=True,
        text=True,
        timeout=600,
    )


#: training as the drifted world's churn champion was, blind to all but region and industry: no signal
BLIND = TrainConfig(
    n_trials=2,
    plots=False,
    min_train_rows=200,
    min_window_positives=5,
    exclude_features=[f.name for f in FEATURES if f.name not in {"region", "industry"}],
)


@pytest.fixture(scope="module")
def retrained(drifted_world: DriftedWorld, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One turn of the retraining loop on the drifted world with blind challengers, and the churn champion
    before it (a string, as the turn's JSON has it)."""
    client = MlflowClient(tracking_uri=tracking_uri(drifted_world.store, drifted_world.settings))
    before = str(client.get_model_version_by_alias("churn", "champion").version)
    run = _retrain(drifted_world, tmp_path_factory.mktemp("retrain") / "out", BLIND)
    return {"run": run, "champion_before": before, "client": client}


@pytest.fixture(scope="module")
def drifted(retrained: dict) -> dict:
    """The monitor that ends the turn: the churn champion, and so the drift's reference window, stayed."""
    assert retrained["run"].returncode in (0, 1), retrained["run"].stderr[-3000:]
    return json.loads(Path(json.loads(retrained["run"].stdout)["monitor"]["json"]).read_text())


def test_a_release_drift_is_flagged_within_one_cutoff_of_the_change(drifted: dict) -> None:
    later = sorted({v["cutoff"] for v in drifted["drift"]["values"] if v["cutoff"] > RELEASE.isoformat()})
    assert max(drifted["drift"]["reference_cutoffs"]) < RELEASE.isoformat() and len(later) >= 2
    assert len(later) >= 3
    flagged = {c: {a["feature"] for a in drifted["drift"]["alarms"] if a["cutoff"] == c} for c in later}
    # the features that read the relabelled product features' use: the 7-day view of unused core features
    # at the cutoff after the first to see the release, the 30-day views (11 of 30 days changed at the
    # first) a cutoff later; nothing else, and nothing before the release
    assert "core_features_unused_7d" in flagged[later[1]]
    assert {"core_feature_share_30d", "features_used_30d"} <= flagged[later[2]]
    assert {a["feature"] for a in drifted["drift"]["alarms"]} <= RELEASE_MOVES
    assert all(a["cutoff"] > RELEASE.isoformat() for a in drifted["drift"]["alarms"])
    assert "Input drift:" in drifted["findings"][0]


def test_retrain_keeps_the_champion_and_exits_1_when_the_gate_refuses(retrained: dict) -> None:
    run, champion = retrained["run"], retrained["champion_before"]
    assert run.returncode == 1, run.stderr[-3000:]
    turn = json.loads(run.stdout)
    assert [t["model"] for t in turn["trained"]] == ["churn", "expansion", "uplift"]
    churn = next(p for p in turn["promotions"] if p["name"] == "churn")
    assert churn["decision"] == "refused" and churn["champion"] == champion == churn["champion_before"]
    assert "AUC" in churn["reason"] and "fails" in churn["reason"]
    assert "churn" in turn["refused"]
    assert str(retrained["client"].get_model_version_by_alias("churn", "champion").version) == champion
    assert Path(turn["monitor"]["json"]).exists(), "the monitor still ends the turn"
