"""The doubly robust estimates for one arm (`doubly_robust`, cross-fitted) and the checks on them:
propensity overlap, three refutations, and the experiment arm's randomised comparison. Pure: the workers
run them arm by arm and check by check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from statistics import NormalDist

import numpy as np

from products.report.schema import ArmOverlap, Quantiles, RefutationCheck, finite
from products.report.study import Study
from products.report.wording import amount, confidence_level, interval
from training.causal import doubly_robust

#: refutations re-estimate with fewer folds (placebo, subset) and on one outcome, to bound the cost
REFUTE_FOLDS = 2
SUBSET_SHARE = 0.8
#: a random covariate is noise: the estimate may move by at most this many standard errors
COMMON_CAUSE_TOLERANCE_SE = 1.0
#: the chance that a report with no bias fails any of its placebo checks (one per arm)
PLACEBO_FALSE_ALARM = 0.05
REFUTATION_CHECKS: tuple[RefutationCheck, ...] = ("placebo_treatment", "random_common_cause", "data_subset")
#: the model-based variance floor treats no fitted probability as below 1% (or above 99%)
EVENT_FLOOR = 0.01
#: LightGBM threads per nuisance model: models this small scale better one per process, arms side by side
MODEL_THREADS = 1

Splits = list[tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class ArmData:
    """One arm's rows for one estimate: their covariates, assignment, outcome and groups."""

    x: doubly_robust.Matrix
    treated: np.ndarray
    randomised: np.ndarray
    known_propensity: np.ndarray
    #: the outcome over the arm's rows (zeros until `with_outcome`: the propensity does not need it)
    y: np.ndarray
    binary: bool
    groups: np.ndarray

    @classmethod
    def of(cls, study: Study, x: doubly_robust.Matrix, index: int) -> ArmData:
        arm = study.arms[index]
        return cls(
            x.take(arm.rows),
            arm.treated,
            arm.randomised,
            arm.known_propensity,
            np.zeros(len(arm.rows)),
            True,
            study.groups[arm.rows],
        )

    def with_outcome(self, values: np.ndarray, binary: bool) -> ArmData:
        return replace(self, y=values, binary=binary)

    def subset(self, rows: np.ndarray) -> ArmData:
        return ArmData(
            self.x.take(rows),
            self.treated[rows],
            self.randomised[rows],
            self.known_propensity[rows],
            self.y[rows],
            self.binary,
            self.groups[rows],
        )


@dataclass(frozen=True)
class PseudoOutcomes:
    """Each row's doubly robust pseudo-outcome, and (0/1 outcomes) its variance as the outcome models
    expect it: the floor under the standard error. `untreated` is each row's doubly robust pseudo-outcome
    of the outcome without treatment, whose mean is the untreated risk an effect is a ratio of
    (`sensitivity`)."""

    values: np.ndarray
    expected_variance: np.ndarray | None
    untreated: np.ndarray

    def effect(self, data: ArmData, rows: np.ndarray | None = None) -> doubly_robust.Effect:
        """The mean pseudo-outcome over `rows` (all by default) with its account-clustered interval."""
        m = np.arange(len(self.values)) if rows is None else rows
        variance = None if self.expected_variance is None else self.expected_variance[m]
        return doubly_robust.average_effect(
            self.values[m], data.treated[m], data.y[m], data.groups[m], variance
        )


def _outcome_models(
    data: ArmData, e: np.ndarray, splits: Splits, seed: int, baseline: np.ndarray | None, per_arm: bool
) -> tuple[np.ndarray, np.ndarray]:
    """mu0 and mu1 out of fold. On a 0/1 outcome with `per_arm` (a table) and enough rows in each arm
    (`per_arm_fits`), each arm's own early-stopped model; otherwise as the uplift models fit them (the
    shared out-of-fold `baseline` E[Y | x] and the treated arm's log-odds shift from it). On a numeric
    one a regression per arm."""
    x, t, y = data.x, data.treated, data.y
    if data.binary and not (per_arm and per_arm_fits(t, splits)):
        assert baseline is not None, "a 0/1 outcome's nuisances start from its baseline"
        return doubly_robust.fit_outcomes(t, y, splits, baseline, e)
    mu = np.empty((2, len(y)))
    for fold, (fit_rows, predict_rows) in enumerate(splits):
        for arm in (0, 1):
            rows = fit_rows[t[fit_rows] == arm]
            if data.binary:
                model = doubly_robust.PropensityFold(x, rows, data.groups, seed + fold, MODEL_THREADS).fit(y)
            else:
                model = doubly_robust.fit_regression(x, rows, y, seed + fold, MODEL_THREADS)
            mu[arm, predict_rows] = doubly_robust.predict(model, x, predict_rows)
    return mu[0], mu[1]


#: a 0/1 outcome gets a free model per arm (`_outcome_models`) only where every fold fits each arm on at
#: least this many rows: fewer leave the early stopping's held-out quarter too few events to judge by, and
#: a treated arm's model extrapolates its own population's risk; the shift from the baseline does not
PER_ARM_MIN_ROWS = 500


def per_arm_fits(treated: np.ndarray, splits: Splits) -> bool:
    """Whether every fold has PER_ARM_MIN_ROWS treated and untreated rows to fit on."""
    return all(
        min(int((treated[rows] == 1).sum()), int((treated[rows] == 0).sum())) >= PER_ARM_MIN_ROWS
        for rows, _ in splits
    )


def pseudo_outcomes(
    data: ArmData,
    e: np.ndarray,
    clipped: np.ndarray,
    splits: Splits,
    baseline: np.ndarray | None,
    seed: int,
    per_arm: bool = False,
) -> PseudoOutcomes:
    """Each row's pseudo-outcome (on the outcome in `data`) and, on a 0/1 outcome, its variance, given the
    propensity `e` (and where it was clipped) and, on a 0/1 outcome, its out-of-fold `baseline`."""
    mu0, mu1 = _outcome_models(data, e, splits, seed, baseline, per_arm)
    nuisance = doubly_robust.Nuisance(mu0, mu1, e, clipped)
    values = doubly_robust.pseudo_outcomes(data.treated, data.y, nuisance)
    variance = (
        doubly_robust.pseudo_outcome_variance(data.treated, nuisance, EVENT_FLOOR) if data.binary else None
    )
    untreated = mu0 + (1.0 - data.treated) * (data.y - mu0) / (1.0 - e)
    return PseudoOutcomes(values, variance, untreated)


def _with_se(effect: doubly_robust.Effect, se: float) -> doubly_robust.Effect:
    return replace(
        effect, se=se, ci_low=effect.ate - doubly_robust.Z95 * se, ci_high=effect.ate + doubly_robust.Z95 * se
    )


def placebo_level(checks: int) -> float:
    """The confidence level each of a report's `checks` placebo intervals is judged at (Bonferroni). At 95%
    apiece, a report of 12 unbiased arms would fail one placebo 46% of the time; at this level the report
    as a whole raises a false alarm PLACEBO_FALSE_ALARM of the time."""
    return 1.0 - PLACEBO_FALSE_ALARM / max(checks, 1)


def placebo_holds(placebo: doubly_robust.Effect, checks: int) -> bool:
    """Whether the placebo's interval at `placebo_level(checks)` holds 0."""
    z = NormalDist().inv_cdf(1.0 - (1.0 - placebo_level(checks)) / 2.0)
    return abs(placebo.ate) <= z * placebo.se


@dataclass(frozen=True)
class RefutationDraws:
    """The random parts of an arm's three refutations. The shuffled treatment is the arm's own; the noise
    covariate and the kept groups are drawn once for every arm over the same rows (`shared`), so that
    their refitted baselines and binned datasets serve them all."""

    shuffled_treatment: np.ndarray
    noise: np.ndarray
    kept_groups: np.ndarray

    @classmethod
    def of(cls, data: ArmData, arm: np.random.Generator, shared: np.random.Generator) -> RefutationDraws:
        shuffled = arm.permutation(data.treated)
        noise = shared.normal(size=len(data.y))
        groups = np.unique(data.groups)
        kept = shared.choice(groups, max(REFUTE_FOLDS, round(SUBSET_SHARE * len(groups))), replace=False)
        return cls(shuffled, noise, kept)


def refuted(
    check: RefutationCheck, data: ArmData, study: Study, draws: RefutationDraws
) -> tuple[ArmData, Splits]:
    """The rows and folds one check re-estimates on: the treatment shuffled (placebo), a noise covariate
    added (random common cause), or a random share of the groups (data subset). Each re-estimate refits
    the propensity and the baseline on them."""
    if check == "placebo_treatment":
        nobody = np.zeros(len(data.y))
        shuffled = replace(
            data,
            treated=draws.shuffled_treatment,
            randomised=nobody.astype(np.int8),
            known_propensity=nobody,
        )
        return shuffled, doubly_robust.folds(data.groups, REFUTE_FOLDS, study.seed)
    if check == "random_common_cause":
        noisy = doubly_robust.Matrix(
            np.column_stack([data.x.values, draws.noise]),
            [*data.x.columns, "random_common_cause"],
            data.x.categorical,
        )
        return replace(data, x=noisy), doubly_robust.folds(data.groups, study.folds, study.seed)
    part = data.subset(np.flatnonzero(np.isin(data.groups, draws.kept_groups)))
    return part, doubly_robust.folds(part.groups, REFUTE_FOLDS, study.seed)


def refutation_verdict(
    check: RefutationCheck,
    re_estimate: doubly_robust.Effect,
    main: doubly_robust.Effect,
    binary: bool,
    units: str,
    checks: int,
) -> tuple[bool, str]:
    """Whether the check's `re_estimate` leaves the original `main` standing, and why, in words. The placebo
    passes when its interval holds 0 (at `placebo_level` for the report's `checks` placebos), the random
    common cause when it moves the estimate by at most COMMON_CAUSE_TOLERANCE_SE standard errors, the
    subset when its estimate stays inside the original interval (`units`: what the subset draws)."""
    b = binary
    if check == "placebo_treatment":
        passed = placebo_holds(re_estimate, checks)
        sentence = (
            f"a shuffled copy of the treatment shows {amount(re_estimate.ate, b)} (95% CI "
            f"{interval(re_estimate.ci_low, re_estimate.ci_high, b)}); "
            + _judged_at(checks)
            + (
                "its interval holds 0, as it should."
                if passed
                else "its interval excludes 0: an effect where there is none."
            )
        )
    elif check == "random_common_cause":
        moved = abs(re_estimate.ate - main.ate)
        tolerance = COMMON_CAUSE_TOLERANCE_SE * main.se
        passed = moved <= tolerance
        sentence = (
            f"adding a random covariate moves the estimate by {amount(moved, b).lstrip('+')}, "
            + ("within" if passed else "more than")
            + f" {COMMON_CAUSE_TOLERANCE_SE:g} standard error ({amount(tolerance, b).lstrip('+')})."
        )
    else:
        passed = main.ci_low <= re_estimate.ate <= main.ci_high
        sentence = (
            f"on a random {SUBSET_SHARE:.0%} of the {units} the estimate is {amount(re_estimate.ate, b)}, "
            + ("inside" if passed else "outside")
            + f" the original interval ({interval(main.ci_low, main.ci_high, b)})."
        )
    return bool(passed), f"{'Passed' if passed else 'Failed'}: {sentence}"


def _judged_at(checks: int) -> str:
    """Why a placebo is judged at its level, where that is not the familiar 95%."""
    if checks == 1:
        return ""
    return (
        f"at {confidence_level(placebo_level(checks))}, the level that keeps a false alarm among the "
        f"report's {checks} placebos to {PLACEBO_FALSE_ALARM:.0%}, "
    )


def randomised_holdout(data: ArmData) -> doubly_robust.Effect | None:
    """The experiment arm alone: its randomised rows against untreated rows of the weeks it ran, each row
    weighted by the inverse of its week's known probability of drawing (or not drawing) the action. A
    weighted (Hajek) difference of means whose linearisation gives the clustered standard error; on a 0/1
    outcome the standard error is at least Agresti-Caffo's, since an arm without events has no residuals."""
    use = np.flatnonzero((data.known_propensity > 0) & ((data.randomised == 1) | (data.treated == 0)))
    r = data.randomised[use] == 1
    if r.sum() < 2 or (~r).sum() < 2:
        return None
    p, y = data.known_propensity[use], data.y[use]
    w = np.where(r, 1.0 / p, 1.0 / (1.0 - p))
    m1, m0 = np.average(y[r], weights=w[r]), np.average(y[~r], weights=w[~r])
    n = len(use)
    influence = np.where(r, w * (y - m1) / (w[r].sum() / n), -w * (y - m0) / (w[~r].sum() / n))
    effect = doubly_robust.average_effect(m1 - m0 + influence, r.astype(np.int8), y, data.groups[use])
    if not data.binary:
        return effect
    return _with_se(
        effect, max(effect.se, math.sqrt(_agresti_caffo(y[r], w[r]) + _agresti_caffo(y[~r], w[~r])))
    )


def _agresti_caffo(y: np.ndarray, w: np.ndarray) -> float:
    """The variance of a weighted share as if one more success and one more failure had been seen: an arm
    of 40 rows without a single churn is not a certain 0%."""
    n = doubly_robust.effective_sample_size(w)
    share = (np.average(y, weights=w) * n + 1.0) / (n + 2.0)
    return float(share * (1.0 - share) / (n + 2.0))


def overlap(
    treatment: str,
    data: ArmData,
    e: np.ndarray,
    clipped: np.ndarray,
    min_effective_treated: float,
    taken_later: np.ndarray | None,
) -> ArmOverlap:
    """Where the treated rows sit in propensity, how many equally weighted rows their 1/e weights are worth
    (poor below `min_effective_treated`: then a handful of rows carries the estimate), and, given the rows
    that got the treatment within the horizon anyway (`taken_later`), how often the comparison was "later",
    not "never"."""
    t = data.treated == 1
    effective = doubly_robust.effective_sample_size(1.0 / e[t])
    later = None if taken_later is None else doubly_robust.control_treated_later(data.treated, taken_later, e)
    return ArmOverlap(
        treatment=treatment,
        n_treated=int(t.sum()),
        n_randomised=int(data.randomised.sum()),
        n_control=int((~t).sum()),
        effective_treated=finite(effective),
        effective_control=finite(doubly_robust.effective_sample_size(1.0 / (1.0 - e[~t]))),
        clipped_share=float(clipped.mean()),
        propensity_treated=Quantiles.of(e[t]),
        propensity_control=Quantiles.of(e[~t]),
        control_treated_later=None if later is None else finite(later),
        poor=bool(effective < min_effective_treated),
    )
