"""The doubly robust (AIPW) estimator with cross-fitting, on LightGBM nuisance models.

For one binary treatment T and outcome Y over rows X, each row's pseudo-outcome

    psi = mu1(x) - mu0(x) + T (Y - mu1(x)) / e(x) - (1 - T) (Y - mu0(x)) / (1 - e(x))

has the row's treatment effect as its expectation when either the outcome models mu or the propensity e
is right. Every nuisance prediction for a row comes from models fitted on other accounts' rows (folds
grouped by account), so the models' overfitting does not leak into psi. The mean of psi is the average
effect, with a standard error clustered on the account; a regression of psi on X is the DR-learner's
conditional effect (`relative_effect` regresses it on the baseline probability alone).

Propensity is two-part, as a CS team's log is: a row is treated when the team targeted it (probability
estimated from X) or an experiment arm drew it (probability known from the log), so
e = 1 - (1 - e_targeted(x)) (1 - e_known). The known part keeps e away from 0 wherever an arm ran.

Over 500 lines: one estimator, nuisance models to effects, which its callers use as one namespace `dr`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold

from training.artifact import encode
from training.logodds import expit, logit

Z95 = 1.959963984540054

#: nuisance models: small and regularised, since treated arms are small (a few hundred rows)
NUISANCE_PARAMS: dict[str, Any] = {
    "objective": "binary",
    "learning_rate": 0.08,
    "num_leaves": 15,
    "min_data_in_leaf": 40,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "verbose": -1,
}
NUISANCE_ROUNDS = 120
#: the targeted propensity adds rounds only while held-out accounts' log-loss falls: with fixed rounds a
#: rare treatment's model fits noise (a shuffled copy of a 0.8% treatment got propensities of 0.1-26%), and
#: where such an e is too high the treated-arm model is too low, which biases the DR estimate
PROPENSITY_VALIDATION_SHARE = 0.25
PROPENSITY_PATIENCE = 10
#: the baseline risk, fitted on every row: what the relative effects scale, so it decides who is called.
#: Stumps (a model additive in the features) ranked the simulator's true risk best on a separate
#: simulation over seeds 1-5: correlation 0.72-0.77, against 0.69-0.73 with 7 leaves and 0.59-0.67 with
#: the nuisance settings
BASELINE_PARAMS: dict[str, Any] = NUISANCE_PARAMS | {
    "learning_rate": 0.05,
    "num_leaves": 2,
    "min_data_in_leaf": 200,
}
BASELINE_ROUNDS = 300


@dataclass(frozen=True)
class Matrix:
    """Model inputs as floats (a category is its level's index), with the categorical columns named."""

    values: np.ndarray
    columns: list[str]
    categorical: list[int]

    @staticmethod
    def of(rows: pd.DataFrame, features: list[str], categories: dict[str, list[str]]) -> Matrix:
        """`features` of `rows` in order, encoded as the scoring models encode them (`encode`)."""
        values = encode(rows, features, categories)
        return Matrix(values, list(features), [features.index(c) for c in categories if c in features])

    def take(self, rows: np.ndarray) -> Matrix:
        """The same columns over `rows` only."""
        return Matrix(self.values[rows], self.columns, self.categorical)


@dataclass(frozen=True)
class Nuisance:
    """Cross-fitted predictions for every row."""

    mu0: np.ndarray
    mu1: np.ndarray
    propensity: np.ndarray
    #: rows whose propensity was clipped into [clip, 1 - clip]
    clipped: np.ndarray


@dataclass(frozen=True)
class Effect:
    """An average effect with its 95% interval, beside the naive difference of means."""

    ate: float
    se: float
    ci_low: float
    ci_high: float
    naive_difference: float
    n_treated: int
    n_control: int

    def as_dict(self) -> dict[str, float | int]:
        return {
            "ate": self.ate,
            "se": self.se,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "naive_difference": self.naive_difference,
            "n_treated": self.n_treated,
            "n_control": self.n_control,
        }


def _dataset(
    x: Matrix,
    rows: np.ndarray,
    label: np.ndarray,
    reference: lgb.Dataset | None = None,
    params: dict[str, Any] | None = None,
) -> lgb.Dataset:
    """`rows` of `x` for LightGBM; a validation set takes its bins from the training set (`reference`).
    Given the training's `params`, it can be binned before training (LightGBM refuses changed ones after)."""
    return lgb.Dataset(
        x.values[rows],
        label=label[rows],
        feature_name=x.columns,
        categorical_feature=x.categorical,
        free_raw_data=True,
        params=params or {"verbose": -1},
        reference=reference,
    )


def _too_thin(label: np.ndarray, rows: np.ndarray, params: dict[str, Any] = NUISANCE_PARAMS) -> bool:
    """Too few rows for two leaves, or one label value only: nothing for a model to learn."""
    return len(rows) < 2 * params["min_data_in_leaf"] or label[rows].min() == label[rows].max()


def _mean(label: np.ndarray, rows: np.ndarray) -> float:
    """What a model too thin to fit (`_too_thin`) predicts instead: the label's mean over `rows`."""
    return float(label[rows].mean()) if len(rows) else 0.0


def _fit(x: Matrix, rows: np.ndarray, label: np.ndarray, params: dict[str, Any], rounds: int) -> lgb.Booster:
    return lgb.train(params, _dataset(x, rows, label), num_boost_round=rounds)


def fit_binary(
    x: Matrix,
    rows: np.ndarray,
    label: np.ndarray,
    seed: int,
    threads: int,
    params: dict[str, Any] = NUISANCE_PARAMS,
    rounds: int = NUISANCE_ROUNDS,
) -> lgb.Booster | float:
    """A LightGBM model of `label` on `rows` (binary with the default `params`), or their mean when they are
    too few or hold one value only (a treated arm of a handful of rows, or one that never churned)."""
    if _too_thin(label, rows, params):
        return _mean(label, rows)
    return _fit(x, rows, label, params | {"seed": seed, "num_threads": threads}, rounds)


def fit_regression(
    x: Matrix, rows: np.ndarray, label: np.ndarray, seed: int, threads: int
) -> lgb.Booster | float:
    """`fit_binary` for a numeric label: a squared-error model with the nuisance settings, or the mean."""
    return fit_binary(x, rows, label, seed, threads, NUISANCE_PARAMS | {"objective": "regression"})


def fit_baseline(
    x: Matrix, rows: np.ndarray, label: np.ndarray, seed: int, threads: int
) -> lgb.Booster | float:
    """E[Y | x] over `rows`, treated or not, with `BASELINE_PARAMS`."""
    return fit_binary(x, rows, label, seed, threads, BASELINE_PARAMS, BASELINE_ROUNDS)


def out_of_fold_baseline(
    x: Matrix, label: np.ndarray, splits: list[tuple[np.ndarray, np.ndarray]], *, seed: int, threads: int = 1
) -> np.ndarray:
    """`fit_baseline`'s prediction for every row from the folds that left the row out."""
    out = np.empty(len(label))
    for fold, (fit_rows, predict_rows) in enumerate(splits):
        out[predict_rows] = fold_baseline(x, label, fit_rows, predict_rows, seed + fold, threads)
    return out


def fold_baseline(
    x: Matrix, label: np.ndarray, fit_rows: np.ndarray, predict_rows: np.ndarray, seed: int, threads: int
) -> np.ndarray:
    """One fold of `out_of_fold_baseline`: the baseline fitted on `fit_rows`, predicted on `predict_rows`."""
    return predict(fit_baseline(x, fit_rows, label, seed, threads), x, predict_rows)


def predict(
    model: lgb.Booster | float, x: Matrix, rows: np.ndarray, threads: int | None = None
) -> np.ndarray:
    """`model`'s predictions for `rows`, on `threads` (default: the threads it was fitted with)."""
    if isinstance(model, float):
        return np.full(len(rows), model)
    used = model.params.get("num_threads", 0) if threads is None else threads
    return np.asarray(model.predict(x.values[rows], num_threads=used))


def account_codes(ids: np.ndarray) -> np.ndarray:
    """Each row's account as a code, 0 to accounts - 1 in id order: the same folds, bootstrap draws and
    clusters as the ids give, without comparing text on every call that sorts or counts them."""
    return np.unique(ids, return_inverse=True)[1]


def folds(groups: np.ndarray, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """K train/predict splits with every account's rows on one side; the account order is shuffled by
    `seed`, so the folds do not follow the ids."""
    _, codes = np.unique(groups, return_inverse=True)
    shuffled = np.random.default_rng(seed).permutation(codes.max() + 1)[codes]
    return list(GroupKFold(n_splits=k).split(np.zeros(len(groups)), groups=shuffled))


class ControlSampling(Protocol):
    """How many untreated rows a case-control sample keeps (`core.settings.NuisanceSampling`, which the
    served model's code does not import)."""

    @property
    def controls_per_treated(self) -> float: ...

    @property
    def min_controls(self) -> int: ...


def control_sample(label: np.ndarray, draws: np.ndarray, sampling: ControlSampling) -> np.ndarray | None:
    """Each row's weight in a case-control sample of a fold (`label` 0/1 over its rows, `draws` uniform on
    [0, 1) per row): 1 for every treated row, 1 / rate for an untreated row drawn at `rate`, 0 for one left
    out; None where every row is kept.

    A weighted fit on the sample estimates the whole fold's propensity: each untreated row stands for the
    1 / rate it was drawn among, so the weighted log-loss is the fold's in expectation (Horvitz-Thompson),
    at the cost of some variance that `sampling` bounds by keeping many untreated rows per treated one."""
    treated = int(label.sum())
    controls = len(label) - treated
    keep = max(sampling.controls_per_treated * treated, sampling.min_controls)
    if sampling.controls_per_treated <= 0 or treated == 0 or keep >= controls:
        return None
    rate = keep / controls
    return np.where(label == 1, 1.0, np.where(draws < rate, 1.0 / rate, 0.0))


class PropensityFold:
    """One fold's early-stopped propensity models, for any number of treatments over the same rows.

    `fit` adds rounds (at most NUISANCE_ROUNDS) while a quarter of the accounts, held out, gains, then
    refits on every row with that many rounds; without enough rows of both labels on each side,
    `fit_binary`'s rule decides. The held-out accounts depend only on the rows and the seed, and LightGBM's
    bins only on the covariates, so the datasets are binned once and relabelled per treatment: a dozen
    actions cost one binning, and each model is the one a fresh dataset gives.

    With `sampling`, a treatment with many more untreated rows than it needs is fitted on its case-control
    sample (`control_sample`; the uniform draws are the fold's, shared by every treatment), binned by the
    whole fold's bins, with the weights also on the held-out quarter that decides the rounds."""

    def __init__(
        self,
        x: Matrix,
        rows: np.ndarray,
        groups: np.ndarray,
        seed: int,
        threads: int,
        sampling: ControlSampling | None = None,
    ) -> None:
        accounts, codes = np.unique(groups[rows], return_inverse=True)
        rng = np.random.default_rng(seed)
        picked = rng.choice(len(accounts), round(PROPENSITY_VALIDATION_SHARE * len(accounts)), replace=False)
        self.held = np.isin(codes, picked)
        self.x, self.rows, self.sampling = x, rows, sampling
        self.train, self.valid = rows[~self.held], rows[self.held]
        self.draws = rng.random(len(rows)) if sampling is not None else np.empty(0)
        self.params = NUISANCE_PARAMS | {"seed": seed, "num_threads": threads}
        self._binned: dict[str, lgb.Dataset] = {}

    def _labelled(self, part: str, label: np.ndarray) -> lgb.Dataset:
        """The dataset of `part`'s rows (binned on first use) carrying `label`."""
        rows = {"train": self.train, "valid": self.valid, "all": self.rows}[part]
        if part not in self._binned:
            reference = self._labelled("train", label) if part == "valid" else None
            self._binned[part] = _dataset(self.x, rows, label, reference, params=self.params)
        else:
            self._binned[part].set_label(label[rows])
        return self._binned[part]

    def _sampled(self, part: str, label: np.ndarray, weight: np.ndarray, kept: np.ndarray) -> lgb.Dataset:
        """`part`'s rows that the case-control sample kept (`kept`, a mask over the fold's rows), with their
        `weight`: a subset of the part's binned dataset, so the sample costs no binning of its own."""
        within = {"train": ~self.held, "valid": self.held, "all": np.ones(len(self.rows), bool)}[part]
        sample = (
            self._labelled(part, label).construct().subset(np.flatnonzero(kept[within]).tolist()).construct()
        )
        sample.set_weight(weight[kept & within])
        return sample

    def fit(self, label: np.ndarray) -> lgb.Booster | float:
        if _too_thin(label, self.rows):
            return _mean(label, self.rows)
        weight = (
            None if self.sampling is None else control_sample(label[self.rows], self.draws, self.sampling)
        )
        if weight is None:
            train, valid = self._labelled("train", label), self._labelled("valid", label)
            whole = self._labelled("all", label)
            train_rows, valid_rows = self.train, self.valid
        else:
            kept = weight > 0
            train = self._sampled("train", label, weight, kept)
            valid = self._sampled("valid", label, weight, kept)
            whole = self._sampled("all", label, weight, kept)
            train_rows, valid_rows = self.rows[kept & ~self.held], self.rows[kept & self.held]
        rounds = NUISANCE_ROUNDS
        if not (_too_thin(label, train_rows) or _too_thin(label, valid_rows)):
            probe = lgb.train(
                self.params,
                train,
                num_boost_round=NUISANCE_ROUNDS,
                valid_sets=[valid],
                callbacks=[lgb.early_stopping(PROPENSITY_PATIENCE, verbose=False)],
            )
            rounds = max(1, probe.best_iteration)
        return lgb.train(self.params, whole, num_boost_round=rounds)


def fold_propensities(
    x: Matrix,
    labels: list[np.ndarray],
    fit_rows: np.ndarray,
    predict_rows: np.ndarray,
    groups: np.ndarray,
    seed: int,
    threads: int,
    sampling: ControlSampling | None = None,
) -> list[np.ndarray]:
    """Each label's P(label | x) for `predict_rows`, from early-stopped models fitted on `fit_rows` (one
    fold of `fit_propensity`, for several treatments at once; with `sampling`, on case-control samples)."""
    fold = PropensityFold(x, fit_rows, groups, seed, threads, sampling)
    return [predict(fold.fit(label), x, predict_rows) for label in labels]


def targeted(treated: np.ndarray, randomised: np.ndarray) -> np.ndarray:
    """1 where the team chose the treatment (taken, not drawn by the experiment arm): the part of the
    propensity a model learns."""
    return ((treated == 1) & (randomised == 0)).astype(np.int8)


def with_known(
    targeted_p: np.ndarray, known_propensity: np.ndarray, clip: float
) -> tuple[np.ndarray, np.ndarray]:
    """The propensity from its targeted part and the experiment arm's known one, clipped into
    [clip, 1 - clip], and which rows the clip moved."""
    raw = 1.0 - (1.0 - targeted_p) * (1.0 - known_propensity)
    propensity = np.clip(raw, clip, 1.0 - clip)
    return propensity, propensity != raw


def fit_propensity(
    x: Matrix,
    treated: np.ndarray,
    randomised: np.ndarray,
    known_propensity: np.ndarray,
    splits: list[tuple[np.ndarray, np.ndarray]],
    groups: np.ndarray,
    *,
    clip: float,
    seed: int,
    threads: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold P(treated | x) for every row, clipped into [clip, 1 - clip], and which rows were
    clipped. The targeted part is learnt (`PropensityFold`, held out by `groups`); the experiment arm's
    part is the log's."""
    targeted_p = np.empty(len(treated))
    label = targeted(treated, randomised)
    for fold, (fit_rows, predict_rows) in enumerate(splits):
        (targeted_p[predict_rows],) = fold_propensities(
            x, [label], fit_rows, predict_rows, groups, seed + fold, threads
        )
    return with_known(targeted_p, known_propensity, clip)


def fit_outcomes(
    treated: np.ndarray,
    outcome: np.ndarray,
    splits: list[tuple[np.ndarray, np.ndarray]],
    baseline: np.ndarray,
    propensity: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold E[Y | x, untreated] and E[Y | x, treated] for every row.

    Given the out-of-fold baseline m(x) = E[Y | x] and the propensity e(x), mu1 is mu0 shifted by one
    log-odds per fold (`log_odds_shift`, fitted on the fold's treated rows), and mu0 follows from
    m = e mu1 + (1 - e) mu0 without a model of its own: with a dozen actions over the same rows, the one
    baseline replaces a dozen control-arm models that differ only by the few treated rows each leaves out.
    A free model of a treated arm (a few hundred rows where the team acts) would carry that population's
    level of risk to rows unlike it, where the average effect then rests on the extrapolation; the shift
    carries a relative effect instead, as the shares do.
    """
    mu0, mu1 = baseline, np.empty(len(outcome))
    for _ in range(SHIFT_PASSES):
        margin = logit(mu0)
        for fit_rows, predict_rows in splits:
            exposed = fit_rows[treated[fit_rows] == 1]
            shift = log_odds_shift(margin[exposed], outcome[exposed])
            mu1[predict_rows] = expit(margin[predict_rows] + shift)
        mu0 = np.clip((baseline - propensity * mu1) / (1.0 - propensity), 0.0, 1.0)
    return mu0, mu1


#: the shift's ridge: a treated arm with a handful of rows (or no event at all) moves it only so far from 0
SHIFT_RIDGE = 1.0
SHIFT_BOUND = 5.0
#: the shift is from mu0, which the baseline gives only once mu1 is known (the baseline counts the treated,
#: whose risk is lower): a few passes settle both
SHIFT_PASSES = 4


def log_odds_shift(margin: np.ndarray, label: np.ndarray) -> float:
    """The b maximising the log-likelihood of 0/1 `label` under P = expit(margin + b), less
    SHIFT_RIDGE b^2 / 2 (Newton's method; within +-SHIFT_BOUND): one log-odds ratio for a treated arm."""
    b = 0.0
    for _ in range(50):
        p = expit(margin + b)
        step = (float((label - p).sum()) - SHIFT_RIDGE * b) / (float((p * (1.0 - p)).sum()) + SHIFT_RIDGE)
        b = float(np.clip(b + step, -SHIFT_BOUND, SHIFT_BOUND))
        if abs(step) < 1e-10:
            break
    return b


def cross_fit(
    x: Matrix,
    treated: np.ndarray,
    outcome: np.ndarray,
    randomised: np.ndarray,
    known_propensity: np.ndarray,
    splits: list[tuple[np.ndarray, np.ndarray]],
    groups: np.ndarray,
    *,
    clip: float,
    seed: int,
    threads: int = 1,
) -> Nuisance:
    """Every nuisance for one treatment and one outcome; to reuse the propensity across outcomes, call
    `fit_propensity` once and `fit_outcomes` per outcome."""
    propensity, clipped = fit_propensity(
        x, treated, randomised, known_propensity, splits, groups, clip=clip, seed=seed, threads=threads
    )
    baseline = out_of_fold_baseline(x, outcome, splits, seed=seed, threads=threads)
    mu0, mu1 = fit_outcomes(treated, outcome, splits, baseline, propensity)
    return Nuisance(mu0, mu1, propensity, clipped)


def pseudo_outcomes(treated: np.ndarray, outcome: np.ndarray, n: Nuisance) -> np.ndarray:
    t, y, e = treated.astype(float), outcome.astype(float), n.propensity
    return n.mu1 - n.mu0 + t * (y - n.mu1) / e - (1.0 - t) * (y - n.mu0) / (1.0 - e)


def pseudo_outcome_variance(treated: np.ndarray, n: Nuisance, floor: float = 0.01) -> np.ndarray:
    """Each row's pseudo-outcome variance as the fitted probabilities of a 0/1 outcome imply it (no fitted
    probability below `floor` or above 1 - `floor`)."""
    p0, p1 = (np.clip(mu, floor, 1.0 - floor) for mu in (n.mu0, n.mu1))
    e = n.propensity
    return np.where(treated == 1, p1 * (1.0 - p1) / e**2, p0 * (1.0 - p0) / (1.0 - e) ** 2)


def resampled_accounts(codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each row's weight in one bootstrap draw of whole accounts: how often its account (`codes`, 0 to k - 1)
    was drawn among k draws with replacement. An account's rows move together, so they are drawn together."""
    accounts = int(codes.max()) + 1 if len(codes) else 0
    return np.bincount(rng.integers(0, accounts, accounts), minlength=accounts)[codes].astype(float)


def clustered_norm(scores: np.ndarray, groups: np.ndarray) -> float:
    """sqrt of the summed squares of each group's summed scores: the numerator of a standard error
    clustered on `groups`, since an account's rows move together."""
    _, codes = np.unique(groups, return_inverse=True)
    return float(np.sqrt((np.bincount(codes, weights=scores) ** 2).sum()))


def average_effect(
    psi: np.ndarray,
    treated: np.ndarray,
    outcome: np.ndarray,
    groups: np.ndarray,
    spread: np.ndarray | None = None,
) -> Effect:
    """The mean pseudo-outcome with a standard error clustered on `groups` (an account's rows move
    together), and the naive treated-minus-control difference of outcome means.

    With `spread` (`pseudo_outcome_variance`, for a 0/1 outcome) the standard error is at least the one
    the fitted probabilities imply: the sandwich sees only the residuals that happened, and a few heavily
    weighted treated rows (an experiment arm's, at a propensity of a few per thousand) without an event
    would otherwise look certain."""
    n = len(psi)
    ate = float(psi.mean())
    se = clustered_norm(psi - ate, groups) / n
    if spread is not None:
        se = max(se, float(np.sqrt(spread.sum())) / n)
    t = treated == 1
    naive = float(outcome[t].mean() - outcome[~t].mean()) if t.any() and (~t).any() else float("nan")
    return Effect(ate, se, ate - Z95 * se, ate + Z95 * se, naive, int(t.sum()), int((~t).sum()))


@dataclass(frozen=True)
class RelativeEffect:
    """An effect as a share of the outcome's baseline probability, with its standard error."""

    value: float
    se: float

    def as_dict(self) -> dict[str, float]:
        return {
            "share": self.value,
            "se": self.se,
            "ci_low": self.value - Z95 * self.se,
            "ci_high": self.value + Z95 * self.se,
        }

    def against_never_acting(self, worth_taken_later: float | None) -> RelativeEffect:
        """This share, estimated against the usual course, as a share against never taking the action within
        the horizon; `worth_taken_later` is how much of the action's worth the usual course gave comparable
        untreated weeks anyway by taking it later (`Overlap.worth_taken_later`; None: not measured, no
        change).

        Acting this week gives the action its whole worth; the usual course gives it `worth_taken_later` of
        it. For an action whose effect accrues with the time it works, that is the share of the horizon the
        later takes had left; for one that settles at the renewal, how often it was taken later at all. The
        effect of the whole worth against none is this week's effect over the difference: the Wald ratio of
        an encouragement design, this week's act being the encouragement and the worth it gets the dose. A
        ranking that is the team's course compares with never acting, as the truth does; against the usual
        course an action the team takes soon anyway looks worth little. Beyond `MAX_WORTH_TAKEN_LATER` the
        difference is too small to carry a ratio, and the scale stops growing."""
        scale = never_acting_scale(worth_taken_later)
        return RelativeEffect(self.value * scale, self.se * scale)


def never_acting_scale(worth_taken_later: float | None) -> float:
    """What `RelativeEffect.against_never_acting` multiplies an effect against the usual course by."""
    return 1.0 / (1.0 - min(worth_taken_later or 0.0, MAX_WORTH_TAKEN_LATER))


#: `RelativeEffect.against_never_acting` scales by at most 1 / (1 - this): where the usual course almost
#: always gives the action its worth anyway, this week's act barely changes what it gets
MAX_WORTH_TAKEN_LATER = 0.9


def relative_effect(
    psi: np.ndarray, baseline: np.ndarray, weights: np.ndarray, groups: np.ndarray
) -> RelativeEffect:
    """The DR-learner's second stage with one parameter: the effect as a share theta of the baseline
    probability m(x), tau(x) = theta m(x), by weighted least squares of psi on m without an intercept, with
    a sandwich standard error clustered on `groups`.

    Pseudo-outcomes of a few hundred treated rows cannot carry a tree of conditional effects: fitted one
    anyway, its noise decides which of a dozen actions looks best for an account. One slope per action
    keeps what the data can tell (how much of the risk an action removes) and lets the risk, which the
    baseline model learns from every row, decide who gains most. The standard error says how well the data
    tell even that."""
    scale = max(float((weights * baseline**2).sum()), 1e-12)
    theta = float((weights * psi * baseline).sum()) / scale
    return RelativeEffect(
        theta, clustered_norm(weights * baseline * (psi - theta * baseline), groups) / scale
    )


def effect_and_share(
    psi: np.ndarray,
    treated: np.ndarray,
    outcome: np.ndarray,
    nuisance: Nuisance,
    baseline: np.ndarray,
    groups: np.ndarray,
) -> tuple[Effect, RelativeEffect]:
    """One treatment's average effect on a 0/1 outcome (`average_effect`, floored by
    `pseudo_outcome_variance`) and its effect as a share of `baseline` (`relative_effect`, weighted by
    e(1 - e)), from the same pseudo-outcomes `psi` (`pseudo_outcomes` of the same nuisance)."""
    e = nuisance.propensity
    average = average_effect(psi, treated, outcome, groups, pseudo_outcome_variance(treated, nuisance))
    return average, relative_effect(psi, baseline, e * (1.0 - e), groups)


def effective_sample_size(weights: np.ndarray) -> float:
    """Kish's effective sample size of inverse-propensity weights: how many equally weighted rows they
    are worth; far below the row count means a few rows carry the estimate."""
    total = weights.sum()
    return float(total**2 / (weights**2).sum()) if total > 0 else 0.0


def control_treated_later(treated: np.ndarray, later: np.ndarray, propensity: np.ndarray) -> float | None:
    """Of the untreated rows, weighted by their propensity odds e / (1 - e) to resemble the treated ones,
    the share that got the treatment later within the horizon anyway (`later`, 0/1); None without such rows.
    With `later` the share of the horizon each later take had left (`recency.horizon_left`), the mean of
    that share instead.

    The estimate compares treating now with this control: near 1, it measures acting now against acting a
    few weeks later, and an action that works shows an effect shrunk towards 0 (no "never" arm exists)."""
    control = treated == 0
    odds = propensity[control] / (1.0 - propensity[control])
    total = float(odds.sum())
    return float((odds * later[control]).sum()) / total if total > 0 else None
