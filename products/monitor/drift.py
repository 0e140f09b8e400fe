"""Input drift: how far each feature's distribution at a cutoff has moved from the champion's training
window, as a population stability index (PSI).

PSI = sum over bins of (current share - reference share) * ln(current share / reference share). Numeric
features are cut at the reference's deciles (values beyond them fall in the end bins, a missing value is
a bin of its own); categories and flags are their own bins. Below 0.1 the population is stable, 0.1 to
0.5 worth watching, 0.5 and above drifted. The usual reading draws "drifted" at 0.25; on simulated books
a cluster of product incidents carries error and ticket counts past it for two or three monthly cutoffs
and back, while a release that changes how use is recorded moves the features reading it to 2 and more
(`experiments/monitor_drift.py` judges both lines over seeds; `docs/results.md` has its figures).
Empty bins are floored at a share of 1e-4 so one new category gives a large, finite index.

Sampling alone inflates PSI by about (bins - 1) / rows per side (0.015 for 10 bins and 600 accounts), far
below the thresholds.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

WATCH = 0.1
DRIFTED = 0.5
BINS = 10
FLOOR = 1e-4

Level = Literal["stable", "watch", "drifted"]


def level(psi: float) -> Level:
    if psi >= DRIFTED:
        return "drifted"
    return "watch" if psi >= WATCH else "stable"


def _index(reference: np.ndarray, current: np.ndarray) -> float:
    """PSI between two share vectors over the same bins."""
    ref = np.maximum(reference, FLOOR)
    cur = np.maximum(current, FLOOR)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def _shares(codes: np.ndarray, bins: int) -> np.ndarray:
    return np.bincount(codes, minlength=bins) / max(len(codes), 1)


def numeric_psi(reference: pd.Series, current: pd.Series, bins: int = BINS) -> float:
    """PSI of a numeric column, cut at the reference's quantiles; missing values are a bin of their own."""
    ref = pd.to_numeric(reference, errors="coerce").to_numpy(float)
    cur = pd.to_numeric(current, errors="coerce").to_numpy(float)
    known = ref[~np.isnan(ref)]
    edges = np.unique(np.quantile(known, np.linspace(0, 1, bins + 1)[1:-1])) if known.size else np.zeros(0)

    def codes(values: np.ndarray) -> np.ndarray:
        out = np.searchsorted(edges, values, side="right")
        return np.where(np.isnan(values), len(edges) + 1, out)

    width = len(edges) + 2
    return _index(_shares(codes(ref), width), _shares(codes(cur), width))


def categorical_psi(reference: pd.Series, current: pd.Series) -> float:
    """PSI of a categorical column (missing is a category of its own)."""
    ref = reference.astype(object).where(reference.notna(), "<missing>")
    cur = current.astype(object).where(current.notna(), "<missing>")
    levels = sorted(set(ref) | set(cur), key=str)
    index = {value: i for i, value in enumerate(levels)}
    return _index(
        _shares(ref.map(index).to_numpy(int), len(levels)), _shares(cur.map(index).to_numpy(int), len(levels))
    )


def psi(reference: pd.Series, current: pd.Series) -> float:
    """PSI of one column, categorical for text, booleans and 0/1 flags, numeric otherwise."""
    kinds = pd.concat([reference, current]).dropna()
    numeric = pd.api.types.is_numeric_dtype(kinds) and not pd.api.types.is_bool_dtype(kinds)
    if numeric and kinds.nunique() > 2:
        return numeric_psi(reference, current)
    return categorical_psi(reference, current)


@dataclass(frozen=True)
class FeatureDrift:
    """One feature at one cutoff against the reference window."""

    feature: str
    cutoff: str
    psi: float
    level: Level


def feature_drift(
    rows: pd.DataFrame, reference: Sequence[pd.Timestamp], features: Sequence[str]
) -> list[FeatureDrift]:
    """Each feature's PSI at every cutoff after the reference window, against the window's rows pooled.

    `rows` holds `cutoff` and the features; `reference` are the cutoffs the champion was trained on."""
    base = rows[rows["cutoff"].isin(reference)]
    if base.empty:
        return []
    later = sorted(c for c in rows["cutoff"].unique() if c > max(reference))
    out = []
    for cutoff in later:
        current = rows[rows["cutoff"] == cutoff]
        for name in features:
            value = round(psi(base[name], current[name]), 4)
            out.append(FeatureDrift(name, pd.Timestamp(cutoff).date().isoformat(), value, level(value)))
    return out


def alarmed(
    values: Sequence[FeatureDrift], unwatched: Collection[str], threshold: float = DRIFTED
) -> list[tuple[FeatureDrift, FeatureDrift]]:
    """(the cutoff before, the cutoff) where a feature not `unwatched` was at or above `threshold` at both:
    a one-cutoff blip (a holiday week, say) is shown but not alarmed. `values` in cutoff order."""
    by_feature: dict[str, list[FeatureDrift]] = {}
    for value in values:
        by_feature.setdefault(value.feature, []).append(value)
    return [
        (before, now)
        for name, series in by_feature.items()
        if name not in unwatched
        for before, now in itertools.pairwise(series)
        if before.psi >= threshold and now.psi >= threshold
    ]
