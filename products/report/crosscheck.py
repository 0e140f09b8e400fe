"""A table's estimate cross-checked by DoubleML (`--engine doubleml`): its interactive regression model
(`DoubleMLIRM`, the same AIPW score) on the same rows and covariates, with LightGBM learners set as the
report's nuisance models, as many folds and the same propensity clip. Two implementations that share only
the data should agree within their standard errors; where they do not, the nuisance fits decide the
answer, and the report says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.errors import RetainError
from products.report.schema import CrossCheck, finite
from products.report.wording import amount, interval
from training.causal import doubly_robust

#: the two estimates disagree when they differ by more than this many standard errors of their difference
DISAGREE_Z = doubly_robust.Z95
ENGINE = "DoubleML DoubleMLIRM"


@dataclass(frozen=True)
class IrmSettings:
    """How DoubleML is run: folds and the propensity clip as the report's, `seed` for its folds."""

    folds: int
    clip: float
    seed: int


def _learners(binary: bool) -> tuple[object, object]:
    """ml_g (the outcome) and ml_m (the propensity): LightGBM as the nuisance models, fixed rounds."""
    from lightgbm import LGBMClassifier, LGBMRegressor

    p = doubly_robust.NUISANCE_PARAMS
    common = {
        "n_estimators": doubly_robust.NUISANCE_ROUNDS,
        "learning_rate": p["learning_rate"],
        "num_leaves": p["num_leaves"],
        "min_child_samples": p["min_data_in_leaf"],
        "subsample": p["bagging_fraction"],
        "subsample_freq": p["bagging_freq"],
        "colsample_bytree": p["feature_fraction"],
        "reg_lambda": p["lambda_l2"],
        "n_jobs": 1,
        "verbose": -1,
        "random_state": 0,
    }
    outcome = LGBMClassifier(**common) if binary else LGBMRegressor(**common)
    return outcome, LGBMClassifier(**common)


def irm_effect(
    x: doubly_robust.Matrix, treated: np.ndarray, y: np.ndarray, binary: bool, settings: IrmSettings
) -> doubly_robust.Effect:
    """DoubleML's IRM estimate of the average effect over these rows (categories as their level codes)."""
    try:
        from doubleml import DoubleMLData, DoubleMLIRM
    except ImportError:  # pragma: no cover - doubleml ships in the dev extra
        raise RetainError("--engine doubleml needs DoubleML: pip install doubleml==0.11.4") from None
    names = [f"x{i}" for i in range(len(x.columns))]
    frame = pd.DataFrame(x.values, columns=names).assign(_t=treated.astype(float), _y=y)
    data = DoubleMLData(frame, y_col="_y", d_cols="_t", x_cols=names)
    ml_g, ml_m = _learners(binary)
    state = np.random.get_state()
    np.random.seed(settings.seed)  # DoubleML draws its folds from numpy's global generator
    try:
        irm = DoubleMLIRM(data, ml_g, ml_m, n_folds=settings.folds, trimming_threshold=settings.clip)
        irm.fit()
    finally:
        np.random.set_state(state)
    ate, se = float(irm.coef[0]), float(irm.se[0])
    t = treated == 1
    naive = float(y[t].mean() - y[~t].mean())
    return doubly_robust.Effect(
        ate,
        se,
        ate - doubly_robust.Z95 * se,
        ate + doubly_robust.Z95 * se,
        naive,
        int(t.sum()),
        int((~t).sum()),
    )


def cross_check(
    treatment: str, outcome: str, ours: doubly_robust.Effect, theirs: doubly_robust.Effect, binary: bool
) -> CrossCheck:
    """The two estimates side by side, whether they disagree beyond their standard errors, in words."""
    gap = abs(ours.ate - theirs.ate)
    limit = DISAGREE_Z * math.hypot(ours.se, theirs.se)
    disagree = bool(gap > limit)
    apart, line = amount(gap, binary).lstrip("+"), amount(limit, binary).lstrip("+")
    said = (
        f"DoubleML's IRM gives {amount(theirs.ate, binary)} "
        f"({interval(theirs.ci_low, theirs.ci_high, binary)}), this report {amount(ours.ate, binary)} "
        f"({interval(ours.ci_low, ours.ci_high, binary)}): {apart} apart, "
    )
    if not disagree:
        return _entry(
            treatment,
            outcome,
            ours,
            theirs,
            False,
            said + f"within {DISAGREE_Z:.2f} standard errors of their difference ({line}).",
        )
    said += (
        f"more than {DISAGREE_Z:.2f} standard errors of their difference ({line}). Two fits of the same "
        "score on the same rows should not differ so much: the nuisance models decide this estimate; check "
        "overlap and balance, and trust neither without them."
    )
    return _entry(treatment, outcome, ours, theirs, True, said)


def _entry(
    treatment: str,
    outcome: str,
    ours: doubly_robust.Effect,
    theirs: doubly_robust.Effect,
    disagree: bool,
    sentence: str,
) -> CrossCheck:
    return CrossCheck(
        treatment=treatment,
        outcome=outcome,
        engine=ENGINE,
        ate=finite(theirs.ate),
        se=finite(theirs.se),
        ci_low=finite(theirs.ci_low),
        ci_high=finite(theirs.ci_high),
        retain_ate=finite(ours.ate),
        retain_se=finite(ours.se),
        retain_ci_low=finite(ours.ci_low),
        retain_ci_high=finite(ours.ci_high),
        disagree=disagree,
        sentence=sentence,
    )
