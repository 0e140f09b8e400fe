"""The logistic link, in one place: boosters score in log-odds, calibration and the DR treated arm shift in
log-odds, and probabilities of exactly 0 or 1 must not become infinite logits."""

from __future__ import annotations

import numpy as np

#: probabilities are clipped this far from 0 and 1 before taking logits
EPS = 1e-6


def logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(np.asarray(p, dtype=float), EPS, 1 - EPS)
    out: np.ndarray = np.log(q / (1 - q))
    return out


def expit(z: np.ndarray) -> np.ndarray:
    out: np.ndarray = 1.0 / (1.0 + np.exp(-z))
    return out
