"""A store copied or moved to another folder, its original gone, serves as it is: no path it holds names
the folder it was built in (Feast's repo config, MLflow's artifact locations)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

from features.feast_repo import feature_store, historical_features
from registry.models import load_scoring_model, resolve
from registry.pyfunc import MODEL_ARTIFACT
from registry.tracking import artifact_location, client, experiment_id
from store.delta import Store
from tests.support.served import Server, World, model_answered


@dataclass(frozen=True)
class Copied:
    """The served world's store copied elsewhere, with the world's keys (the key file was copied too)."""

    store: Store
    keys: dict[str, str] = field(default_factory=dict)


@pytest.fixture
def moved(served_world: World, tmp_path: Path) -> Iterator[Copied]:
    """A copy of the served world's store, with the original renamed away until the test ends."""
    original = served_world.store.root
    copy = Store(tmp_path / "restored" / "store")
    shutil.copytree(original, copy.root)
    away = original.with_name(original.name + ".away")
    original.rename(away)
    try:
        yield Copied(copy, served_world.keys)
    finally:
        away.rename(original)


def test_a_copied_store_serves_model_answers_with_its_original_gone(
    moved: Copied, served_world: World, tmp_path: Path
) -> None:
    server = Server(moved, tmp_path / "server.log", served_world.latest)
    try:
        ready = server.call("GET", "/readyz", key=None)
        assert ready.status_code == 200, ready.text
        assert len(model_answered(server, served_world)) > 0.9 * len(served_world.active)
    finally:
        server.stop()


def test_a_copied_store_trains_from_its_own_feast_repo_and_loads_its_own_models(
    moved: Copied, served_world: World
) -> None:
    model, info = load_scoring_model(moved.store, served_world.settings, "churn@champion")
    assert "champion" in info.aliases and model.features  # other modules may add a challenger
    fs = feature_store(moved.store, served_world.settings)
    entities = pd.DataFrame(
        {
            "account_id": served_world.active[:5],
            "event_timestamp": [pd.Timestamp(served_world.latest, tz="UTC")] * 5,
        }
    )
    rows = historical_features(fs, entities, "churn_v1")
    assert (
        rows["account_id"].tolist() == served_world.active[:5]
        and rows.drop(columns="account_id").notna().any().any()
    )
    source = Path(fs.get_feature_view("account_features").batch_source.path)  # type: ignore[union-attr]
    assert source.is_relative_to(moved.store.root.resolve())
    # a training in the copy writes its run's files into the copy
    mlflow_client = client(moved.store, served_world.settings)
    run = mlflow_client.create_run(experiment_id(mlflow_client, moved.store, "churn"))
    assert run.info.artifact_uri == f"{artifact_location(moved.store)}/{run.info.run_id}/artifacts"
    mlflow_client.delete_run(run.info.run_id)


def store_check(store: Store) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "retain", "store", "check", "--store", str(store.root), "--json"]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


def test_store_check_passes_a_copy_and_names_each_broken_part_in_one_line(
    moved: Copied, served_world: World
) -> None:
    sound = store_check(moved.store)
    assert sound.returncode == 0, sound.stderr
    findings = json.loads(sound.stdout)["findings"]
    loaded = [f for f in findings if f["part"] == "models" and f["subject"].startswith("churn@champion")]
    assert loaded and f"file://{moved.store.root.resolve()}/mlflow/artifacts/models/" in loaded[0]["said"]

    info = resolve(client(moved.store, served_world.settings), "churn@champion")
    logged = moved.store.root / "mlflow" / "artifacts" / "models" / info.source.removeprefix("models:/")
    model = logged / "artifacts" / "artifacts" / MODEL_ARTIFACT
    model.unlink()
    events = next((moved.store.root / "lake" / "events").glob("event_date=*/*.parquet"))
    events.unlink()
    broken = store_check(moved.store)
    assert broken.returncode == 1
    problems = [line for line in broken.stderr.splitlines() if line.startswith("problem:")]
    assert len(problems) == 2, broken.stderr
    assert problems[0].startswith("problem: tables events: the events table cannot be read")
    assert problems[1].startswith("problem: models churn@champion (version 1): does not load")
