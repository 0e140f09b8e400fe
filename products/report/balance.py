"""Covariate balance: how far an arm's treated rows differ from its control rows in each covariate, before
and after the inverse-propensity weights of the doubly robust estimate.

A weighting that works makes the weighted arms look alike in every measured column; a column still far
apart after weighting (|SMD| above `MATERIAL_SMD`) is one the propensity model did not capture, and the
estimate then leans on the outcome models alone to adjust for it. Pure: the estimate's worker passes the
propensities it already fitted.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from products.report.schema import ArmBalance, CovariateBalance, finite

#: the usual line for a material imbalance in a standardised mean difference (Austin 2009)
MATERIAL_SMD = 0.1


def indicators(column: pd.Series) -> list[tuple[str | None, np.ndarray]]:
    """A column as the balance compares it: numbers as floats (NaN where missing), text as one 0/1
    indicator per level, each with its level (None for numbers)."""
    if column.dtype == object or isinstance(column.dtype, pd.CategoricalDtype):
        return [(str(level), (column == level).to_numpy(float)) for level in column.dropna().unique()]
    return [(None, pd.to_numeric(column).to_numpy(dtype=float, na_value=np.nan))]


def pooled_spread(values: np.ndarray, treated: np.ndarray) -> np.ndarray:
    """Per column of `values` (rows x columns, NaN where missing), sqrt((s²_treated + s²_control) / 2) over
    the non-missing values, unweighted; NaN with fewer than two values on a side."""
    return _sides(values, treated, None)[1]


def standardised_differences(
    values: np.ndarray, treated: np.ndarray, weights: np.ndarray | None = None
) -> np.ndarray:
    """Per column of `values` (rows x columns, NaN where missing), the treated minus the control (weighted)
    mean over the non-missing values, in units of the unweighted `pooled_spread`. The yardstick stays the
    same with and without weights, so that weighting moves only the means (Austin & Stuart 2015). NaN with
    fewer than two values on a side; 0 for equal means; ±inf for a column constant within each arm but
    different between them."""
    difference, spread = _sides(values, treated, weights)
    with np.errstate(divide="ignore", invalid="ignore"):
        smd = np.where(spread > 0, difference / spread, np.sign(difference) * np.inf)
    return np.where(np.isnan(spread), np.nan, np.where(difference == 0, 0.0, smd))


def _sides(
    values: np.ndarray, treated: np.ndarray, weights: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Per column: the difference of (weighted) means, and the unweighted pooled spread (NaN with fewer
    than two values on a side)."""
    v = np.asarray(values, dtype=float).reshape(len(treated), -1)
    w = np.ones(len(v)) if weights is None else np.asarray(weights, dtype=float)
    known = ~np.isnan(v)
    filled = np.where(known, v, 0.0)
    means, variances, counts = [], [], []
    with np.errstate(divide="ignore", invalid="ignore"):
        for side in (treated == 1, treated != 1):
            present = known & side[:, None]
            n = present.sum(axis=0)
            weighted = present * w[:, None]
            means.append((weighted * filled).sum(axis=0) / weighted.sum(axis=0))
            plain = (present * filled).sum(axis=0) / n
            variances.append((present * (filled - plain) ** 2).sum(axis=0) / (n - 1))
            counts.append(n)
    enough = (counts[0] >= 2) & (counts[1] >= 2)
    spread = np.where(enough, np.sqrt((variances[0] + variances[1]) / 2.0), np.nan)
    return means[0] - means[1], spread


def arm_balance(
    treatment: str, frame: pd.DataFrame, treated: np.ndarray, propensity: np.ndarray
) -> ArmBalance:
    """Each covariate of `frame` (text: each level) between the treated and the control rows, before and
    after weighting each row by the inverse of its probability of the arm it got (1/e treated, 1/(1-e)
    control: the weights of the average effect), worst after weighting first."""
    compared = [(str(c), level, values) for c in frame.columns for level, values in indicators(frame[c])]
    if not compared:
        return ArmBalance(treatment=treatment, covariates=[], imbalanced_before=0, imbalanced_after=0)
    values = np.column_stack([v for _, _, v in compared])
    weights = np.where(treated == 1, 1.0 / propensity, 1.0 / (1.0 - propensity))
    before = standardised_differences(values, treated)
    after = standardised_differences(values, treated, weights)
    entries = [
        CovariateBalance(
            column=column,
            level=level,
            before=finite(b),
            after=finite(a),
            imbalanced=bool(abs(a) > MATERIAL_SMD),
        )
        for (column, level, _), b, a in zip(compared, before, after, strict=True)
    ]
    # those that cannot be measured (too few rows with a value) last
    entries.sort(key=lambda c: (c.after is None, -abs(c.after or 0.0)))
    return ArmBalance(
        treatment=treatment,
        covariates=entries,
        imbalanced_before=int(np.sum(np.abs(before) > MATERIAL_SMD)),
        imbalanced_after=int(np.sum(np.abs(after) > MATERIAL_SMD)),
    )
