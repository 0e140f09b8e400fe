"""Which columns of a table the causal report adjusts for: every usable one except those the treatment or
the outcome likely changed (`choose_covariates`).

Adjusting for a column recorded after the treatment (a purchase it prompted, a later visit count) blocks
part of the effect or opens a path the randomisation had closed, and biases the estimate (usually towards
0) even on a perfect experiment. A table does not say when each column was recorded, so two signs stand
in for it, each with a threshold the tests and docs/methods/causal-report.md state:

- *after the outcome*, in any data: the column predicts the outcome almost perfectly. The outcome's mean
  within each of the column's levels (text) or rank bins (numbers) scores the rows; the column is left
  out at an AUC of `OUTCOME_AUC` or more (0/1 outcome) or an R² of `OUTCOME_R2` or more (numeric). No
  covariate known before the treatment separates an outcome that well in the data this report is for.
- *after the treatment*, only where the data looks randomised: the column differs between an arm and the
  control by at least `FAR_Z` standard errors of its standardised mean difference (SMD) and by an SMD of
  at least `MATERIAL_SMD`. In observational data a confounder legitimately differs between the arms (it is why
  they differ), so this sign is read only when at least `RANDOMISED_SHARE` of the columns examined, and
  at least `MIN_BALANCED` of them, are balanced within chance, as the pre-treatment columns of a
  randomised experiment are: under the z that all k columns examined stay below together with
  probability 1 - `CHANCE_FAMILY` (Bonferroni: 3.2 for 7 columns).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from retain.report.balance import MATERIAL_SMD, indicators, standardised_differences
from retain.report.schema import DroppedCovariate, finite

#: the chance that any pre-treatment column of a randomised experiment counts as unbalanced
CHANCE_FAMILY = 0.01
#: the data looks randomised when this share of the examined columns, and this many, are balanced
RANDOMISED_SHARE = 0.8
MIN_BALANCED = 4
#: in randomised-looking data, a column is post-treatment beyond this many standard errors (chance ~1e-6)
FAR_Z = 5.0
#: a column is post-outcome when its per-bin outcome means reach this AUC (0/1) or R² (numeric)
OUTCOME_AUC = 0.98
OUTCOME_R2 = 0.95
#: numbers are cut into at most this many quantile bins to score the outcome
OUTCOME_BINS = 20


@dataclass(frozen=True)
class CovariateChoice:
    """The columns to adjust for, those left out with why, and whether the data looked randomised."""

    used: list[str]
    dropped: list[DroppedCovariate]
    looks_randomised: bool


@dataclass(frozen=True)
class Imbalance:
    """A column's largest standardised mean difference between an arm and the control, in SMD and in
    standard errors of an SMD under randomisation (`z`)."""

    smd: float
    z: float


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
    chance_z = NormalDist().inv_cdf(1 - CHANCE_FAMILY / (2 * max(len(imbalance), 1)))
    balanced = sum(abs(i.z) < chance_z for i in imbalance.values())
    randomised = balanced >= MIN_BALANCED and balanced >= RANDOMISED_SHARE * len(imbalance)
    if randomised:
        for column, i in imbalance.items():
            if abs(i.z) >= FAR_Z and abs(i.smd) >= MATERIAL_SMD:
                dropped.append(_after_treatment(column, i, balanced, len(imbalance)))
    gone = {d.column for d in dropped}
    return CovariateChoice([c for c in frame.columns if c not in gone], dropped, randomised)


def _after_treatment(column: str, i: Imbalance, balanced: int, examined: int) -> DroppedCovariate:
    return DroppedCovariate(
        column=column,
        reason=(
            f"it differs between the arms far beyond chance (SMD {i.smd:.2g}, {abs(i.z):.0f} standard "
            f"errors) in what looks like a randomised experiment ({balanced} of {examined} columns "
            "balanced); a column the treatment changed biases the effect"
        ),
        statistic="smd",
        value=finite(i.smd),
    )


def _after_outcome(column: pd.Series, outcome: np.ndarray, binary: bool) -> DroppedCovariate | None:
    """The column left out if it scores the outcome (by its per-bin means) above the threshold."""
    score = _bin_means(column, outcome)
    if binary:
        auc = _auc(score, outcome)
        if auc < OUTCOME_AUC:
            return None
        return _post_outcome(column, f"predicts the outcome almost perfectly (AUC {auc:.3f})", "auc", auc)
    spread = float(np.var(outcome))
    r2 = 1.0 - float(np.mean((outcome - score) ** 2)) / spread if spread > 0 else 0.0
    if r2 < OUTCOME_R2:
        return None
    return _post_outcome(column, f"explains almost all of the outcome (R² {r2:.3f})", "r2", r2)


def _post_outcome(
    column: pd.Series, what: str, statistic: Literal["auc", "r2"], value: float
) -> DroppedCovariate:
    return DroppedCovariate(
        column=str(column.name),
        reason=f"it {what}, as a column recorded after the outcome does; adjusting for it biases the effect",
        statistic=statistic,
        value=value,
    )


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
    return max(found, key=lambda i: abs(i.z), default=Imbalance(0.0, 0.0))


def _smd(values: np.ndarray, control: np.ndarray, treated: np.ndarray) -> Imbalance:
    """Standardised mean difference over the non-missing values, and its z under randomisation (an SMD's
    standard error is about sqrt(1/n_treated + 1/n_control))."""
    rows = treated | control
    smd = float(standardised_differences(values[rows], treated[rows].astype(np.int8))[0])
    if np.isnan(smd) or smd == 0:
        return Imbalance(0.0, 0.0)
    known = ~np.isnan(values)
    return Imbalance(smd, smd / float(np.sqrt(1 / (treated & known).sum() + 1 / (control & known).sum())))
