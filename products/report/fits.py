"""The nuisance fits a report's arms share, fitted side by side before any arm is estimated.

Every arm is estimated on its rows and re-estimated by each refutation on other rows (`VARIANTS`). Arms
over the same rows (every action of the store's weekly design) share each 0/1 outcome's out-of-fold
baseline, which does not depend on the treatment, and the binned datasets of their propensity models
(`training.causal.crossfit`). So that the refutations share them too, the noise covariate and the kept
groups are drawn once for such arms; each arm's placebo keeps its own shuffle.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import cast

import numpy as np

from core.parallel import Workers
from products.report.estimation import (
    MODEL_THREADS,
    REFUTATION_CHECKS,
    ArmData,
    RefutationDraws,
    Splits,
    refuted,
)
from products.report.schema import RefutationCheck
from products.report.study import Study
from training.causal import doubly_robust
from training.causal.crossfit import Fitted, Sample, fit_side_by_side

#: what an arm is estimated on: its rows as they are, then each refutation's rows
VARIANTS: tuple[str, ...] = ("estimate", *REFUTATION_CHECKS)


@dataclass(frozen=True)
class Fits:
    """What one arm's estimate on one variant takes from the shared fits: the out-of-fold targeted
    propensity and each 0/1 outcome's out-of-fold baseline."""

    targeted: np.ndarray
    baseline: dict[str, np.ndarray]

    def propensity(self, data: ArmData, clip: float) -> tuple[np.ndarray, np.ndarray]:
        """The propensity with the experiment arm's known part of `data`, clipped, and where clipped."""
        return doubly_robust.with_known(self.targeted, data.known_propensity, clip)


def _same_rows(study: Study) -> list[list[int]]:
    """The arms grouped by their rows, each group in arm order, groups in order of their first arm: the
    first is the group's leader, whose refutation draws (noise, groups) the others share."""
    together: dict[bytes, list[int]] = {}
    for i, arm in enumerate(study.arms):
        together.setdefault(arm.rows.tobytes(), []).append(i)
    return list(together.values())


def _draws(study: Study, data: ArmData, index: int) -> RefutationDraws:
    leader = next(arms[0] for arms in _same_rows(study) if index in arms)
    shared = np.random.default_rng([study.seed, len(study.arms) + leader])
    return RefutationDraws.of(data, np.random.default_rng([study.seed, index]), shared)


def variant(study: Study, data: ArmData, index: int, name: str) -> tuple[ArmData, Splits]:
    """Arm `index`'s rows and folds for one variant (`data`: the arm's `ArmData.of`): the estimate's (its
    outcome set later, per outcome) or a refutation's, on the refuted outcome."""
    if name == "estimate":
        return data, doubly_robust.folds(data.groups, study.folds, study.seed)
    outcome = study.outcome(study.refute_outcome)
    scored = data.with_outcome(outcome.values[study.arms[index].rows], outcome.binary)
    return refuted(cast(RefutationCheck, name), scored, study, _draws(study, data, index))


def _samples(study: Study, x: doubly_robust.Matrix, arms: list[int]) -> list[Sample]:
    """One sample per variant for `arms`, which share their rows: each arm's treatment (or its shuffle)
    to fit a propensity for, and the 0/1 outcomes whose baseline the arms share."""
    leader = arms[0]
    base = ArmData.of(study, x, leader)
    out = []
    for name in VARIANTS:
        per_arm = {}
        for i in arms:
            arm = study.arms[i]
            mine = replace(
                base, treated=arm.treated, randomised=arm.randomised, known_propensity=arm.known_propensity
            )
            per_arm[i] = variant(study, mine, i, name)
        shared, splits = per_arm[leader]
        if name == "estimate":
            rows = study.arms[leader].rows
            outcomes = {o.name: o.values[rows] for o in study.outcomes if o.binary}
        else:
            outcomes = {study.refute_outcome: shared.y} if shared.binary else {}
        treatments = {
            str(i): doubly_robust.targeted(d.treated, d.randomised) for i, (d, _) in per_arm.items()
        }
        out.append(
            Sample(shared.x, splits, shared.groups, study.seed, outcomes, treatments, sampling=study.sampling)
        )
    return out


def shared_fits(
    study: Study, x: doubly_robust.Matrix, workers: Workers, cache: Path | None = None
) -> dict[tuple[int, str], Fits]:
    """(arm, variant) -> its fits: every propensity and every shared baseline of the report, fitted on
    `workers` with a progress bar on stderr (or read from `cache`, `crossfit`'s)."""
    groups = _same_rows(study)
    samples = [s for arms in groups for s in _samples(study, x, arms)]
    fitted = fit_side_by_side(
        samples, workers=workers, threads=MODEL_THREADS, desc="causal report: fits", cache=cache
    )
    out = {}
    for g, arms in enumerate(groups):
        for v, name in enumerate(VARIANTS):
            done: Fitted = fitted[g * len(VARIANTS) + v]
            for i in arms:
                out[(i, name)] = Fits(done.targeted[str(i)], done.baseline)
    return out
