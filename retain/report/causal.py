"""The causal intervention report: what each action (or each treatment value of an export) did to the
outcomes, and how far to trust it.

Estimates are doubly robust with cross-fitting (`training.causal.dr`): the average effect with its
interval beside the naive treated-minus-untreated difference, the same pseudo-outcomes averaged within
segments and within the leaves of a shallow tree (who responds best), propensity overlap, three
refutations, and, where an experiment arm ran, the randomised comparison. A `Study` comes from the store's
weekly design (`store_study`) or from a table (`table_study`); `analyse` is pure computation and returns a
JSON-safe report; reading the store or the file happens only in `from_store` and `from_table`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.tree import DecisionTreeRegressor
from tqdm.auto import tqdm

from retain.catalogue import ACTIONS
from retain.errors import RetainError
from retain.settings import Settings
from retain.store import Store
from training.causal import dr
from training.causal.design import OUTCOMES, Design, store_design
from training.config import UpliftConfig

REPORT_VERSION = 1
#: a subgroup with fewer treated rows than this gets no estimate: its interval would say nothing
MIN_SUBGROUP_TREATED = 20
#: refutations re-estimate with fewer folds (placebo, subset) and on one outcome, to bound the cost
REFUTE_FOLDS = 2
SUBSET_SHARE = 0.8
#: a random covariate is noise: the estimate may move by at most this many standard errors
RCC_TOLERANCE = 1.0
#: who responds best: a tree this deep, each leaf holding at least this share of the rows
TREE_DEPTH = 2
TREE_LEAF_SHARE = 0.1
#: in table mode no experiment arm keeps propensities off 0 and 1: clip harder than the store does
TABLE_CLIP = 0.01
#: text columns with more levels are not covariates; with at most SEGMENT_LEVELS they are also segments
MAX_LEVELS = 50
SEGMENT_LEVELS = 10
STORE_SEGMENTS = ("tier", "segment", "health_band")
STORE_EXPLAINERS = ("tier", "health_score", "days_to_renewal", "seat_utilisation", "tenure_days")
QUANTILES = (0.01, 0.1, 0.5, 0.9, 0.99)
#: the model-based variance floor treats no fitted probability as below 1% (or above 99%)
EVENT_FLOOR = 0.01
#: LightGBM threads per nuisance model: models this small scale better one per process, arms side by side
THREADS = 1

Goal = Literal["lower", "higher"] | None


@dataclass(frozen=True)
class Arm:
    """One treatment value against the control, over the study rows holding either (`rows`)."""

    treatment: str
    rows: np.ndarray
    treated: np.ndarray
    randomised: np.ndarray
    known_propensity: np.ndarray


@dataclass(frozen=True)
class Outcome:
    """An outcome's values over the study rows; 0/1 or numeric."""

    name: str
    values: np.ndarray
    binary: bool
    #: which direction is good news (churn: lower); None when the report cannot know
    goal: Goal = None


@dataclass(frozen=True)
class Study:
    """Everything `analyse` estimates from: covariates, arms, outcomes, and the knobs."""

    source: dict[str, Any]
    frame: pd.DataFrame
    features: list[str]
    categories: dict[str, list[str]]
    arms: list[Arm]
    outcomes: list[Outcome]
    #: rows of one group (an account) move together: folds and standard errors cluster on it
    groups: np.ndarray
    segments: list[str]
    explainers: list[str]
    refute_outcome: str
    clip: float
    folds: int
    min_effective: float
    seed: int
    caveats: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Analysis:
    """The JSON-safe report, and per treatment the propensities of its (treated, control) rows to plot."""

    report: dict[str, Any]
    propensity: dict[str, tuple[np.ndarray, np.ndarray]]


# -- building a study: pure on frames -----------------------------------------------------------------


def store_study(design: Design, config: UpliftConfig, source: dict[str, Any]) -> Study:
    """Every catalogue action against not taking it that week, on churn and expansion at the horizon."""
    from training.dataset import category_levels  # imports Feast: only where a study is built, not in workers

    rows = design.rows
    features = [c for c in rows.columns if c not in ("account_id", "cutoff")]
    categories = category_levels(rows, [f for f in features if rows[f].dtype == object])
    everyone = np.arange(len(rows))
    arms = [
        Arm(a, everyone, design.treated[a], design.randomised[a], design.known_propensity[a]) for a in ACTIONS
    ]
    goals: dict[str, Goal] = {"churn": "lower", "expansion": "higher"}
    outcomes = [Outcome(o, design.outcomes[o].astype(float), True, goals[o]) for o in OUTCOMES]
    horizon = int(config.horizon_days or 0)
    return Study(
        source={
            **source,
            "rows": len(rows),
            "accounts": int(rows["account_id"].nunique()),
            "weeks": int(rows["cutoff"].nunique()),
            "cutoffs": [str(rows["cutoff"].min().date()), str(rows["cutoff"].max().date())],
            "horizon_days": horizon,
        },
        frame=rows,
        features=features,
        categories=categories,
        arms=arms,
        outcomes=outcomes,
        groups=design.groups,
        segments=[c for c in STORE_SEGMENTS if c in rows],
        explainers=[c for c in STORE_EXPLAINERS if c in rows],
        refute_outcome="churn",
        clip=config.clip,
        folds=config.folds,
        min_effective=config.min_effective_treated,
        seed=int(config.seed or 0),
        caveats=[
            "Actions the CS team chose (the targeted arm) are assumed to depend only on what the features "
            "record: a reason for acting that no feature captures, and that also moves churn or expansion, "
            "biases the estimate. Only the experiment arm is free of this assumption, hence its comparison.",
            f"Effects count what happened within {horizon} days of the week the action was taken; slower "
            "effects are not seen, and the latest weeks are left out until their horizon has passed.",
            "Each action is compared with not taking it that week, whatever else the account received: "
            "effects of actions that usually come together are not separated.",
            "The weekly rows of one account are not independent: folds and intervals cluster on the account.",
        ],
    )


def _label(value: Any) -> str:
    """A treatment value as text; whole floats as integers (a CSV column of 0/1 with a gap reads as float)."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _arm_labels(column: pd.Series, control: str | None) -> tuple[pd.Series, list[str]]:
    """The column as text labels, and the labels that mean control."""
    from training.dataset import binary_labels

    name = column.name
    labels = column.map(lambda v: None if pd.isna(v) else _label(v))
    seen = sorted(labels.dropna().unique())
    shown = ", ".join(repr(v) for v in seen[:10]) + (" ..." if len(seen) > 10 else "")
    if len(seen) < 2:
        raise RetainError(
            f"--treatment: column {name!r} has {'one value, ' + shown if seen else 'no values'}; "
            "nothing to compare"
        )
    if control is not None:
        wanted = (
            _label(float(control)) if pd.api.types.is_numeric_dtype(column) and _numeric(control) else control
        )
        if wanted not in seen:
            raise RetainError(f"--control: column {name!r} has no value {control!r} (values seen: {shown})")
        return labels, [wanted]
    try:
        flags = binary_labels(column)
    except RetainError:
        raise RetainError(
            f"--treatment: column {name!r} is not 0/1 or true/false (values seen: {shown}); give --control "
            "VALUE, the value of the untreated rows"
        ) from None
    return labels, sorted(set(labels[flags == 0].dropna()))


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _outcome_values(column: pd.Series) -> tuple[np.ndarray, bool]:
    """Floats (NaN where missing), and whether they are 0/1."""
    from training.dataset import binary_labels

    try:
        return binary_labels(column).astype("float64").to_numpy(na_value=np.nan), True
    except RetainError:
        pass
    numbers = pd.to_numeric(column, errors="coerce")
    bad = column[column.notna() & numbers.isna()]
    if len(bad):
        shown = ", ".join(repr(v) for v in bad.astype(str).unique()[:5])
        raise RetainError(
            f"--outcome: column {column.name!r} is neither binary (0/1, true/false, yes/no) nor numeric: "
            f"found {shown}"
        )
    return numbers.to_numpy(dtype="float64", na_value=np.nan), False


def _covariates(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
    """Numbers as floats and text as categories; why each other column was dropped."""
    kept: dict[str, Any] = {}
    dropped: dict[str, str] = {}
    n = len(frame)
    for name in frame.columns:
        column = frame[name]
        unique = column.nunique()
        if pd.api.types.is_bool_dtype(column) or pd.api.types.is_float_dtype(column):
            kept[name] = column.astype("float64")
        elif pd.api.types.is_datetime64_any_dtype(column):
            dropped[name] = "a date/time column"
        elif n > 1 and unique == n:
            dropped[name] = "id-like: a different value on every row"
        elif pd.api.types.is_numeric_dtype(column):
            kept[name] = column.astype("float64")
        elif unique > MAX_LEVELS:
            dropped[name] = f"text with more than {MAX_LEVELS} distinct values"
        else:
            kept[name] = column.map(lambda v: None if pd.isna(v) else str(v)).astype(object)
    return pd.DataFrame(kept, index=frame.index), dropped


def table_study(
    frame: pd.DataFrame,
    treatment: str,
    outcome: str,
    control: str | None,
    *,
    source: dict[str, Any],
    seed: int,
) -> Study:
    """Each treatment value against the control, adjusting for every other usable column."""
    from training.dataset import category_levels

    for option, name in (("--treatment", treatment), ("--outcome", outcome)):
        if name not in frame.columns:
            raise RetainError(
                f"{option}: the table has no column {name!r} (columns: {', '.join(frame.columns)})"
            )
    if treatment == outcome:
        raise RetainError(f"--treatment and --outcome are both {treatment!r}")
    if frame.empty:
        raise RetainError("the table has no rows")
    labels, controls = _arm_labels(frame[treatment], control)
    y, binary = _outcome_values(frame[outcome])
    usable = labels.notna().to_numpy() & ~np.isnan(y)
    if not usable.any():
        raise RetainError(f"no row has both a {treatment!r} and an {outcome!r} value")
    covariates, dropped = _covariates(frame.loc[usable].drop(columns=[treatment, outcome]))
    covariates = covariates.reset_index(drop=True)
    if covariates.empty:
        # nothing to adjust for (a randomised export): the estimate is the difference of means
        covariates = pd.DataFrame({"constant": np.zeros(int(usable.sum()))})
    labels = labels[usable].reset_index(drop=True)
    y = y[usable]
    text = [c for c in covariates.columns if covariates[c].dtype == object]
    is_control = labels.isin(controls).to_numpy()
    arms = []
    for value in sorted(set(labels) - set(controls)):
        rows = np.flatnonzero(is_control | (labels == value).to_numpy())
        zeros = np.zeros(len(rows))
        treated = (labels.iloc[rows] == value).to_numpy(np.int8)
        arms.append(Arm(value, rows, treated, zeros.astype(np.int8), zeros))
    if not arms:
        raise RetainError(f"--treatment: column {treatment!r} has only control rows ({', '.join(controls)})")
    if control is None and len(arms) == 1:
        # a 0/1 column: the treatment is the column itself ("discount", not "1")
        arms = [replace(arms[0], treatment=treatment)]
    return Study(
        source={
            **source,
            "treatment_column": treatment,
            "control": controls,
            "outcome_column": outcome,
            "outcome_type": "binary" if binary else "numeric",
            "rows": len(labels),
            "rows_dropped_missing": int((~usable).sum()),
            "covariates": list(covariates.columns),
            "columns_dropped": dropped,
        },
        frame=covariates,
        features=list(covariates.columns),
        categories=category_levels(covariates, text),
        arms=arms,
        outcomes=[Outcome(outcome, y, binary)],
        groups=np.arange(len(labels)),
        segments=[c for c in text if 2 <= covariates[c].nunique() <= SEGMENT_LEVELS],
        explainers=list(covariates.columns),
        refute_outcome=outcome,
        clip=TABLE_CLIP,
        folds=3,
        min_effective=UpliftConfig().min_effective_treated,
        seed=seed,
        caveats=[
            "No propensity is known from the export: the estimate assumes the table's columns record "
            "everything that drove both who was treated and the outcome. For a randomised experiment this "
            "holds by design; for a log of decisions it is an assumption.",
            "Every row counts as independent: if one customer appears on several rows, the intervals are "
            "too narrow.",
            *(f"Column {c!r} was not used: {why}." for c, why in dropped.items()),
        ],
    )


# -- estimation: pure ---------------------------------------------------------------------------------


def _subset(x: dr.Matrix, rows: np.ndarray) -> dr.Matrix:
    return dr.Matrix(x.values[rows], x.columns, x.categorical)


def _fit_regression(x: dr.Matrix, rows: np.ndarray, y: np.ndarray, seed: int) -> lgb.Booster | float:
    """`dr.fit_binary` for a numeric outcome: a squared-error model, or the mean when the rows are few."""
    values = y[rows]
    if len(rows) < 2 * dr.NUISANCE_PARAMS["min_data_in_leaf"] or values.min() == values.max():
        return float(values.mean()) if len(rows) else 0.0
    data = lgb.Dataset(
        x.values[rows],
        label=values,
        feature_name=x.columns,
        categorical_feature=x.categorical,
        params={"verbose": -1},
    )
    params = dr.NUISANCE_PARAMS | {"objective": "regression", "seed": seed, "num_threads": THREADS}
    return lgb.train(params, data, num_boost_round=dr.NUISANCE_ROUNDS)


def _outcome_models(
    x: dr.Matrix, t: np.ndarray, y: np.ndarray, binary: bool, splits: list[Any], seed: int
) -> tuple[np.ndarray, np.ndarray]:
    if binary:
        return dr.fit_outcomes(x, t, y, splits, seed=seed, threads=THREADS)
    mu = np.empty((2, len(y)))
    for fold, (fit_rows, predict_rows) in enumerate(splits):
        for arm in (0, 1):
            model = _fit_regression(x, fit_rows[t[fit_rows] == arm], y, seed + fold)
            mu[arm, predict_rows] = dr.predict(model, x, predict_rows)
    return mu[0], mu[1]


@dataclass(frozen=True)
class _Fit:
    """One arm's data for one estimate: the rows' matrix, assignment, outcome and groups."""

    x: dr.Matrix
    treated: np.ndarray
    randomised: np.ndarray
    known: np.ndarray
    y: np.ndarray
    binary: bool
    groups: np.ndarray

    def subset(self, rows: np.ndarray) -> _Fit:
        return _Fit(
            _subset(self.x, rows),
            self.treated[rows],
            self.randomised[rows],
            self.known[rows],
            self.y[rows],
            self.binary,
            self.groups[rows],
        )


@dataclass(frozen=True)
class _Pseudo:
    """Each row's pseudo-outcome, and (0/1 outcomes) its variance as the outcome models expect it."""

    psi: np.ndarray
    spread: np.ndarray | None

    def effect(self, fit: _Fit, rows: np.ndarray | None = None) -> dr.Effect:
        """The mean pseudo-outcome over `rows` (all by default) with its account-clustered interval."""
        m = np.arange(len(self.psi)) if rows is None else rows
        spread = None if self.spread is None else self.spread[m]
        return dr.average_effect(self.psi[m], fit.treated[m], fit.y[m], fit.groups[m], spread)


def _pseudo(fit: _Fit, e: np.ndarray, clipped: np.ndarray, splits: list[Any], study: Study) -> _Pseudo:
    mu0, mu1 = _outcome_models(fit.x, fit.treated, fit.y, fit.binary, splits, study.seed)
    nuisance = dr.Nuisance(mu0, mu1, e, clipped)
    psi = dr.pseudo_outcomes(fit.treated, fit.y, nuisance)
    return _Pseudo(psi, dr.expected_spread(fit.treated, nuisance, EVENT_FLOOR) if fit.binary else None)


def _with_se(effect: dr.Effect, se: float) -> dr.Effect:
    return replace(effect, se=se, ci_low=effect.ate - dr.Z95 * se, ci_high=effect.ate + dr.Z95 * se)


def _propensity(fit: _Fit, splits: list[Any], study: Study) -> tuple[np.ndarray, np.ndarray]:
    return dr.fit_propensity(
        fit.x,
        fit.treated,
        fit.randomised,
        fit.known,
        splits,
        clip=study.clip,
        seed=study.seed,
        threads=THREADS,
    )


def _estimate(fit: _Fit, splits: list[Any], study: Study) -> dr.Effect:
    """A complete re-estimate (propensity and outcome models refitted) for a refutation."""
    return _pseudo(fit, *_propensity(fit, splits, study), splits, study).effect(fit)


def amount(value: float | None, binary: bool) -> str:
    """An effect as people read it: percentage points on a 0/1 outcome, else the outcome's unit."""
    if value is None or not math.isfinite(value):
        return "n/a"
    if binary:
        return f"{value * 100:+.1f} pp".replace("-", "−")
    return f"{value:+.3g}".replace("-", "−")


def _interval(low: float, high: float, binary: bool) -> str:
    return f"{amount(low, binary)} to {amount(high, binary)}"


def refutations(
    fit: _Fit, main: dr.Effect, splits: list[Any], study: Study, rng: np.random.Generator
) -> list[dict[str, Any]]:
    """Placebo treatment, random common cause and data subset, each with a plain verdict. They pass when
    the placebo's interval holds 0, when the random covariate moves the estimate by at most RCC_TOLERANCE
    standard errors, and when the subset's estimate stays inside the original interval."""
    b = fit.binary
    nobody = np.zeros(len(fit.y))
    shuffled = replace(
        fit, treated=rng.permutation(fit.treated), randomised=nobody.astype(np.int8), known=nobody
    )
    placebo = _estimate(shuffled, dr.folds(fit.groups, REFUTE_FOLDS, study.seed), study)
    placebo_ok = placebo.ci_low <= 0.0 <= placebo.ci_high
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
    subset = _estimate(part, dr.folds(part.groups, REFUTE_FOLDS, study.seed), study)
    subset_ok = main.ci_low <= subset.ate <= main.ci_high
    return [
        _check(
            "placebo_treatment",
            placebo,
            placebo_ok,
            f"a shuffled copy of the treatment shows {amount(placebo.ate, b)} (95% CI "
            f"{_interval(placebo.ci_low, placebo.ci_high, b)}), "
            + ("an interval holding 0, as it should." if placebo_ok else "an effect where there is none."),
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
            subset,
            subset_ok,
            f"on a random {SUBSET_SHARE:.0%} of the {'accounts' if len(groups) < len(fit.y) else 'rows'} the "
            f"estimate is {amount(subset.ate, b)}, "
            + ("inside" if subset_ok else "outside")
            + f" the original interval ({_interval(main.ci_low, main.ci_high, b)}).",
        ),
    ]


def _check(name: str, effect: dr.Effect, passed: bool, sentence: str) -> dict[str, Any]:
    return {
        "check": name,
        "ate": effect.ate,
        "ci_low": effect.ci_low,
        "ci_high": effect.ci_high,
        "passed": passed,
        "verdict": f"{'Passed' if passed else 'Failed'}: {sentence}",
    }


def holdout(fit: _Fit) -> dr.Effect | None:
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


def segments(
    frame: pd.DataFrame, columns: list[str], pseudo: _Pseudo, fit: _Fit
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The mean pseudo-outcome within each level of each column; levels with too few treated rows are
    listed as skipped instead."""
    found, skipped = [], []
    for column in columns:
        levels = frame[column].map(lambda v: "unknown" if pd.isna(v) else str(v)).to_numpy()
        for level in sorted(set(levels)):
            m = levels == level
            treated = int(fit.treated[m].sum())
            where = {"by": column, "level": level}
            if treated < MIN_SUBGROUP_TREATED:
                skipped.append({**where, "n_treated": treated})
                continue
            effect = pseudo.effect(fit, np.flatnonzero(m))
            found.append({**where, **effect.as_dict()})
    return found, skipped


def _tree_inputs(frame: pd.DataFrame) -> tuple[np.ndarray, list[tuple[str, str | None]]]:
    """Numbers as they are (missing stays missing: the tree routes it), text one-hot per level."""
    columns: list[np.ndarray] = []
    names: list[tuple[str, str | None]] = []
    for name in frame.columns:
        column = frame[name]
        if column.dtype == object:
            for level in sorted({str(v) for v in column.dropna()}):
                columns.append((column.astype(str) == level).to_numpy(float))
                names.append((name, level))
        else:
            columns.append(pd.to_numeric(column, errors="coerce").to_numpy(dtype="float64", na_value=np.nan))
            names.append((name, None))
    return np.column_stack(columns), names


def _threshold(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def _words(
    path: list[tuple[int, bool, float, bool]], names: list[tuple[str, str | None]], has_nan: np.ndarray
) -> str:
    """A leaf's path as one condition per column: numeric splits merged into a range, category splits
    into "is" / "is not"."""
    ranges: dict[str, tuple[float, float, bool]] = {}
    chosen: dict[str, str] = {}
    excluded: dict[str, list[str]] = {}
    for j, left, threshold, missing_left in path:
        column, level = names[j]
        if level is not None:
            if left:
                excluded.setdefault(column, []).append(level)
            else:
                chosen[column] = level
            continue
        low, high, unknown = ranges.get(column, (-math.inf, math.inf, bool(has_nan[j])))
        if left:
            high = min(high, threshold)
        else:
            low = max(low, threshold)
        ranges[column] = (low, high, unknown and missing_left == left)
    parts = []
    for column in dict.fromkeys(names[j][0] for j, *_ in path):
        if column in chosen:
            parts.append(f"{column} is {chosen[column]}")
        elif column in excluded:
            parts.append(f"{column} is not {', '.join(excluded[column])}")
        else:
            low, high, unknown = ranges[column]
            if math.isfinite(low) and math.isfinite(high):
                text = f"{_threshold(low)} < {column} ≤ {_threshold(high)}"
            else:
                text = (
                    f"{column} ≤ {_threshold(high)}"
                    if math.isfinite(high)
                    else f"{column} > {_threshold(low)}"
                )
            parts.append(text + (" (or unknown)" if unknown else ""))
    return " and ".join(parts) or "every row"


def _rules(
    tree: DecisionTreeRegressor, names: list[tuple[str, str | None]], has_nan: np.ndarray
) -> dict[int, str]:
    """Leaf id -> the conditions that lead to it, in words."""
    t = tree.tree_
    out: dict[int, str] = {}

    def walk(node: int, path: list[tuple[int, bool, float, bool]]) -> None:
        if t.children_left[node] == -1:
            out[node] = _words(path, names, has_nan)
            return
        split = (int(t.feature[node]), float(t.threshold[node]), bool(t.missing_go_to_left[node]))
        walk(int(t.children_left[node]), [*path, (split[0], True, split[1], split[2])])
        walk(int(t.children_right[node]), [*path, (split[0], False, split[1], split[2])])

    walk(0, [])
    return out


def responders(
    frame: pd.DataFrame, pseudo: _Pseudo, weights: np.ndarray, fit: _Fit, goal: Goal, seed: int
) -> dict[str, Any]:
    """Who responds best: a shallow tree on the pseudo-outcomes, weighted by e(1 - e) so the rows that
    carry information about the effect lead. Honest: the tree is grown on half of the groups and each
    leaf's effect is the mean pseudo-outcome of the other half, so the best leaf is not flattered by
    the noise that made the split. A leaf with too few treated rows is listed without an effect."""
    x, names = _tree_inputs(frame)
    groups = np.unique(fit.groups)
    grow = np.isin(fit.groups, np.random.default_rng(seed).permutation(groups)[: len(groups) // 2])
    tree = DecisionTreeRegressor(
        max_depth=TREE_DEPTH, min_samples_leaf=max(1, int(TREE_LEAF_SHARE * grow.sum())), random_state=seed
    ).fit(x[grow], pseudo.psi[grow], sample_weight=weights[grow])
    held = np.flatnonzero(~grow)
    leaf_of = tree.apply(x[held])
    estimated, thin = [], []
    for node, rule in _rules(tree, names, np.isnan(x[grow]).any(axis=0)).items():
        m = held[leaf_of == node]
        treated = int(fit.treated[m].sum())
        if treated < MIN_SUBGROUP_TREATED:
            thin.append({"rule": rule, "rows": len(m), "n_treated": treated, "ate": None})
        else:
            estimated.append({"rule": rule, "rows": len(m), **pseudo.effect(fit, m).as_dict()})
    estimated.sort(key=lambda leaf: leaf["ate"])
    return {"leaves": estimated + thin, "summary": _best(estimated, goal, fit.binary)}


def _best(leaves: list[dict[str, Any]], goal: Goal, binary: bool) -> str:
    if not leaves:
        return f"No group has the {MIN_SUBGROUP_TREATED} treated rows an estimate needs."
    if len(leaves) == 1:
        return (
            "Only one group has enough treated rows for an estimate: the data cannot say who responds best."
        )
    low, high = leaves[0], leaves[-1]
    if goal is None:
        return (
            f"The effect is lowest where {low['rule']} ({amount(low['ate'], binary)}) and highest where "
            f"{high['rule']} ({amount(high['ate'], binary)})."
        )
    best = low if goal == "lower" else high
    sentence = (
        f"Responds best where {best['rule']}: {amount(best['ate'], binary)} "
        f"(95% CI {_interval(best['ci_low'], best['ci_high'], binary)}, {best['rows']:,} rows)"
    )
    if best["ci_low"] <= 0.0 <= best["ci_high"]:
        return sentence + "; its interval includes zero, so this is a lead to test, not a finding."
    return sentence + "."


def overlap(fit: _Fit, e: np.ndarray, clipped: np.ndarray, min_effective: float) -> dict[str, Any]:
    """Where the treated rows sit in propensity, and how many equally weighted rows their 1/e weights
    are worth (poor below `min_effective`: then a handful of rows carries the estimate)."""
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
        "poor": effective < min_effective,
    }


def _quantiles(values: np.ndarray) -> dict[str, float | None]:
    return {f"p{round(q * 100)}": float(np.quantile(values, q)) if len(values) else None for q in QUANTILES}


SECTIONS = ("effects", "segments", "segments_skipped", "responders", "overlap", "refutations", "holdout")


def estimate_arm(study: Study, x: dr.Matrix, index: int) -> tuple[dict[str, list[Any]], np.ndarray]:
    """Every section's entries for one arm, and its propensities (a worker's whole job)."""
    arm = study.arms[index]
    sections: dict[str, list[Any]] = {k: [] for k in SECTIONS}
    frame = study.frame.iloc[arm.rows].reset_index(drop=True)
    base = _Fit(
        _subset(x, arm.rows),
        arm.treated,
        arm.randomised,
        arm.known_propensity,
        np.zeros(len(arm.rows)),
        True,
        study.groups[arm.rows],
    )
    splits = dr.folds(base.groups, study.folds, study.seed)
    e, clipped = _propensity(base, splits, study)
    sections["overlap"].append({"treatment": arm.treatment, **overlap(base, e, clipped, study.min_effective)})
    for outcome in study.outcomes:
        fit = replace(base, y=outcome.values[arm.rows], binary=outcome.binary)
        pseudo = _pseudo(fit, e, clipped, splits, study)
        effect = pseudo.effect(fit)
        key = {"treatment": arm.treatment, "outcome": outcome.name}
        sections["effects"].append({**key, **_effect_fields(effect)})
        found, skipped = segments(frame, study.segments, pseudo, fit)
        sections["segments"] += [{**key, **s} for s in found]
        sections["segments_skipped"] += [{**key, **s} for s in skipped]
        tree = responders(frame[study.explainers], pseudo, e * (1.0 - e), fit, outcome.goal, study.seed)
        sections["responders"].append({**key, **tree})
        randomised = holdout(fit) if arm.randomised.any() else None
        if randomised is not None:
            agree = randomised.ci_low <= effect.ci_high and effect.ci_low <= randomised.ci_high
            sections["holdout"].append(
                {
                    **key,
                    **randomised.as_dict(),
                    "dr_ate": effect.ate,
                    "dr_ci_low": effect.ci_low,
                    "dr_ci_high": effect.ci_high,
                    "intervals_overlap": agree,
                }
            )
        if outcome.name == study.refute_outcome:
            checks = refutations(fit, effect, splits, study, np.random.default_rng([study.seed, index]))
            sections["refutations"] += [{**key, **c} for c in checks]
    return sections, e


def analyse(study: Study, jobs: int = 1) -> Analysis:
    """Every section of the report; arms are independent, so `jobs` processes estimate them side by side."""
    x = dr.Matrix.of(study.frame, study.features, study.categories)
    report: dict[str, Any] = {
        "report_version": REPORT_VERSION,
        "source": study.source,
        "outcomes": {
            o.name: {"type": "binary" if o.binary else "numeric", "goal": o.goal} for o in study.outcomes
        },
        "method": {
            "estimator": "doubly robust (AIPW) with cross-fitting; LightGBM nuisance models",
            "folds": study.folds,
            "propensity_clip": study.clip,
            "interval": "95%, standard errors clustered on "
            + ("the account" if len(np.unique(study.groups)) < len(study.groups) else "the row")
            + "; on a 0/1 outcome at least the one the fitted probabilities imply",
            "min_effective_treated": study.min_effective,
            "min_subgroup_treated": MIN_SUBGROUP_TREATED,
            "tree": {
                "max_depth": TREE_DEPTH,
                "min_leaf_share": TREE_LEAF_SHARE,
                "features": study.explainers,
            },
            "refutations": {
                "outcome": study.refute_outcome,
                "folds": REFUTE_FOLDS,
                "subset_share": SUBSET_SHARE,
                "random_common_cause_tolerance_se": RCC_TOLERANCE,
            },
        },
    }
    sections: dict[str, list[Any]] = {k: [] for k in SECTIONS}
    propensity: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    work = (delayed(estimate_arm)(study, x, i) for i in range(len(study.arms)))
    done = Parallel(n_jobs=min(jobs, len(study.arms)), return_as="generator")(work)
    for arm, (parts, e) in zip(
        study.arms,
        tqdm(done, total=len(study.arms), desc="causal report", unit="arm", disable=None),
        strict=True,
    ):
        for k, entries in parts.items():
            sections[k] += entries
        t = arm.treated == 1
        propensity[arm.treatment] = (e[t], e[~t])
    report.update(sections)
    report["caveats"] = [*study.caveats, *_caveats(report, study)]
    return Analysis(_json_safe(report), propensity)


def _effect_fields(effect: dr.Effect) -> dict[str, Any]:
    """The fields every `effects` entry holds (beside treatment and outcome), no more."""
    fields = effect.as_dict()
    return {k: fields[k] for k in ("ate", "ci_low", "ci_high", "naive_difference", "n_treated", "n_control")}


def _caveats(report: dict[str, Any], study: Study) -> list[str]:
    """The caveats this run's numbers call for."""
    out = [
        "The naive difference compares treated with untreated rows as they come: when treatment goes to "
        "rows that were already more (or less) likely to have the outcome, it mixes who was chosen with "
        "what the treatment did. The gap between it and the adjusted estimate is that selection.",
        "An interval that spans 0 means the data cannot tell the effect from none, not that there is none; "
        "small arms give wide intervals.",
        f"Refutations ran on {study.refute_outcome} only, the placebo and subset checks with "
        f"{REFUTE_FOLDS} folds instead of {study.folds}, to bound the cost.",
    ]
    poor = [o["treatment"] for o in report["overlap"] if o["poor"]]
    if poor:
        out.append(
            f"Poor overlap (fewer than {study.min_effective:g} effective treated rows) for "
            f"{', '.join(poor)}: their estimates lean on a handful of rows."
        )
    clipped = [o["treatment"] for o in report["overlap"] if o["clipped_share"] > 0.01]
    if clipped:
        out.append(
            f"More than 1% of propensities were clipped to [{study.clip:g}, {1 - study.clip:g}] for "
            f"{', '.join(clipped)}: some rows were (almost) certain to be treated or not, so no comparison "
            "exists for them and the clip trades a little bias for a finite variance."
        )
    failed = sorted({f"{r['treatment']} ({r['check']})" for r in report["refutations"] if not r["passed"]})
    if failed:
        out.append(f"Refutations failed for {', '.join(failed)}: treat those estimates with suspicion.")
    if report["segments_skipped"]:
        out.append(
            f"Subgroups with fewer than {MIN_SUBGROUP_TREATED} treated rows get no estimate "
            f"({len(report['segments_skipped'])} skipped; listed in the JSON under segments_skipped)."
        )
    return out


def _json_safe(value: Any) -> Any:
    """NaN and infinities become null, numpy scalars Python ones: `json.dumps(allow_nan=False)` holds."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    return value


# -- the I/O edges --------------------------------------------------------------------------------------


def from_store(store: Store, settings: Settings, jobs: int = 1) -> Analysis:
    """The report over the store's weekly design: every action, on churn and expansion."""
    config = UpliftConfig().resolved(settings)
    design = store_design(store, settings, int(config.horizon_days or settings.horizon_days), config.threads)
    source = {"mode": "store", "store": str(store.root.resolve())}
    return analyse(store_study(design, config, source), jobs)


def from_table(
    path: Path, treatment: str, outcome: str, control: str | None, settings: Settings, jobs: int = 1
) -> Analysis:
    """The report over an experiment or intervention export."""
    from training.dataset import read_table

    source = {"mode": "table", "table": str(path.resolve())}
    frame = read_table(path)
    return analyse(table_study(frame, treatment, outcome, control, source=source, seed=settings.seed), jobs)
