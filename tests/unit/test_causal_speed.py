"""The causal report and the uplift models fit what their arms share once (each outcome's baseline, the
binned datasets of a fold's propensity models) and side by side: pinned against the estimates each arm
got from fits of its own before the sharing, on a seeded study whose arms share their rows as the store's
do."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.parallel import Workers
from products.report.run import analyse
from products.report.schema import StoreSource
from products.report.study import Arm, OutcomeValues, Study
from training.causal import doubly_robust
from training.causal.crossfit import Sample, fit_side_by_side

#: (treatment, outcome) -> (ate, ci_low, ci_high), as each arm's own fits gave them (commit f979265)
REFERENCE = {
    ("call", "churn"): (-0.07836732907162902, -0.12165603236060107, -0.03507862578265696),
    ("call", "expansion"): (0.001415297912025763, -0.04316499136422306, 0.04599558718827459),
    ("email", "churn"): (0.0036598621958816428, -0.04539954916473288, 0.052719273556496166),
    ("email", "expansion"): (0.029297485552752182, -0.019765090451907837, 0.07836006155741221),
    ("qbr", "churn"): (0.030388087993982304, -0.022985553626379888, 0.0837617296143445),
    ("qbr", "expansion"): (-0.011430828446089841, -0.06204350008623427, 0.039181843194054586),
}
#: each arm's placebo (its own shuffle of its treatment) and its effective number of treated rows
REFERENCE_PLACEBO = {
    "call": -0.008933429242160708,
    "email": -0.00454941184084497,
    "qbr": -0.0013082071522834689,
}
REFERENCE_EFFECTIVE_TREATED = {
    "call": 308.2257381920188,
    "email": 291.0408851691871,
    "qbr": 274.38489421361356,
}


def shared_study() -> Study:
    """Three actions targeted on different covariates plus a 2% experiment arm, over the same 3,000 rows
    of 600 accounts; `call` lowers churn."""
    rng = np.random.default_rng(11)
    n = 3_000
    accounts = rng.integers(0, 600, n)
    x = rng.normal(size=(n, 4))
    frame = pd.DataFrame(x, columns=["a", "b", "c", "d"])
    frame["tier"] = rng.choice(["smb", "mid", "ent"], n)
    everyone = np.arange(n)
    arms = []
    churn = rng.random(n) < 1 / (1 + np.exp(-(x[:, 0] - 1.0)))
    for k, name in enumerate(["call", "email", "qbr"]):
        targeted = rng.random(n) < 1 / (1 + np.exp(-(x[:, 0] + x[:, k + 1] - 2.5)))
        drawn = rng.random(n) < 0.02
        treated = (targeted | drawn).astype(np.int8)
        churn &= ~((treated == 1) & (rng.random(n) < 0.3 * (k == 0)))
        arms.append(Arm(name, everyone, treated, (drawn & ~targeted).astype(np.int8), np.full(n, 0.02)))
    expand = rng.random(n) < 1 / (1 + np.exp(-(x[:, 1] - 1.5)))
    return Study(
        source=StoreSource(
            store="shared", rows=n, accounts=600, weeks=1, cutoffs=["2025-01-01"] * 2, horizon_days=90
        ),
        frame=frame,
        covariates=["a", "b", "c", "d", "tier"],
        category_levels={"tier": ["ent", "mid", "smb"]},
        arms=arms,
        outcomes=[
            OutcomeValues("churn", churn.astype(float), True, "lower"),
            OutcomeValues("expansion", expand.astype(float), True, "higher"),
        ],
        groups=np.array([f"acc-{a:04d}" for a in accounts], dtype=object),
        segment_columns=["tier"],
        responder_columns=["a", "tier"],
        refute_outcome="churn",
        propensity_clip=0.001,
        folds=3,
        min_effective_treated=20.0,
        seed=5,
    )


def test_shared_fits_give_every_arm_the_estimates_its_own_fits_gave() -> None:
    report = analyse(shared_study(), Workers(2)).report

    got = {(e.treatment, e.outcome): (e.ate, e.ci_low, e.ci_high) for e in report.effects}
    assert got.keys() == REFERENCE.keys()
    for key, expected in REFERENCE.items():
        assert got[key] == pytest.approx(expected, rel=1e-9, abs=1e-12), key
    placebo = {r.treatment: r.ate for r in report.refutations if r.check == "placebo_treatment"}
    assert placebo == pytest.approx(REFERENCE_PLACEBO, rel=1e-9)
    effective = {o.treatment: o.effective_treated for o in report.overlap}
    assert effective == pytest.approx(REFERENCE_EFFECTIVE_TREATED, rel=1e-9)
    assert all(r.passed for r in report.refutations)


def test_a_fold_fits_many_treatments_as_it_fits_each_alone() -> None:
    """One fold's datasets are binned once and relabelled per treatment: each model is the one a fresh
    dataset gives, whatever came before it."""
    rng = np.random.default_rng(3)
    n = 4_000
    values = rng.normal(size=(n, 6))
    values[rng.random(values.shape) < 0.05] = np.nan
    x = doubly_robust.Matrix(values, [f"f{i}" for i in range(6)], [])
    groups = rng.integers(0, 500, n)
    (fit_rows, predict_rows), *_ = doubly_robust.folds(groups, 3, 0)
    labels = [(rng.random(n) < share).astype(np.int8) for share in (0.03, 0.2, 0.0, 0.5)]

    together = doubly_robust.fold_propensities(x, labels, fit_rows, predict_rows, groups, 9, 1)

    for label, shared in zip(labels, together, strict=True):
        (alone,) = doubly_robust.fold_propensities(x, [label], fit_rows, predict_rows, groups, 9, 1)
        np.testing.assert_array_equal(shared, alone)


def test_fits_kept_in_the_cache_are_read_back_and_a_changed_input_is_refitted(tmp_path: Path) -> None:
    """The causal report reuses what uplift training fitted over the same design: a sample's fits are kept
    under a digest of their inputs, read back equal, and never reused once an input changed."""
    rng = np.random.default_rng(4)
    n = 2_000
    x = doubly_robust.Matrix(rng.normal(size=(n, 5)), [f"f{i}" for i in range(5)], [])
    groups = rng.integers(0, 300, n)
    splits = doubly_robust.folds(groups, 2, 1)
    churn = (rng.random(n) < 0.2).astype(float)
    call = (rng.random(n) < 0.1).astype(np.int8)
    sample = Sample(x, splits, groups, 1, outcomes={"churn": churn}, treatments={"call": call})

    (first,) = fit_side_by_side([sample], workers=Workers(1), threads=1, desc="fits", cache=tmp_path)
    (kept,) = tmp_path.glob("*.npz")
    (again,) = fit_side_by_side([sample], workers=Workers(1), threads=1, desc="fits", cache=tmp_path)
    renamed = replace(sample, outcomes={"other": churn}, treatments={"0": call})
    (by_position,) = fit_side_by_side([renamed], workers=Workers(1), threads=1, desc="fits", cache=tmp_path)

    np.testing.assert_array_equal(again.baseline["churn"], first.baseline["churn"])
    np.testing.assert_array_equal(again.targeted["call"], first.targeted["call"])
    np.testing.assert_array_equal(by_position.targeted["0"], first.targeted["call"])
    assert list(tmp_path.glob("*.npz")) == [kept]

    changed = replace(sample, treatments={"call": 1 - call})
    (refitted,) = fit_side_by_side([changed], workers=Workers(1), threads=1, desc="fits", cache=tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 2
    assert not np.allclose(refitted.targeted["call"], first.targeted["call"])
