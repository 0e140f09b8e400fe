"""The never-treated holdout: which design rows were held out, and what the CS team's usual course does
against never acting, measured on them.

A holdout row in the interventions log (`core.contract.HOLDOUT`) says its account gets no proactive
play from its `ts` until the next holdout draw. A held-out week is neither "this week" nor "the usual
course" of the per-action contrasts, and its account's outcome is worse for a reason no feature shows (the
team was told to stay away), so the per-action fits leave such weeks out (`Design.usual_course`).

What the holdout does measure is the usual course as a whole against never acting: the draw is random,
so in the weeks just after a draw the held-out accounts' outcomes, beside the others', give that effect
without any model of whom the team targets. It cannot give one action's effect against never acting: an
account the team acts on this week keeps getting the usual course afterwards, which a held-out account
does not, so a treated-against-held-out contrast carries the rest of the course's effect too
(docs/methods/uplift.md, "The holdout").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.contract import HOLDOUT
from core.parallel import Workers
from training.causal import doubly_robust
from training.causal.crossfit import Sample, fit_side_by_side
from training.columns import design_columns

#: rows this many days after a draw or fewer measure the course against none: the holdout then still
#: covers at least two thirds of a 90-day horizon, and four weekly cutoffs per draw carry the estimate
PROGRAM_WINDOW_DAYS = 28


@dataclass(frozen=True)
class HoldoutWeeks:
    """Per design row: whether its account was held out at its cutoff, and the days since the latest holdout
    draw at or before the cutoff (NaN before the first draw, or where the log has none)."""

    held_out: np.ndarray
    days_since_draw: np.ndarray


def holdout_weeks(keys: pd.DataFrame, interventions: pd.DataFrame) -> HoldoutWeeks:
    """`HoldoutWeeks` for the (account_id, cutoff) rows of `keys`, in order, from the log's holdout rows: a
    draw holds its accounts from its day until the next draw's (the last one, until the log ends). A draw is
    a day, not an instant: a team logs its held accounts one by one, minutes apart."""
    n = len(keys)
    drawn = interventions.loc[interventions["assignment"] == HOLDOUT, ["account_id", "ts"]]
    if drawn.empty:
        return HoldoutWeeks(np.zeros(n, bool), np.full(n, np.nan))
    stamps = pd.to_datetime(drawn["ts"], utc=True).dt.floor("D")
    draws = np.sort(stamps.unique())
    cutoffs = pd.to_datetime(keys["cutoff"], utc=True).to_numpy()
    latest = np.searchsorted(draws, cutoffs, side="right") - 1
    after_a_draw = latest >= 0
    since = np.full(n, np.nan)
    since[after_a_draw] = (cutoffs[after_a_draw] - draws[latest[after_a_draw]]) / np.timedelta64(1, "D")
    # an account is held at a cutoff when it was drawn at the latest draw before it
    held_at = pd.MultiIndex.from_arrays([drawn["account_id"].to_numpy(), stamps.to_numpy()])
    current = pd.MultiIndex.from_arrays([keys["account_id"].to_numpy(), draws[np.maximum(latest, 0)]])
    held = after_a_draw & current.isin(held_at)
    return HoldoutWeeks(held, since)


@dataclass(frozen=True)
class ProgramEffect:
    """The team's usual course against never acting, on one outcome, from the weeks just after each draw:
    the change in the outcome's probability (negative: the course lowers it), beside the held-out accounts'
    own rate, which is the outcome's level without the course."""

    outcome: str
    effect: doubly_robust.Effect
    #: the outcome's rate among the held-out weeks: the level the course's effect is a change of
    never_rate: float
    held_weeks: int
    held_accounts: int
    window_days: int

    @property
    def share(self) -> float | None:
        """The effect as a share of the outcome's rate without the course (None where that rate is 0)."""
        return self.effect.ate / self.never_rate if self.never_rate > 0 else None

    def as_dict(self) -> dict[str, float | int | str | None]:
        return {
            "outcome": self.outcome,
            **self.effect.as_dict(),
            "never_rate": self.never_rate,
            "share": self.share,
            "held_weeks": self.held_weeks,
            "held_accounts": self.held_accounts,
            "window_days": self.window_days,
        }


#: fewer held-out weeks than this in the window give no estimate: a rate of a few percent needs them
MIN_HELD_WEEKS = 50


def program_effect(
    weeks: HoldoutWeeks,
    outcome: str,
    y: np.ndarray,
    baseline: np.ndarray,
    groups: np.ndarray,
    window_days: int = PROGRAM_WINDOW_DAYS,
) -> ProgramEffect | None:
    """The usual course against never acting on `outcome` (0/1 `y` per design row), over the rows at most
    `window_days` after a draw; None with fewer than `MIN_HELD_WEEKS` held-out rows there.

    The draw is random, so the difference of the two groups' mean outcomes is the effect; subtracting each
    row's `baseline` (a prediction of y not fitted on that row) first removes what the features explain,
    which narrows the interval and moves nothing. The pseudo-outcomes are the AIPW ones with the window's
    own share of usual-course rows as the propensity, so the standard error clusters on the account."""
    window = weeks.days_since_draw <= window_days
    held = weeks.held_out & window
    if held.sum() < MIN_HELD_WEEKS:
        return None
    rows = np.flatnonzero(window)
    usual = (~weeks.held_out[rows]).astype(np.int8)
    residual = y[rows] - baseline[rows]
    e = float(usual.mean())
    psi = usual * residual / e - (1 - usual) * residual / (1.0 - e)
    effect = doubly_robust.average_effect(psi, usual, y[rows], groups[rows])
    return ProgramEffect(
        outcome=outcome,
        effect=effect,
        never_rate=float(y[held].mean()),
        held_weeks=int(held.sum()),
        held_accounts=int(pd.unique(groups[held]).size),
        window_days=window_days,
    )


def design_program_effects(
    rows: pd.DataFrame,
    outcomes: Mapping[str, np.ndarray],
    weeks: HoldoutWeeks,
    *,
    folds: int,
    seed: int,
    threads: int,
    workers: Workers,
    cache: Path | None = None,
) -> list[ProgramEffect]:
    """`program_effect` on each outcome over the uplift design's `rows` (`Design.rows`, `.outcomes`,
    `.holdout`), held out or not, with out-of-fold baselines fitted on them (read from `cache` where fitted
    before); empty without a holdout."""
    if not weeks.held_out.any():
        return []
    features, categories = design_columns(rows)
    groups = doubly_robust.account_codes(rows["account_id"].to_numpy())
    sample = Sample(
        doubly_robust.Matrix.of(rows, features, categories),
        doubly_robust.folds(groups, folds, seed),
        groups,
        seed,
        outcomes=dict(outcomes),
    )
    (fitted,) = fit_side_by_side([sample], workers=workers, threads=threads, desc="holdout", cache=cache)
    found = (
        program_effect(weeks, outcome, y, fitted.baseline[outcome], groups) for outcome, y in outcomes.items()
    )
    return [effect for effect in found if effect is not None]
