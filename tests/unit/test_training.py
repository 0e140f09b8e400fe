"""The training pipeline: labels, the time split, tuning, calibration and evaluation against the truth.

Unit tests run on hand-made events and tiny frames; the rest share one simulation (2,000 accounts x 540 days)
and one churn run, and judge the model against the health formula and the simulator's oracle.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from pydantic import ValidationError
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from core.contract import ACCOUNT_SCHEMA, EVENT_SCHEMA
from core.errors import RetainError
from core.settings import Settings
from features.definitions import RENEWAL_GRACE_DAYS
from retain.cli import app
from store.delta import Store
from training.calibration import expected_calibration_error, fit_calibrator
from training.config import TrainConfig, load_config
from training.dataset import (
    LABEL,
    WINDOW,
    TrainingSet,
    binary_labels,
    check_windows,
    split_by_cutoff,
)
from training.evaluate import top_share
from training.hazard import interval_log_odds, person_periods
from training.labels import label_frame
from training.run import fit_and_evaluate, train_model, train_table

HORIZON = 90
#: a small budget: the whole file runs in a few minutes on 2 cores
TRIALS = 8


def utc(text: str) -> datetime:
    return pd.Timestamp(text, tz="UTC").to_pydatetime()


# -- labels on hand-made events ------------------------------------------------------------------------

CUTOFF = "2025-03-31"
LATER = "2025-06-30"


def account(account_id: str, renewal: str, seats: int = 20, arr: float = 10_000.0) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "name": account_id,
        "tier": "mid_market",
        "seats_purchased": seats,
        "arr": arr,
        "contract_start": utc("2024-01-01"),
        "renewal_date": utc(renewal),
    }


def event(account_id: str, ts: str, event_type: str, **props: Any) -> dict[str, Any]:
    return {
        "event_id": f"{account_id}-{event_type}-{ts}",
        "account_id": account_id,
        "ts": utc(ts),
        "event_type": event_type,
        **props,
    }


FAR = "2026-01-15"
ACCOUNTS = [
    account("cancel", FAR),
    account("cancel_after_horizon", FAR),
    account("lapse", "2025-05-15"),
    account("renewed", "2025-05-15"),
    account("renewed_late_in_grace", "2025-05-15"),
    account("lapsed_in_grace_at_cutoff", "2025-03-28"),
    account("renewed_in_grace_at_cutoff", "2025-03-28"),
    account("lapse_after_earlier_renewal", "2024-05-15"),
    account("cancelled_before", FAR),
    account("lapsed_before", "2025-03-01"),
    account("seats_up_10pct", FAR),
    account("seats_up_5pct", FAR),
    account("seats_up_in_two_steps", FAR),
    account("plan_arr_up", FAR),
    account("seats_down", FAR),
    account("seats_up_after_horizon", FAR),
    account("seats_up_before_cutoff", FAR),
]
EVENTS = [
    event("cancel", "2025-05-01", "subscription.cancelled"),
    event("cancel_after_horizon", "2025-07-15", "subscription.cancelled"),
    event("renewed", "2025-05-15", "subscription.renewed", renewal_date=utc("2026-05-15")),
    event("renewed_late_in_grace", "2025-05-19", "subscription.renewed", renewal_date=utc("2026-05-15")),
    event("renewed_in_grace_at_cutoff", "2025-04-02", "subscription.renewed", renewal_date=utc("2026-03-28")),
    event(
        "lapse_after_earlier_renewal", "2024-05-15", "subscription.renewed", renewal_date=utc("2025-05-15")
    ),
    event("cancelled_before", "2025-02-01", "subscription.cancelled"),
    event("seats_up_10pct", "2025-04-10", "seats.changed", seats_from=20, seats_to=22),
    event("seats_up_5pct", "2025-04-10", "seats.changed", seats_from=20, seats_to=21),
    event("seats_up_in_two_steps", "2025-04-10", "seats.changed", seats_from=20, seats_to=21),
    event("seats_up_in_two_steps", "2025-05-10", "seats.changed", seats_from=21, seats_to=22),
    event(
        "plan_arr_up",
        "2025-04-20",
        "plan.changed",
        plan_from="team",
        plan_to="business",
        arr_from=10_000.0,
        arr_to=13_000.0,
    ),
    event("seats_down", "2025-04-10", "seats.changed", seats_from=20, seats_to=15),
    event("seats_up_after_horizon", "2025-07-10", "seats.changed", seats_from=20, seats_to=30),
    event("seats_up_before_cutoff", "2025-03-01", "seats.changed", seats_from=20, seats_to=30),
    event("seats_up_before_cutoff", "2025-04-10", "seats.changed", seats_from=30, seats_to=32),
    # the store's last event: T + horizon + grace is covered for the first cutoff, not the second
    event("cancel_after_horizon", "2025-08-01", "user.session", duration_min=5.0),
]
CHURN = {
    "cancel": 1,
    "cancel_after_horizon": 0,
    "lapse": 1,
    "renewed": 0,
    "renewed_late_in_grace": 0,
    "lapsed_in_grace_at_cutoff": 1,
    "renewed_in_grace_at_cutoff": 0,
    "lapse_after_earlier_renewal": 1,
}
EXPANSION = {
    "cancel": 0,
    "seats_up_10pct": 1,
    "seats_up_5pct": 0,
    "seats_up_in_two_steps": 1,
    "plan_arr_up": 1,
    "seats_down": 0,
    "seats_up_after_horizon": 0,
    "seats_up_before_cutoff": 0,
}


@pytest.fixture
def hand_made() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    events = pa.Table.from_pylist(EVENTS, schema=EVENT_SCHEMA)
    accounts = pa.Table.from_pylist(ACCOUNTS, schema=ACCOUNT_SCHEMA)
    con.from_arrow(events).create_view("events")
    con.from_arrow(accounts).create_view("accounts")
    return con


def hand_made_rows() -> pd.DataFrame:
    ids = [a["account_id"] for a in ACCOUNTS]
    return pd.DataFrame(
        {"account_id": ids * 2, "cutoff": pd.to_datetime([CUTOFF] * len(ids) + [LATER] * len(ids), utc=True)}
    )


@pytest.mark.parametrize(("target", "expected"), [("churn", CHURN), ("expansion", EXPANSION)])
def test_labels_on_hand_made_events(
    hand_made: duckdb.DuckDBPyConnection, target: Any, expected: dict[str, int]
) -> None:
    labels = label_frame(hand_made, hand_made_rows(), target, HORIZON)
    first = labels["cutoff"] == pd.Timestamp(CUTOFF, tz="UTC")
    got = dict(zip(labels.loc[first, "account_id"], labels.loc[first, "label"].astype(int), strict=True))
    assert {name: got[name] for name in expected} == expected
    already_churned = {"cancelled_before", "lapsed_before"}
    assert not already_churned & set(labels["account_id"]), "an account that already churned is no row"
    assert labels.loc[first, "matured"].all()
    assert not labels.loc[~first, "matured"].any(), "the later cutoff's horizon is not over yet"


def test_a_churn_carries_its_days_after_the_cutoff(hand_made: duckdb.DuckDBPyConnection) -> None:
    """The time-to-event learner's input: days to the first cancellation or the lapsed renewal date (0 for
    one already passed at the cutoff), and none for an account that stays or for expansion."""
    rows = hand_made_rows()
    churn = label_frame(hand_made, rows, "churn", HORIZON)
    first = churn[churn["cutoff"] == pd.Timestamp(CUTOFF, tz="UTC")].set_index("account_id")["days_to_event"]
    cutoff = pd.Timestamp(CUTOFF, tz="UTC")
    assert first["cancel"] == (pd.Timestamp("2025-05-01", tz="UTC") - cutoff).days
    assert first["lapse"] == (pd.Timestamp("2025-05-15", tz="UTC") - cutoff).days
    assert first["lapsed_in_grace_at_cutoff"] == 0
    assert first[["renewed", "cancel_after_horizon", "renewed_in_grace_at_cutoff"]].isna().all()
    assert label_frame(hand_made, rows, "expansion", HORIZON)["days_to_event"].isna().all()


def test_churn_labels_wait_out_the_renewal_grace_to_mature(hand_made: duckdb.DuckDBPyConnection) -> None:
    """A renewal due at the horizon's end may be recorded up to the grace later: churn matures then,
    expansion at the horizon's end."""
    last = pd.Timestamp("2025-08-01", tz="UTC")
    cutoff = last - pd.Timedelta(days=HORIZON + RENEWAL_GRACE_DAYS) + pd.Timedelta(days=1)
    rows = pd.DataFrame({"account_id": ["lapse", "seats_up_10pct"], "cutoff": [cutoff.floor("D")] * 2})
    churn = label_frame(hand_made, rows, "churn", HORIZON)
    expansion = label_frame(hand_made, rows, "expansion", HORIZON)
    assert not churn["matured"].any()
    assert expansion["matured"].all()


# -- the split, metrics and inputs: pure ---------------------------------------------------------------

MONTHS = list(pd.date_range("2024-01-31", periods=12, freq="ME", tz="UTC"))


def test_split_takes_the_latest_matured_cutoffs_for_test_then_calibration() -> None:
    windows = split_by_cutoff(MONTHS, test_cutoffs=1, calibration_cutoffs=2)
    assert [c for c, w in windows.items() if w == "test"] == MONTHS[-1:]
    assert sorted(c for c, w in windows.items() if w == "calibration") == MONTHS[-3:-1]
    assert sorted(c for c, w in windows.items() if w == "train") == MONTHS[:-3]


def test_the_embargo_leaves_out_cutoffs_whose_labels_reach_the_next_window() -> None:
    gap = pd.Timedelta(days=HORIZON)
    windows = split_by_cutoff(MONTHS, 1, 1, gap)
    test = min(c for c, w in windows.items() if w == "test")
    calibration = min(c for c, w in windows.items() if w == "calibration")
    assert all(c + gap <= test for c, w in windows.items() if w != "test")
    assert all(c + gap <= calibration for c, w in windows.items() if w == "train")
    assert len(windows) < len(MONTHS)


def test_too_few_matured_cutoffs_is_a_clear_error() -> None:
    with pytest.raises(RetainError, match="too few matured cutoffs"):
        split_by_cutoff(MONTHS[:3], test_cutoffs=1, calibration_cutoffs=2)


def test_top_decile_counts_ties_fractionally() -> None:
    y = np.array([1, 0, 0, 0, 0, 0, 0, 0, 0, 0] * 2)
    flat = np.full(20, 0.5)
    lift, recall = top_share(y, flat)
    assert lift == pytest.approx(1.0) and recall == pytest.approx(0.1)
    lift, recall = top_share(y, y + 0.0)
    assert lift == pytest.approx(10.0) and recall == pytest.approx(1.0)


def test_calibration_fixes_a_biased_score() -> None:
    rng = np.random.default_rng(0)
    truth = rng.uniform(0.0, 0.3, 20_000)
    y = (rng.random(truth.size) < truth).astype(int)
    biased = np.clip(truth * 2.5, 0, 1)
    for method in ("platt", "isotonic"):
        calibrated = fit_calibrator(method, biased[:10_000], y[:10_000]).predict(biased[10_000:])
        assert expected_calibration_error(y[10_000:], calibrated) < 0.02
    assert expected_calibration_error(y, biased) > 0.1


def test_labels_read_as_binary_in_the_usual_spellings() -> None:
    column = pd.Series(["Yes", "no", "TRUE", "false", "1", "0", None, 1, 0, True], name="churned")
    assert binary_labels(column).tolist() == [1, 0, 1, 0, 1, 0, pd.NA, 1, 0, 1]
    with pytest.raises(RetainError, match="not binary"):
        binary_labels(pd.Series(["yes", "maybe"], name="churned"))


def test_config_refuses_unknown_keys_and_bad_values(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("n_trials: 5\nn_trails: 6\n")
    with pytest.raises(RetainError, match="n_trails"):
        load_config(path)
    path.write_text("calibration: histogram\n")
    with pytest.raises(RetainError, match="calibration"):
        load_config(path)
    defaults = load_config(Path(__file__).parents[2] / "experiments" / "churn.yaml")
    assert defaults.n_trials == 20 and defaults.monotone


def test_a_store_without_a_feature_table_is_a_clear_error(tmp_path: Path) -> None:
    store = Store(tmp_path / "empty")
    with pytest.raises(RetainError, match="no feature table"):
        train_model(store, Settings(home=store.root), "churn", TrainConfig())


def test_cli_wants_exactly_one_source() -> None:
    result = CliRunner().invoke(app, ["train"])
    assert isinstance(result.exception, RetainError)
    assert "either --model" in str(result.exception)


# -- bring your own table ------------------------------------------------------------------------------


def snapshot_table(rows: int = 6_000, seed: int = 3) -> pd.DataFrame:
    """Monthly snapshots with numbers, a flag, a category, free text and yes/no labels."""
    rng = np.random.default_rng(seed)
    logins = rng.gamma(2.0, 10.0, rows)
    tickets = rng.poisson(2.0, rows)
    plan = rng.choice(["basic", "pro", "enterprise"], rows)
    sso = rng.random(rows) < 0.5
    logit = -2.0 - 0.08 * logins + 0.4 * tickets + np.where(plan == "basic", 1.0, 0.0) - 0.5 * sso
    churned = rng.random(rows) < 1 / (1 + np.exp(-logit))
    return pd.DataFrame(
        {
            "customer": [f"c{i % 1500:04d}" for i in range(rows)],
            "month": [f"2025-{1 + i // 1500:02d}-01" for i in range(rows)],
            "logins": np.where(rng.random(rows) < 0.05, np.nan, logins),
            "tickets": tickets,
            "plan": plan,
            "has_sso": sso,
            "note": [f"free text {i}" for i in range(rows)],
            "churned": np.where(churned, "yes", "no"),
        }
    )


def test_a_bring_your_own_table_trains_with_mixed_types(tmp_path: Path) -> None:
    path = tmp_path / "snapshots.csv"
    snapshot_table().to_csv(path, index=False)
    # past cv_max_rows, a table keeps its split: by time when it has a time column
    config = TrainConfig(n_trials=4, plots=False, min_window_positives=5, cv_max_rows=0)
    result = train_table(path, "churned", "customer", "month", "acme_churn", config, settings=Settings())
    assert result.metrics["model"]["auc"] > 0.7
    assert result.metrics["health"] is None and result.metrics["oracle"] is None
    assert result.model.kind == "table" and result.model.name == "acme_churn"
    assert set(result.model.features) == {"logins", "tickets", "plan", "has_sso"}
    assert result.model.categories == {"plan": ["basic", "enterprise", "pro"]}
    assert "note" in result.lineage["columns_dropped"]
    assert result.lineage["windows"]["test"]["rows"] == 1500, "the latest month is the test"
    # below it (the default 50,000 rows), cross-validated with each customer's months in one fold
    small = config.model_copy(update={"cv_max_rows": 50_000})
    untimed = train_table(path, "churned", "customer", None, "acme_churn", small, settings=Settings())
    assert untimed.metrics["model"]["auc"] > 0.7
    assert untimed.metrics["rows_refitted"] == 6_000
    assert (
        list(untimed.lineage["windows"]) == ["train"] and untimed.lineage["windows"]["train"]["rows"] == 6_000
    )


def test_a_bring_your_own_table_without_a_good_label_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "snapshots.parquet"
    table = snapshot_table(600)
    table.assign(churned=np.where(table["churned"] == "yes", "yes", "perhaps")).to_parquet(path)
    with pytest.raises(RetainError, match="not binary"):
        train_table(path, "churned", "customer", None, "x", TrainConfig(), settings=Settings())
    with pytest.raises(RetainError, match="no column 'label'"):
        train_table(path, "label", "customer", None, "x", TrainConfig(), settings=Settings())


def windowed_rows(windows: np.ndarray, labels: np.ndarray, **columns: np.ndarray) -> pd.DataFrame:
    """A training frame of one cutoff: an account per row, its window, label and the given columns."""
    return pd.DataFrame(
        {
            "account_id": [f"a{i}" for i in range(len(windows))],
            "cutoff": pd.Timestamp("2025-01-31", tz="UTC"),
            **columns,
            WINDOW: windows,
            LABEL: labels,
        }
    )


def test_refitting_on_the_calibration_window_learns_what_only_the_latest_cutoffs_show() -> None:
    """A signal that appears only in the latest labelled cutoffs (here a column constant before them) is
    lost to a model fitted on the train window alone; refitted on train and calibration, the model and its
    logistic peer both use it on the test window."""
    rng = np.random.default_rng(4)
    windows = np.repeat(["train", "calibration", "test"], [6_000, 2_000, 2_000])
    old, new = rng.normal(size=len(windows)), rng.normal(size=len(windows))
    new[windows == "train"] = 0.0
    logit = 0.8 * old + 1.6 * new - 2.0
    labels = (rng.random(len(windows)) < 1 / (1 + np.exp(-logit))).astype(int)
    rows = windowed_rows(windows, labels, usage_old=old, usage_new=new)
    config = TrainConfig(n_trials=3, plots=False, monotone=False, slices=[]).resolved(Settings())
    data = TrainingSet(
        rows, ["usage_old", "usage_new"], {}, "account_id", "cutoff", {"windows": check_windows(rows, config)}
    )
    alone = fit_and_evaluate(data, "churn", "churn", config).metrics
    refitted = fit_and_evaluate(
        data, "churn", "churn", config.model_copy(update={"refit_on_calibration": True})
    ).metrics
    assert refitted["model"]["auc"] > alone["model"]["auc"] + 0.1, (alone["model"], refitted["model"])
    assert refitted["logistic"]["auc"] > alone["logistic"]["auc"] + 0.1


# -- the hazard learner ----------------------------------------------------------------------------------


def test_person_periods_keep_each_row_at_risk_until_its_churn() -> None:
    days = np.array([5.0, 40.0, 89.5, 90.0, np.nan])
    periods = person_periods(days, horizon_days=90, intervals=3)
    assert periods.source.tolist() == [0, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]
    assert periods.interval.tolist() == [0, 0, 1, 0, 1, 2, 0, 1, 2, 0, 1, 2]
    assert periods.event.tolist() == [1, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 0]
    # interval 0: 1 churn in 5 rows at risk; the baseline is its log-odds with half an event of prior
    baseline = interval_log_odds(periods, 3)
    assert baseline[0] == pytest.approx(np.log(1.5 / 4.5))


def hazard_world(rows: int, seed: int) -> tuple[TrainingSet, np.ndarray]:
    """Proportional-odds hazards in three 30-day intervals driven by two columns, split into windows, and
    each row's true chance of churning within the 90 days."""
    rng = np.random.default_rng(seed)
    windows = np.repeat(["train", "calibration", "test"], [rows * 6 // 10, rows * 2 // 10, rows * 2 // 10])
    x1, x2 = rng.normal(size=len(windows)), rng.normal(size=len(windows))
    score = 0.9 * x1 - 0.6 * x2
    hazards = 1 / (1 + np.exp(-(np.array([-3.2, -2.8, -2.4])[None, :] + score[:, None])))
    churned_in = np.where(rng.random(hazards.shape) < hazards, np.arange(3)[None, :], 3).min(axis=1)
    days = np.where(churned_in < 3, churned_in * 30 + rng.uniform(0, 30, len(windows)), np.nan)
    frame = windowed_rows(windows, (churned_in < 3).astype(int), usage=x1, tickets=x2, days_to_event=days)
    config = TrainConfig(n_trials=3, plots=False, monotone=False, slices=[]).resolved(Settings())
    data = TrainingSet(
        frame, ["usage", "tickets"], {}, "account_id", "cutoff", {"windows": check_windows(frame, config)}
    )
    return data, 1 - np.prod(1 - hazards, axis=1)[windows == "test"]


def test_the_hazard_learner_ranks_and_calibrates_like_the_truth() -> None:
    """Fitted on person-period rows, the hazard learner's single score ranks the test window as the true
    90-day chance does, and its calibrated probabilities match the churn rate."""
    data, truth = hazard_world(12_000, seed=5)
    config = TrainConfig(n_trials=3, plots=False, monotone=False, slices=[], learner="hazard")
    result = fit_and_evaluate(data, "churn", "churn", config.resolved(Settings()))
    m = result.metrics
    assert m["learner"] == "hazard"
    truth_auc = roc_auc_score(data.labels("test"), truth)
    assert m["model"]["auc"] >= truth_auc - 0.015, (m["model"]["auc"], truth_auc)
    assert m["ece"] < 0.03
    served = result.model.predict(data.part("test"))
    assert abs(served.mean() - data.labels("test").mean()) < 0.02


def test_the_hazard_learner_refuses_what_has_no_event_times(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="tuned by AUC"):
        TrainConfig(learner="hazard", objective_metric="log_loss")
    data, _ = hazard_world(3_000, seed=6)
    config = TrainConfig(n_trials=1, plots=False, slices=[], learner="hazard").resolved(Settings())
    with pytest.raises(RetainError, match="expansion model has no event times"):
        fit_and_evaluate(data, "expansion", "expansion", config)
    path = tmp_path / "snapshots.parquet"
    snapshot_table(600).to_parquet(path)
    with pytest.raises(RetainError, match="a table has no event times"):
        train_table(path, "churned", "customer", None, "x", config, settings=Settings())
