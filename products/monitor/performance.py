"""Realised performance once a cutoff's labels mature, and an estimate of it before they do.

Realised: AUC, Brier and expected calibration error of the champion's probabilities at each cutoff, over
all accounts and per tier, beside the health formula's (Platt-scaled on the champion's calibration
window, as training does, so its Brier is comparable).

Estimated (confidence-based performance estimation, the method of NannyML's CBPE): if the champion is
calibrated, each row's label is a coin with its predicted probability. The estimate is the mean of the
metric over many such draws of all labels, and its 95% interval the draws' 2.5th to 97.5th percentiles:
where the realised figure should land if calibration holds. NannyML itself is not used: its 0.13 release
pins plotly < 6 and LightGBM < 4.6 (Retain pins 7.1 and 4.7) and pulls in FLAML, gcsfs, s3fs and a
telemetry client; the estimator is a few lines of numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

from training.calibration import expected_calibration_error, reliability

#: draws of all labels behind an estimate's interval
DRAWS = 400


@dataclass(frozen=True)
class Realised:
    """One candidate's figures on one cutoff's matured rows (AUC None when the rows hold one class)."""

    rows: int
    positives: int
    auc: float | None
    brier: float
    ece: float


@dataclass(frozen=True)
class Estimated:
    """CBPE's estimate for one cutoff and its 95% interval, from the probabilities alone."""

    rows: int
    expected_positives: float
    auc: float | None
    auc_low: float | None
    auc_high: float | None
    brier: float
    brier_low: float
    brier_high: float


@dataclass(frozen=True)
class Reliability:
    """Mean predicted probability against the observed rate per bin: the reliability plot's points."""

    predicted: list[float]
    observed: list[float]
    rows: list[int]


def auc_of(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """ROC AUC of each row of `y` (draws x rows, 0/1) against scores `p`, by the rank-sum formula (ties
    averaged, as scikit-learn's); NaN where a draw holds one class."""
    y = np.atleast_2d(y).astype(float)
    ranks = rankdata(p)
    positives = y.sum(axis=1)
    negatives = y.shape[1] - positives
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (y @ ranks - positives * (positives + 1) / 2) / (positives * negatives)
    return np.where((positives > 0) & (negatives > 0), auc, np.nan)


def realised(y: np.ndarray, p: np.ndarray) -> Realised:
    y = np.asarray(y, int)
    p = np.asarray(p, float)
    auc = float(auc_of(y, p)[0])
    return Realised(
        rows=len(y),
        positives=int(y.sum()),
        auc=None if np.isnan(auc) else round(auc, 6),
        brier=round(float(np.mean((p - y) ** 2)), 6),
        ece=round(expected_calibration_error(y, p), 6),
    )


def estimated(p: np.ndarray, seed: int, draws: int = DRAWS) -> Estimated:
    """CBPE: AUC and Brier expected if `p` is calibrated, with the 95% range of the realised figure."""
    p = np.asarray(p, float)
    rng = np.random.default_rng(seed)
    y = rng.random((draws, len(p))) < p
    auc = auc_of(y, p)
    brier = np.mean((p - y) ** 2, axis=1)
    has_auc = not np.isnan(auc).all()
    low, high = np.nanpercentile(auc, [2.5, 97.5]) if has_auc else (np.nan, np.nan)
    return Estimated(
        rows=len(p),
        expected_positives=round(float(p.sum()), 2),
        auc=round(float(np.nanmean(auc)), 6) if has_auc else None,
        auc_low=round(float(low), 6) if has_auc else None,
        auc_high=round(float(high), 6) if has_auc else None,
        brier=round(float(brier.mean()), 6),
        brier_low=round(float(np.percentile(brier, 2.5)), 6),
        brier_high=round(float(np.percentile(brier, 97.5)), 6),
    )


def reliability_points(y: np.ndarray, p: np.ndarray, bins: int = 10) -> Reliability:
    predicted, observed, counts = reliability(np.asarray(y, int), np.asarray(p, float), bins)
    keep = counts > 0
    return Reliability(
        predicted=[round(float(v), 4) for v in predicted[keep]],
        observed=[round(float(v), 4) for v in observed[keep]],
        rows=[int(v) for v in counts[keep]],
    )
