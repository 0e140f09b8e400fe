"""The causal report's doubly robust estimate against an independent implementation: DoubleML's interactive
regression model (`DoubleMLIRM`, the same AIPW score with cross-fitting) with comparable LightGBM
learners and as many folds, on a seeded confounded table with a known effect."""

from __future__ import annotations

import numpy as np
import pandas as pd
from doubleml import DoubleMLData, DoubleMLIRM
from lightgbm import LGBMClassifier

from products.report.run import analyse
from products.report.study import TABLE_CLIP, table_study
from training.causal.doubly_robust import Z95

TRUE_EFFECT = -0.10


def confounded_churn(n: int, seed: int) -> pd.DataFrame:
    """Two confounders raise both the chance of the call and of churn; the call lowers P(churn) by exactly
    0.10 for every row (a linear probability, so the average effect is the effect)."""
    rng = np.random.default_rng(seed)
    usage_drop = rng.uniform(-1, 1, n)
    tickets = rng.normal(size=n)
    called = (rng.random(n) < 1 / (1 + np.exp(-(1.5 * usage_drop + 0.5 * tickets)))).astype(int)
    risk = 0.4 + 0.2 * usage_drop + 0.05 * np.tanh(tickets) + TRUE_EFFECT * called
    churned = (rng.random(n) < risk).astype(int)
    return pd.DataFrame({"usage_drop": usage_drop, "tickets": tickets, "called": called, "churned": churned})


def _learner() -> LGBMClassifier:
    """LightGBM as the report's nuisance models are set (`training.causal.doubly_robust.NUISANCE_PARAMS`)."""
    return LGBMClassifier(
        n_estimators=120,
        learning_rate=0.08,
        num_leaves=15,
        min_child_samples=40,
        subsample=0.8,
        subsample_freq=1,
        colsample_bytree=0.8,
        reg_lambda=1.0,
        n_jobs=1,
        verbose=-1,
        random_state=0,
    )


def test_the_reports_estimate_agrees_with_doublemls_irm_and_both_hold_the_truth() -> None:
    """Agreement: the two estimates differ by less than the smaller of their standard errors (they share
    the data, so only the nuisance fits and folds separate them); each 95% interval holds -0.10."""
    frame = confounded_churn(4_000, seed=3)
    study = table_study(frame, "called", "churned", None, table="churn.csv", seed=0)
    (effect,) = analyse(study).report.effects
    assert None not in (effect.ate, effect.ci_low, effect.ci_high, effect.naive_difference)
    ours, low, high, naive = (
        float(v or 0.0) for v in (effect.ate, effect.ci_low, effect.ci_high, effect.naive_difference)
    )
    ours_se = (high - low) / (2 * Z95)

    data = DoubleMLData(frame, y_col="churned", d_cols="called", x_cols=["usage_drop", "tickets"])
    np.random.seed(0)  # DoubleML draws its folds from numpy's global generator
    irm = DoubleMLIRM(data, _learner(), _learner(), n_folds=study.folds, trimming_threshold=TABLE_CLIP)
    irm.fit()
    theirs, theirs_se = float(irm.coef[0]), float(irm.se[0])
    theirs_low, theirs_high = irm.confint(level=0.95).iloc[0]

    print(f"DR {ours:+.4f} (se {ours_se:.4f}), DoubleML IRM {theirs:+.4f} (se {theirs_se:.4f})")
    assert abs(ours - theirs) < min(ours_se, theirs_se)
    assert low <= TRUE_EFFECT <= high
    assert theirs_low <= TRUE_EFFECT <= theirs_high
    # and both adjust: the naive difference is far off
    assert abs(naive - TRUE_EFFECT) > 3 * ours_se
