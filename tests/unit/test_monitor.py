"""The monitor's measures on frames with a known answer: PSI, CBPE, realised metrics, plan impact."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from products.monitor import drift, impact, performance


def test_psi_is_small_for_the_same_population_and_large_for_a_shifted_one() -> None:
    rng = np.random.default_rng(1)
    reference = pd.Series(rng.gamma(2.0, 10.0, 5_000))
    assert drift.psi(reference, pd.Series(rng.gamma(2.0, 10.0, 600))) < drift.WATCH
    shifted = drift.psi(reference, pd.Series(rng.gamma(2.0, 10.0, 600) * 0.5))
    assert shifted >= drift.DRIFTED
    assert drift.level(shifted) == "drifted"


def test_psi_reads_categories_flags_and_missing_values() -> None:
    tiers = pd.Series(["enterprise"] * 50 + ["trial"] * 50)
    assert drift.psi(tiers, tiers) == pytest.approx(0.0)
    assert drift.psi(tiers, pd.Series(["trial"] * 90 + ["enterprise"] * 10)) > drift.DRIFTED
    flags = pd.Series([0, 1] * 50)
    assert drift.psi(flags, pd.Series([1] * 100)) > drift.DRIFTED
    numbers = pd.Series(np.arange(100.0))
    assert drift.psi(numbers, pd.Series([np.nan] * 100)) > drift.DRIFTED


def test_feature_drift_compares_each_later_cutoff_with_the_reference_window() -> None:
    rng = np.random.default_rng(2)
    cutoffs = pd.date_range("2025-01-31", periods=5, freq="ME", tz="UTC")
    rows = pd.concat(
        [
            pd.DataFrame(
                {"cutoff": c, "x": rng.normal(3.0 if i >= 3 else 0.0, 1.0, 400), "y": rng.normal(size=400)}
            )
            for i, c in enumerate(cutoffs)
        ]
    )
    found = {(d.feature, d.cutoff): d for d in drift.feature_drift(rows, list(cutoffs[:2]), ["x", "y"])}
    assert set(found) == {(f, str(c.date())) for f in ("x", "y") for c in cutoffs[2:]}
    assert found[("x", "2025-03-31")].level == "stable"
    assert found[("x", "2025-04-30")].level == "drifted"
    assert all(found[("y", str(c.date()))].level == "stable" for c in cutoffs[2:])


def test_auc_by_ranks_equals_scikit_learn_with_ties() -> None:
    rng = np.random.default_rng(3)
    p = rng.integers(0, 20, 500) / 20
    y = (rng.random(500) < p).astype(int)
    assert performance.auc_of(y, p)[0] == pytest.approx(roc_auc_score(y, p))
    assert performance.realised(y, p).auc == pytest.approx(roc_auc_score(y, p), abs=1e-6)


def test_cbpe_interval_holds_the_realised_auc_of_a_calibrated_model_about_95_times_in_100() -> None:
    rng = np.random.default_rng(4)
    inside = 0
    for trial in range(100):
        p = rng.beta(1.0, 8.0, 600)
        y = (rng.random(600) < p).astype(int)
        estimate = performance.estimated(p, seed=trial, draws=200)
        assert estimate.auc_low is not None and estimate.auc_high is not None
        inside += estimate.auc_low <= performance.realised(y, p).auc <= estimate.auc_high  # type: ignore[operator]
    assert 88 <= inside <= 100


def test_cbpe_says_nothing_of_auc_when_no_positive_can_occur() -> None:
    estimate = performance.estimated(np.zeros(50), seed=0)
    assert estimate.auc is None and estimate.brier == 0.0


def _plan_rows(rng: np.random.Generator, weeks: int, accounts: int, effect: float) -> pd.DataFrame:
    """Weekly plans over the same accounts with a 10% holdout, churn 10% lowered by `effect` in the plan."""
    frames = []
    for w in range(weeks):
        held = rng.random(accounts) < 0.1
        churn = 0.10 - np.where(held, 0.0, effect)
        frames.append(
            pd.DataFrame(
                {
                    "week": pd.Timestamp("2025-03-03", tz="UTC") + pd.Timedelta(weeks=w),
                    "account_id": [f"a{i}" for i in range(accounts)],
                    "arm": np.where(held, "holdout", np.where(rng.random(accounts) < 0.3, "chosen", "none")),
                    "arr": 10_000.0,
                    "churned": (rng.random(accounts) < churn).astype(int),
                    "expanded": 0,
                    "matured": True,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def test_plan_impact_interval_covers_the_true_churn_prevented() -> None:
    rng = np.random.default_rng(5)
    rows = _plan_rows(rng, weeks=4, accounts=3_000, effect=0.03)
    found = impact.plan_impact(rows, seed=1, draws=400)
    in_plan = int((rows["arm"] != "holdout").sum())
    truth = 0.03 * in_plan
    assert found.churn_prevented is not None and found.arr_kept is not None
    assert found.churn_prevented.low <= truth <= found.churn_prevented.high
    assert found.arr_kept.estimate == pytest.approx(found.churn_prevented.estimate * 10_000.0, rel=1e-4)
    assert len(found.weeks) == 4 and "kept an estimated $" in found.sentence


def test_plan_impact_waits_for_labels_and_needs_a_holdout() -> None:
    rng = np.random.default_rng(6)
    rows = _plan_rows(rng, weeks=2, accounts=200, effect=0.0)
    rows.loc[rows["week"] == rows["week"].max(), "matured"] = False
    rows.loc[rows["week"] == rows["week"].min(), "arm"] = "none"
    found = impact.plan_impact(rows, seed=1)
    assert found.weeks == [] and found.churn_prevented is None
    assert found.pending == ["2025-03-10"]
    assert "await their 90-day labels" in found.sentence
