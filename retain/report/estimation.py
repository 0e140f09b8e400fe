"""The doubly robust estimates for one arm (`training.causal.dr`, cross-fitted) and the checks on them:
propensity overlap, three refutations, and the experiment arm's randomised comparison. Pure: a worker
runs them all for its arm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from statistics import NormalDist
from typing import Any

import numpy as np

from retain.report.study import Study
from retain.report.wording import amount, interval, level
from training.causal import dr

#: refutations re-estimate with fewer folds (placebo, subset) and on one outcome, to bound the cost
REFUTE_FOLDS = 2
SUBSET_SHARE = 0.8
#: a random covariate is noise: the estimate may move by at most this many standard errors
RCC_TOLERANCE = 1.0
#: the chance that a report with no bias fails any of its placebo checks (one per arm)
PLACEBO_FALSE_ALARM = 0.05
QUANTILES = (0.01, 0.1, 0.5, 0.9, 0.99)
#: the model-based variance floor treats no fitted probability as below 1% (or above 99%)
EVENT_FLOOR = 0.01
#: LightGBM threads per nuisance model: models this small scale better one per process, arms side by side
THREADS = 1


def _outcome_models(
    x: dr.Matrix, t: np.ndarray, y: np.ndarray, e: np.ndarray, binary: bool, splits: list[Any], seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """mu0 and mu1 out of fold: on a 0/1 outcome as the uplift models fit them (the baseline E[Y | x] and
    the treated arm's log-odds shift from it), on a numeric one a regression per arm."""
    if binary:
        baseline = dr.out_of_fold_baseline(x, y, splits, seed=seed, threads=THREADS)
        return dr.fit_outcomes(t, y, splits, baseline, e)
    mu = np.empty((2, len(y)))
    for fold, (fit_rows, predict_rows) in enumerate(splits):
        for arm in (0, 1):
            model = dr.fit_regression(x, fit_rows[t[fit_rows] == arm], y, seed + fold, THREADS)
            mu[arm, predict_rows] = dr.predict(model, x, predict_rows)
    return mu[0], mu[1]


@dataclass(frozen=True)
class Fit:
    """One arm's data for one estimate: the rows' matrix, assignment, outcome and groups."""

    x: dr.Matrix
    treated: np.ndarray
    randomised: np.ndarray
    known: np.ndarray
    y: np.ndarray
    binary: bool
    groups: np.ndarray

    def subset(self, rows: np.ndarray) -> Fit:
        return Fit(
            self.x.take(rows),
            self.treated[rows],
            self.randomised[rows],
            self.known[rows],
            self.y[rows],
            self.binary,
            self.groups[rows],
        )


@dataclass(frozen=True)
class Pseudo:
    """Each row's pseudo-outcome, and (0/1 outcomes) its variance as the outcome models expect it."""

    psi: np.ndarray
    spread: np.ndarray | None

    def effect(self, fit: Fit, rows: np.ndarray | None = None) -> dr.Effect:
        """The mean pseudo-outcome over `rows` (all by default) with its account-clustered interval."""
        m = np.arange(len(self.psi)) if rows is None else rows
        spread = None if self.spread is None else self.spread[m]
        return dr.average_effect(self.psi[m], fit.treated[m], fit.y[m], fit.groups[m], spread)


def pseudo_outcomes(fit: Fit, e: np.ndarray, clipped: np.ndarray, splits: list[Any], study: Study) -> Pseudo:
    mu0, mu1 = _outcome_models(fit.x, fit.treated, fit.y, e, fit.binary, splits, study.seed)
    nuisance = dr.Nuisance(mu0, mu1, e, clipped)
    psi = dr.pseudo_outcomes(fit.treated, fit.y, nuisance)
    return Pseudo(psi, dr.expected_spread(fit.treated, nuisance, EVENT_FLOOR) if fit.binary else None)


def _with_se(effect: dr.Effect, se: float) -> dr.Effect:
    return replace(effect, se=se, ci_low=effect.ate - dr.Z95 * se, ci_high=effect.ate + dr.Z95 * se)


def propensity(fit: Fit, splits: list[Any], study: Study) -> tuple[np.ndarray, np.ndarray]:
    return dr.fit_propensity(
        fit.x,
        fit.treated,
        fit.randomised,
        fit.known,
        splits,
        fit.groups,
        clip=study.clip,
        seed=study.seed,
        threads=THREADS,
    )


def _estimate(fit: Fit, splits: list[Any], study: Study) -> dr.Effect:
    """A complete re-estimate (propensity and outcome models refitted) for a refutation."""
    return pseudo_outcomes(fit, *propensity(fit, splits, study), splits, study).effect(fit)


def placebo_level(checks: int) -> float:
    """The confidence level each of a report's `checks` placebo intervals is judged at (Bonferroni). At 95%
    apiece, a report of 12 unbiased arms would fail one placebo 46% of the time; at this level the report
    as a whole raises a false alarm PLACEBO_FALSE_ALARM of the time."""
    return 1.0 - PLACEBO_FALSE_ALARM / max(checks, 1)


def placebo_holds(placebo: dr.Effect, checks: int) -> bool:
    """Whether the placebo's interval at `placebo_level(checks)` holds 0."""
    z = NormalDist().inv_cdf(1.0 - (1.0 - placebo_level(checks)) / 2.0)
    return abs(placebo.ate) <= z * placebo.se


def refutations(
    fit: Fit, main: dr.Effect, splits: list[Any], study: Study, rng: np.random.Generator, checks: int
) -> list[dict[str, Any]]:
    """Placebo treatment, random common cause and data subset, each with a plain verdict. They pass when
    the placebo's interval holds 0 (at `placebo_level` for the report's `checks` placebos), when the random
    covariate moves the estimate by at most RCC_TOLERANCE standard errors, and when the subset's estimate
    stays inside the original interval."""
    b = fit.binary
    nobody = np.zeros(len(fit.y))
    shuffled = replace(
        fit, treated=rng.permutation(fit.treated), randomised=nobody.astype(np.int8), known=nobody
    )
    placebo = _estimate(shuffled, dr.folds(fit.groups, REFUTE_FOLDS, study.seed), study)
    placebo_ok = placebo_holds(placebo, checks)
    noise = dr.Matrix(
        np.column_stack([fit.x.values, rng.normal(size=len(fit.y))]),
        [*fit.x.columns, "random_common_cause"],
        fit.x.categorical,
    )
    common = _estimate(replace(fit, x=noise), splits, study)
    moved = abs(common.ate - main.ate)
    common_ok = moved <= RCC_TOLERANCE * main.se
    groups = np.unique(fit.groups)
    kept = rng.choice(groups, max(REFUTE_FOLDS, round(SUBSET_SHARE * len(groups))), replace=False)
    part = fit.subset(np.flatnonzero(np.isin(fit.groups, kept)))
    on_part = _estimate(part, dr.folds(part.groups, REFUTE_FOLDS, study.seed), study)
    part_ok = main.ci_low <= on_part.ate <= main.ci_high
    return [
        _check(
            "placebo_treatment",
            placebo,
            placebo_ok,
            f"a shuffled copy of the treatment shows {amount(placebo.ate, b)} (95% CI "
            f"{interval(placebo.ci_low, placebo.ci_high, b)}); "
            + _judged_at(checks)
            + (
                "its interval holds 0, as it should."
                if placebo_ok
                else "its interval excludes 0: an effect where there is none."
            ),
        ),
        _check(
            "random_common_cause",
            common,
            common_ok,
            f"adding a random covariate moves the estimate by {amount(moved, b).lstrip('+')}, "
            + ("within" if common_ok else "more than")
            + f" {RCC_TOLERANCE:g} standard error ({amount(RCC_TOLERANCE * main.se, b).lstrip('+')}).",
        ),
        _check(
            "data_subset",
            on_part,
            part_ok,
            f"on a random {SUBSET_SHARE:.0%} of the {'accounts' if len(groups) < len(fit.y) else 'rows'} the "
            f"estimate is {amount(on_part.ate, b)}, "
            + ("inside" if part_ok else "outside")
            + f" the original interval ({interval(main.ci_low, main.ci_high, b)}).",
        ),
    ]


def _judged_at(checks: int) -> str:
    """Why a placebo is judged at its level, where that is not the familiar 95%."""
    if checks == 1:
        return ""
    return (
        f"at {level(placebo_level(checks))}, the level that keeps a false alarm among the report's {checks} "
        f"placebos to {PLACEBO_FALSE_ALARM:.0%}, "
    )


def _check(name: str, effect: dr.Effect, passed: bool, sentence: str) -> dict[str, Any]:
    return {
        "check": name,
        "ate": effect.ate,
        "ci_low": effect.ci_low,
        "ci_high": effect.ci_high,
        "passed": passed,
        "verdict": f"{'Passed' if passed else 'Failed'}: {sentence}",
    }


def holdout(fit: Fit) -> dr.Effect | None:
    """The experiment arm alone: its randomised rows against untreated rows of the weeks it ran, each row
    weighted by the inverse of its week's known probability of drawing (or not drawing) the action. A
    weighted (Hajek) difference of means whose linearisation gives the clustered standard error; on a 0/1
    outcome the standard error is at least Agresti-Caffo's, since an arm without events has no residuals."""
    use = np.flatnonzero((fit.known > 0) & ((fit.randomised == 1) | (fit.treated == 0)))
    r = fit.randomised[use] == 1
    if r.sum() < 2 or (~r).sum() < 2:
        return None
    p, y = fit.known[use], fit.y[use]
    w = np.where(r, 1.0 / p, 1.0 / (1.0 - p))
    m1, m0 = np.average(y[r], weights=w[r]), np.average(y[~r], weights=w[~r])
    n = len(use)
    influence = np.where(r, w * (y - m1) / (w[r].sum() / n), -w * (y - m0) / (w[~r].sum() / n))
    effect = dr.average_effect(m1 - m0 + influence, r.astype(np.int8), y, fit.groups[use])
    if not fit.binary:
        return effect
    return _with_se(
        effect, max(effect.se, math.sqrt(_agresti_caffo(y[r], w[r]) + _agresti_caffo(y[~r], w[~r])))
    )


def _agresti_caffo(y: np.ndarray, w: np.ndarray) -> float:
    """The variance of a weighted share as if one more success and one more failure had been seen: an arm
    of 40 rows without a single churn is not a certain 0%."""
    n = dr.effective_sample_size(w)
    share = (np.average(y, weights=w) * n + 1.0) / (n + 2.0)
    return float(share * (1.0 - share) / (n + 2.0))


def overlap(
    fit: Fit, e: np.ndarray, clipped: np.ndarray, min_effective: float, later: np.ndarray | None
) -> dict[str, Any]:
    """Where the treated rows sit in propensity, how many equally weighted rows their 1/e weights are worth
    (poor below `min_effective`: then a handful of rows carries the estimate), and, given the rows that got
    the treatment within the horizon anyway (`later`), how often the comparison was "later", not "never"."""
    t = fit.treated == 1
    effective = dr.effective_sample_size(1.0 / e[t])
    return {
        "n_treated": int(t.sum()),
        "n_randomised": int(fit.randomised.sum()),
        "n_control": int((~t).sum()),
        "effective_treated": effective,
        "effective_control": dr.effective_sample_size(1.0 / (1.0 - e[~t])),
        "clipped_share": float(clipped.mean()),
        "propensity_treated": _quantiles(e[t]),
        "propensity_control": _quantiles(e[~t]),
        "control_treated_later": None if later is None else dr.control_treated_later(fit.treated, later, e),
        "poor": effective < min_effective,
    }


def _quantiles(values: np.ndarray) -> dict[str, float | None]:
    return {f"p{round(q * 100)}": float(np.quantile(values, q)) if len(values) else None for q in QUANTILES}
