"""Which columns of a table the causal report adjusts for: every usable one except those the treatment or
the outcome likely changed (`choose_covariates`).

Adjusting for a column recorded after the treatment (a purchase it prompted, a later visit count) blocks
part of the effect or opens a path the randomisation had closed, and biases the estimate (usually towards
0) even on a perfect experiment. A table does not say when each column was recorded, so three signs stand
in for it, each with a threshold the tests and docs/methods/causal-report.md state:

- *after the outcome*, in any data: the column predicts the outcome almost perfectly. The outcome's mean
  within each of the column's levels (text) or rank bins (numbers) scores the rows; the column is left
  out at an AUC of `OUTCOME_AUC` or more (0/1 outcome) or an R² of `OUTCOME_R2` or more (numeric). No
  covariate known before the treatment separates an outcome that well in the data this report is for.
- *implies the outcome*, in any data, for a 0/1 outcome: some of the column's rows, at least
  `IMPLIES_ROWS` of them (a text level, the missing rows, or a number's rows at most or at least some
  value), almost all (`IMPLIES_SHARE`) have the outcome's rarer value: a purchase that only converted
  accounts have. Such a column may be rare and barely predictive overall (a low AUC), yet adjusting for
  it removes the effect the treatment had through it. Only the rarer value counts: "the common value
  wherever the column is absent" (no churn without a renewal due) is how pre-treatment columns look too.
- *after the treatment*, only where the data looks randomised: the column differs between an arm and the
  control beyond chance, whatever its size: its standardised mean difference (SMD) is at least the z
  that all the comparisons made (columns, text levels, arms) of a randomised experiment stay below
  together with probability 1 - `LEAVE_OUT_FAMILY` (Bonferroni). In observational data a confounder
  legitimately differs between the arms (it is why they differ), so this sign is read only when at least
  `RANDOMISED_SHARE` of the columns examined, and at least `MIN_BALANCED` of them, are balanced within
  chance (Bonferroni at `CHANCE_FAMILY`), as the pre-treatment columns of a randomised experiment are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from products.report.balance import indicators, standardised_differences
from products.report.schema import CovariateFlag, finite

#: the chance that any pre-treatment column of a randomised experiment counts as unbalanced
CHANCE_FAMILY = 0.01
#: the data looks randomised when this share of the examined columns, and this many, are balanced
RANDOMISED_SHARE = 0.8
MIN_BALANCED = 4
#: in randomised-looking data, the chance that any pre-treatment column is left out as post-treatment
LEAVE_OUT_FAMILY = 0.001
#: a column is post-outcome when its per-bin outcome means reach this AUC (0/1) or R² (numeric)
OUTCOME_AUC = 0.98
OUTCOME_R2 = 0.95
#: numbers are cut into at most this many quantile bins to score the outcome
OUTCOME_BINS = 20
#: a column implies a 0/1 outcome when this many of its rows or more have its rarer value on this share
IMPLIES_ROWS = 30
IMPLIES_SHARE = 0.99


@dataclass(frozen=True)
class CovariateChoice:
    """The columns to adjust for, those left out with why, and whether the data looked randomised."""

    used: list[str]
    dropped: list[CovariateFlag]
    looks_randomised: bool


@dataclass(frozen=True)
class Imbalance:
    """A column's largest standardised mean difference between an arm and the control, in SMD and in
    standard errors of an SMD under randomisation (`z`), over its `comparisons` (levels x arms)."""

    smd: float
    z: float
    comparisons: int = 1


@dataclass(frozen=True)
class Implication:
    """The largest group of a column's rows that almost all have the outcome's rarer value (`value`):
    where (in words), how many rows, how many of them have it, and that value's share of the other rows."""

    where: str
    rows: int
    hits: int
    value: float
    elsewhere: float


def choose_covariates(
    frame: pd.DataFrame, arms: pd.Series, controls: Sequence[str], outcome: np.ndarray, binary: bool
) -> CovariateChoice:
    """Every column of `frame` (numbers as floats, text as objects) but those that look post-outcome or,
    in randomised-looking data, post-treatment. `arms` holds each row's treatment value, `controls` those
    meaning untreated, `outcome` the outcome values (0/1 when `binary`)."""
    dropped = [d for d in (_after_outcome(frame[c], outcome, binary) for c in frame.columns) if d]
    gone = {d.column for d in dropped}
    rest = [c for c in frame.columns if c not in gone]
    control = arms.isin(list(controls)).to_numpy()
    treated = [(arms == value).to_numpy() for value in sorted(set(arms.dropna()) - set(controls))]
    imbalance = {c: _imbalance(frame[c], control, treated) for c in rest}
    comparisons = max(sum(i.comparisons for i in imbalance.values()), 1)
    balanced = sum(abs(i.z) < _chance_z(CHANCE_FAMILY, comparisons) for i in imbalance.values())
    randomised = balanced >= MIN_BALANCED and balanced >= RANDOMISED_SHARE * len(imbalance)
    if randomised:
        far = _chance_z(LEAVE_OUT_FAMILY, comparisons)
        dropped += [
            _after_treatment(column, i, far, comparisons, f"{balanced} of {len(imbalance)} columns balanced")
            for column, i in imbalance.items()
            if abs(i.z) >= far
        ]
    gone = {d.column for d in dropped}
    return CovariateChoice([c for c in frame.columns if c not in gone], dropped, randomised)


def _chance_z(family: float, comparisons: int) -> float:
    """The |z| that `comparisons` standard normals all stay below with probability at least 1 - `family`
    (Bonferroni)."""
    return NormalDist().inv_cdf(1 - family / (2 * comparisons))


def _after_treatment(column: str, i: Imbalance, far: float, comparisons: int, balanced: str) -> CovariateFlag:
    return CovariateFlag(
        column=column,
        reason=(
            f"it differs between the arms far beyond chance ({abs(i.z):.1f} standard errors, SMD "
            f"{i.smd:.2g}; chance passes {far:.1f} in any of the {comparisons} comparisons once in "
            f"{1 / LEAVE_OUT_FAMILY:,.0f} experiments) in what looks like a randomised experiment "
            f"({balanced}); a column the treatment changed biases the effect, whatever its size"
        ),
        statistic="z",
        value=finite(i.z),
    )


def _after_outcome(column: pd.Series, outcome: np.ndarray, binary: bool) -> CovariateFlag | None:
    """The column left out if it scores the outcome (by its per-bin means) above the threshold or, for a
    0/1 outcome, implies it on some of its rows."""
    score = _bin_means(column, outcome)
    if binary:
        auc = _auc(score, outcome)
        if auc >= OUTCOME_AUC:
            what = f"predicts the outcome almost perfectly (AUC {auc:.3f})"
            return _post_outcome(column, what, "auc", auc)
        found = _implication(column, outcome)
        return _implied(column, found) if found else None
    spread = float(np.var(outcome))
    r2 = 1.0 - float(np.mean((outcome - score) ** 2)) / spread if spread > 0 else 0.0
    if r2 < OUTCOME_R2:
        return None
    return _post_outcome(column, f"explains almost all of the outcome (R² {r2:.3f})", "r2", r2)


def _post_outcome(
    column: pd.Series, what: str, statistic: Literal["auc", "r2"], value: float
) -> CovariateFlag:
    return CovariateFlag(
        column=str(column.name),
        reason=f"it {what}, as a column recorded after the outcome does; adjusting for it biases the effect",
        statistic=statistic,
        value=value,
    )


def _implied(column: pd.Series, i: Implication) -> CovariateFlag:
    share = i.hits / i.rows
    return CovariateFlag(
        column=str(column.name),
        reason=(
            f"it implies the outcome: the outcome is {i.value:g} on {i.hits:,} of the {i.rows:,} rows where "
            f"it {i.where}, against {i.elsewhere:.1%} of the other rows, as with a column recorded after "
            "the outcome or a step on the way to it (a purchase that only converted rows have); adjusting "
            "for it removes the effect that runs through it, however rare it is"
        ),
        statistic="implication",
        value=share,
    )


def _implication(column: pd.Series, outcome: np.ndarray) -> Implication | None:
    """The largest group of at least `IMPLIES_ROWS` rows (a text level, the missing rows, or a number's
    rows at most or at least some value) with the outcome's rarer value on `IMPLIES_SHARE` of them."""
    value = 1.0 if float(np.mean(outcome)) <= 0.5 else 0.0
    hit = outcome == value
    if column.dtype == object:
        levels = column.astype(str).where(column.notna(), "missing").to_numpy()
        groups = [
            (f"is {level!r}" if level != "missing" else "is missing", levels == level)
            for level in np.unique(levels)
        ]
    else:
        numbers = column.to_numpy(dtype=float, na_value=np.nan)
        groups = [("is missing", np.isnan(numbers)), *_tails(numbers, hit)]
    found = [
        Implication(where, int(rows.sum()), int(hit[rows].sum()), value, _share(hit[~rows]))
        for where, rows in groups
        if rows.sum() >= IMPLIES_ROWS and hit[rows].sum() >= IMPLIES_SHARE * rows.sum()
    ]
    return max(found, key=lambda i: i.rows, default=None)


def _tails(numbers: np.ndarray, hit: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """A number's largest run of rows from the bottom (at most some value) and from the top (at least
    some value), cut between distinct values, with the rarer value on `IMPLIES_SHARE` of them."""
    known = ~np.isnan(numbers)
    values = np.sort(numbers[known])
    ordered = hit[known][np.argsort(numbers[known], kind="stable")]
    out = []
    for where, v, h in (("at most", values, ordered), ("at least", values[::-1], ordered[::-1])):
        count = np.arange(1, len(v) + 1)
        cut = np.append(v[1:] != v[:-1], True)
        fits = cut & (count >= IMPLIES_ROWS) & (np.cumsum(h) >= IMPLIES_SHARE * count)
        if fits.any():
            edge = v[np.flatnonzero(fits)[-1]]
            out.append(
                (f"is {where} {edge:g}", known & (numbers <= edge if where == "at most" else numbers >= edge))
            )
    return out


def _share(hit: np.ndarray) -> float:
    return float(hit.mean()) if len(hit) else 0.0


def _bins(column: pd.Series) -> pd.Series:
    """Each row's bin: its level for text, its quantile bin for numbers; missing values a bin of their own."""
    if column.dtype == object:
        bins = column.astype(str)
    else:
        # by average rank, so tied values (a spend of 0 for every churned row) share one bin
        ranks = column.rank(method="average")
        bins = ((ranks - 1) * OUTCOME_BINS // max(int(ranks.count()), 1)).astype(str)
    return bins.where(column.notna(), "missing")


def _bin_means(column: pd.Series, outcome: np.ndarray) -> np.ndarray:
    bins = _bins(column).to_numpy()
    return pd.Series(outcome).groupby(bins).transform("mean").to_numpy()


def _auc(score: np.ndarray, labels: np.ndarray) -> float:
    """The chance a random positive row scores above a random negative one (ties count half); 0.5, no
    separation, when the outcome has one value only."""
    return float(roc_auc_score(labels, score)) if len(np.unique(labels)) == 2 else 0.5


def _imbalance(column: pd.Series, control: np.ndarray, treated: list[np.ndarray]) -> Imbalance:
    """The largest imbalance over the arms and, for text, over the levels (each a 0/1 indicator)."""
    found = [_smd(values, control, arm) for _, values in indicators(column) for arm in treated]
    worst = max(found, key=lambda i: abs(i.z), default=Imbalance(0.0, 0.0))
    return Imbalance(worst.smd, worst.z, max(len(found), 1))


def _smd(values: np.ndarray, control: np.ndarray, treated: np.ndarray) -> Imbalance:
    """Standardised mean difference over the non-missing values, and its z under randomisation (an SMD's
    standard error is about sqrt(1/n_treated + 1/n_control))."""
    rows = treated | control
    smd = float(standardised_differences(values[rows], treated[rows].astype(np.int8))[0])
    if np.isnan(smd) or smd == 0:
        return Imbalance(0.0, 0.0)
    known = ~np.isnan(values)
    return Imbalance(smd, smd / float(np.sqrt(1 / (treated & known).sum() + 1 / (control & known).sum())))
