"""The renewal-level design's rows: one per renewal, at its window's first weekly cutoff, treated by a take
before the renewal; a renewal whose action was taken before its window opened has none."""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.catalogue import CATALOGUE
from training.causal.design import Design
from training.causal.holdout import HoldoutWeeks
from training.causal.renewal import MIN_RENEWAL_ROWS, RenewalRows, renewal_rows

QBR = "qbr_roi_review"
HORIZON = 90


def _design(to_renewal: list[float], since_qbr: list[float], horizon_left: list[float]) -> Design:
    n = len(to_renewal)
    rows = pd.DataFrame(
        {
            "account_id": [f"a{i}" for i in range(n)],
            "cutoff": pd.Timestamp("2025-03-03", tz="UTC"),
            "days_to_renewal": to_renewal,
            f"days_since_{QBR}": since_qbr,
        }
    )
    empty: dict[str, np.ndarray] = {}
    return Design(
        rows,
        {QBR: CATALOGUE[QBR]},
        empty,
        empty,
        empty,
        empty,
        empty,
        {QBR: np.array(horizon_left)},
        HoldoutWeeks(np.zeros(n, bool), np.full(n, np.nan)),
    )


def test_a_renewal_s_row_opens_its_window_and_is_treated_by_a_take_before_the_renewal() -> None:
    nan = float("nan")
    design = _design(
        # opens a window | too far | too close | taken 30 days ago, 116 before the renewal | 200 days ago
        to_renewal=[88, 100, 80, 86, 85, 87],
        since_qbr=[nan, nan, nan, 30, 200, nan],
        # a take 30 days on (before the renewal at 88 days); none | | | | a take after the renewal at 87 days
        horizon_left=[1 - 30 / 90, 0.0, 1.0, 1.0, 1.0, 1 - 88 / 90],
    )
    got = renewal_rows(design, QBR, HORIZON)
    assert got.rows.tolist() == [0, 4, 5]
    assert got.treated.tolist() == [1, 1, 0]


def test_too_few_untreated_renewals_keep_the_weekly_estimate() -> None:
    enough = RenewalRows(np.arange(2 * MIN_RENEWAL_ROWS), np.repeat([0, 1], MIN_RENEWAL_ROWS).astype(np.int8))
    assert enough.enough
    short = RenewalRows(enough.rows[1:], enough.treated[1:])
    assert not short.enough
