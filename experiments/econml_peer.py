"""The field's library peer for next-best actions: econml's DRLearner per action, fitted on the same weekly
design rows as Retain's uplift model, its conditional effects ranking the same judged rows.

Each action gets a DRLearner with LightGBM nuisances (propensity and outcome, three folds grouped by account)
and a regularised LightGBM final stage, the library's doubly robust learner as a data scientist would call it
on these rows. econml refuses missing values, so a missing feature reads as a value below every real one
(LightGBM splits it off as it would a missing value).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd
from econml.dr import DRLearner
from lightgbm import LGBMClassifier, LGBMRegressor
from tqdm import tqdm

from training.causal import doubly_robust
from training.causal.design import Design
from training.columns import design_columns

#: the nuisances as Retain's own (`doubly_robust.NUISANCE_PARAMS`, `doubly_robust.NUISANCE_ROUNDS`)
NUISANCE = {
    "n_estimators": doubly_robust.NUISANCE_ROUNDS,
    "learning_rate": 0.08,
    "num_leaves": 15,
    "min_child_samples": 40,
    "verbose": -1,
    "n_jobs": 1,
}
#: the final stage: small trees on many rows, as a few hundred treated rows per action allow
FINAL = {"n_estimators": 100, "learning_rate": 0.05, "num_leaves": 7, "min_child_samples": 400, "verbose": -1}
MISSING = -1e9


def _matrix(rows: pd.DataFrame, features: list[str], categories: dict[str, list[str]]) -> np.ndarray:
    values = doubly_robust.Matrix.of(rows, features, categories).values
    return np.where(np.isnan(values), MISSING, values)


def econml_ranking(design: Design, actions: list[str], seed: int) -> Callable[[pd.DataFrame], np.ndarray]:
    """One DRLearner per action on the design's usual-course rows (as Retain's model is fitted); returns the
    (rows, actions) churn effects it predicts for any feature rows, in `actions` order."""
    design = design.usual_course()
    features, categories = design_columns(design.rows)
    x = _matrix(design.rows, features, categories)
    learners = {}
    for action in tqdm(actions, desc="econml DRLearner", unit="action", leave=False):
        learner = DRLearner(
            model_propensity=LGBMClassifier(**NUISANCE, random_state=seed),
            model_regression=LGBMClassifier(**NUISANCE, random_state=seed),
            model_final=LGBMRegressor(**FINAL, random_state=seed, n_jobs=1),
            discrete_outcome=True,
            cv=3,
            min_propensity=0.001,
            random_state=seed,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            learner.fit(design.outcomes["churn"], design.treated[action], X=x, groups=design.groups)
        learners[action] = learner

    def predict(rows: pd.DataFrame) -> np.ndarray:
        values = _matrix(rows, features, categories)
        return np.column_stack([learners[a].effect(values) for a in actions])

    return predict
