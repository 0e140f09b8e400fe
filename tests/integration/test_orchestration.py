"""The scheduler's code location (`retain/orchestration.py`) run in process on a small simulated store: the
monthly retrain trains each model and puts it through the gate, the weekly loop makes the scores, the plan
and the digest with their figures as Dagster metadata, checked against the files and the feature table;
a failing step fails the run under its own name and nothing below it is materialised; a challenger the
gate refuses is a result, not a failure."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest
import yaml

from features.definitions import FEATURES
from features.stored import read_features
from retain import api
from retain.orchestration import RetainResource, definitions, defs
from training.config import TrainConfig

#: the Monday after the simulation's last day (2025-08-24): the coming week, as on a Monday morning
WEEK = date(2025, 8, 25)
#: the feature table's latest month end before it: what the loop scores
CUTOFF = date(2025, 7, 31)
WEEKLY = ["telemetry", "features", "scores", "plan", "digest"]
MONTHLY = ["telemetry", "features", "churn_model", "expansion_model", "uplift_model", "champions"]
#: small and quick: two tuning trials; the uplift model's folds fitted in this process
TRAIN = TrainConfig(n_trials=2, plots=False, min_train_rows=200, min_window_positives=5)
UPLIFT = {"min_effective_treated": 20, "folds": 2, "jobs": 1}
#: a churn challenger blind to all but region and industry: the gate keeps the champion
BLIND = TRAIN.model_copy(
    update={"exclude_features": [f.name for f in FEATURES if f.name not in {"region", "industry"}]}
)


@dataclass(frozen=True)
class World:
    root: Path

    @property
    def store(self) -> Path:
        return self.root / "store"

    @property
    def simulation(self) -> Path:
        return self.root / "sim"

    def resource(self, **changes: Any) -> RetainResource:
        """Both jobs' resource on this world: its store, the simulation as the source, small trainings."""
        fields = {
            "store": str(self.store),
            "source": str(self.simulation),
            "train_config": str(self.root / "train.yaml"),
            "uplift_config": str(self.root / "uplift.yaml"),
            **changes,
        }
        return RetainResource(**fields)


def _config(path: Path, config: TrainConfig | dict[str, Any]) -> Path:
    body = config if isinstance(config, dict) else config.model_dump(mode="json", exclude_defaults=True)
    path.write_text(yaml.safe_dump(body))
    return path


def _run(world: World, job: str, resource: RetainResource | None = None, **kwargs: Any) -> Any:
    """`job` of the code location over `resource` (default: the world's), in process, failures kept."""
    location = definitions(resource if resource is not None else world.resource())
    return location.resolve_job_def(job).execute_in_process(raise_on_error=False, **kwargs)


def _materialised(result: Any) -> dict[str, dict[str, Any]]:
    """Each materialised asset's metadata as plain values, in the order they were materialised."""
    return {
        event.asset_key.to_user_string(): {
            key: getattr(value, "value", value) for key, value in event.materialization.metadata.items()
        }
        for event in result.get_asset_materialization_events()
    }


def _failure(result: Any, step: str) -> str:
    """The one line a failed step says (a RetainError's message, no traceback)."""
    return str(result.failure_data_for_node(step).user_failure_data.description)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """400 accounts over 420 days simulated; nothing ingested: the retrain's first step does that."""
    made = World(tmp_path_factory.mktemp("orchestration"))
    api.simulate(made.simulation, accounts=400, days=420, seed=5, start=date(2024, 7, 1))
    _config(made.root / "train.yaml", TRAIN)
    _config(made.root / "uplift.yaml", UPLIFT)
    return made


@pytest.fixture(scope="module")
def retrained(world: World) -> Any:
    return _run(world, "monthly_retrain")


@pytest.fixture(scope="module")
def weekly(world: World, retrained: Any) -> Any:
    assert retrained.success, _materialised(retrained)
    return _run(world, "weekly_loop", run_config={"week": WEEK.isoformat()})


def test_the_code_location_has_both_jobs_on_their_schedules_and_the_asset_chain() -> None:
    dg.Definitions.validate_loadable(defs)
    jobs = {
        name: defs.resolve_job_def(name).asset_layer.executable_asset_keys
        for name in ("weekly_loop", "monthly_retrain")
    }
    assert {key.to_user_string() for key in jobs["weekly_loop"]} == set(WEEKLY)
    assert {key.to_user_string() for key in jobs["monthly_retrain"]} == set(MONTHLY)
    schedules = {s.job_name: (s.cron_schedule, s.execution_timezone) for s in defs.schedules}
    assert schedules == {"weekly_loop": ("0 6 * * 1", "UTC"), "monthly_retrain": ("0 3 1 * *", "UTC")}
    graph = defs.resolve_asset_graph()
    parents = {
        key.to_user_string(): {p.to_user_string() for p in graph.get(key).parent_keys}
        for key in graph.get_all_asset_keys()
    }
    assert parents["features"] == {"telemetry"} and parents["digest"] == {"plan"}
    assert parents["scores"] == {"features", "champions"} and parents["plan"] == {"scores", "champions"}
    assert parents["champions"] == {"churn_model", "expansion_model", "uplift_model"}


def test_the_monthly_retrain_ingests_builds_trains_and_puts_each_model_through_the_gate(
    retrained: Any,
) -> None:
    assert retrained.success
    done = _materialised(retrained)
    assert list(done) == MONTHLY
    assert done["telemetry"]["rows_accepted"] > 0 and done["telemetry"]["rows_quarantined"] == 0
    assert done["features"]["latest_cutoff"] == CUTOFF.isoformat()
    for kind in ("churn", "expansion", "uplift"):
        assert done[f"{kind}_model"]["version"] == "1"
        # the first version of a name is its champion already: the gate has nothing to decide
        assert done["champions"][f"{kind}_decision"] == "unchanged"
        assert done["champions"][f"{kind}_champion"] == "1"
    assert 0.5 < done["churn_model"]["test_auc"] <= 1
    assert done["uplift_model"]["usable_actions"] and done["champions"]["refused"] == "none"


def test_the_weekly_loop_runs_end_to_end_with_its_figures_as_metadata(weekly: Any, world: World) -> None:
    assert weekly.success
    done = _materialised(weekly)
    assert list(done) == WEEKLY
    # the same source again: every row is one the store holds
    assert done["telemetry"]["rows_accepted"] == 0 and done["telemetry"]["duplicates_skipped"] > 0
    cutoffs = read_features(api.open_store(world.store), columns=["cutoff"]).to_pandas()["cutoff"]
    active = int((cutoffs.dt.date == CUTOFF).sum())  # every account active at the cutoff, scored once
    scores = done["scores"]
    assert scores["cutoff"] == CUTOFF.isoformat() and scores["churn_champion"] == "1"
    assert scores["rows_scored"] == active == len(pd.read_parquet(scores["path"]))
    planned = pd.read_csv(done["plan"]["path"])
    assert done["plan"]["plan_size"] == planned["action"].notna().sum() > 0
    assert done["plan"]["holdout"] == planned["holdout"].sum() > 0
    # the CSV lists the planned and the held-out accounts; the others get no action this week
    assert done["plan"]["accounts"] == len(planned) + done["plan"]["no_action"]
    assert done["plan"]["uplift_champion"] == "1"
    report = json.loads(Path(done["digest"]["json"]).read_text())
    assert Path(done["digest"]["html"]).parent == world.store / "reports"
    assert report["week"] == WEEK.isoformat() and done["digest"]["headlines"]


def test_a_failing_first_step_fails_the_run_under_its_name_and_nothing_is_materialised(
    world: World, retrained: Any
) -> None:
    missing = world.root / "no-such-export"
    failed = _run(
        world, "weekly_loop", world.resource(source=str(missing)), run_config={"week": WEEK.isoformat()}
    )
    assert not failed.success and failed.get_failed_step_keys() == {"telemetry"}
    assert _failure(failed, "telemetry") == f"{missing} does not exist"
    assert _materialised(failed) == {}


@pytest.mark.parametrize(
    ("week", "says"),
    [
        ("2024-07-01", "the feature table holds no cutoff on or before 2024-07-01"),
        ("2025-08-26", "week 2025-08-26: not a Monday; its week starts on 2025-08-25"),
    ],
)
def test_a_failing_scoring_step_stops_the_loop_before_the_plan_and_the_digest(
    world: World, retrained: Any, week: str, says: str
) -> None:
    steps = [dg.AssetKey(name) for name in ("scores", "plan", "digest")]
    failed = _run(world, "weekly_loop", asset_selection=steps, run_config={"week": week})
    assert not failed.success and failed.get_failed_step_keys() == {"scores"}
    assert says in _failure(failed, "scores")
    assert _materialised(failed) == {}


def test_with_no_source_nothing_is_ingested_and_the_metadata_says_when_events_were_last_written(
    world: World, retrained: Any
) -> None:
    quiet = _run(
        world, "weekly_loop", world.resource(source=None), asset_selection=[dg.AssetKey("telemetry")]
    )
    assert quiet.success
    said = _materialised(quiet)["telemetry"]
    assert said["source"] == "none configured" and "T" in said["events_written_at"]


def test_a_challenger_the_gate_refuses_is_a_result_not_a_failure(world: World, weekly: Any) -> None:
    blind = world.resource(train_config=str(_config(world.root / "blind.yaml", BLIND)))
    steps = [dg.AssetKey("churn_model"), dg.AssetKey("champions")]
    kept = _run(world, "monthly_retrain", blind, asset_selection=steps)
    assert kept.success
    done = _materialised(kept)
    assert list(done) == ["churn_model", "champions"] and done["churn_model"]["version"] == "2"
    assert done["champions"]["churn_decision"] == "refused" and done["champions"]["churn_champion"] == "1"
    assert done["champions"]["refused"] == "churn"
    assert done["champions"]["expansion_decision"] == done["champions"]["uplift_decision"] == "unchanged"
