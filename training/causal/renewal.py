"""The renewal-level design for an action whose worth settles at the renewal (`Action.settles_at_renewal`:
the QBR / ROI review): one row per renewal, treated if the action was taken in the window before it, with
the covariates and the propensity at the window's start.

In the weekly design "not this week" mostly means "a few weeks later, still before the renewal", which is
worth as much: the weekly contrast is small and noisy, and scaling it to never acting divides by the small
difference in how often the action came at all (`RelativeEffect.against_never_acting`). Per renewal the
question is the one the renewal settles, taken before it or not at all, so the estimate is against never
acting as it stands.

The window opens at the design's first weekly cutoff less than a horizon before the renewal, so the
outcome at the horizon covers the renewal. A renewal whose action was already taken before that cutoff,
within the built-in trigger's reach (`TRIGGER_REACH_DAYS`), has no row: it was treated before the
question was asked. The propensity is learnt whole, the experiment arm's draws included: over a window of
weeks the arm's chance of drawing this one action is not a logged number.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.causal import doubly_robust, recency
from training.causal.design import WEEK, Design

#: how close to its renewal the built-in playbook's QBR / ROI review is triggered (days): a take this close
#: before the window opens already answered the renewal's question
TRIGGER_REACH_DAYS = 120
#: fewer treated or untreated renewals than this and the action keeps the weekly design's estimate
MIN_RENEWAL_ROWS = 40
#: renewals whose propensity lies outside [TRIM, 1 - TRIM] carry no estimate (Crump et al. 2009): where
#: the team all but always or never acts (a trial account the arm once drew; a renewal the team never
#: misses) one choice was never really open, and a handful such rows would decide the effective count
TRIM = 0.05


@dataclass(frozen=True)
class RenewalRows:
    """One row per renewal: its window's first weekly row (positions in the design) and whether the action
    was taken from there until the renewal."""

    rows: np.ndarray
    treated: np.ndarray

    @property
    def enough(self) -> bool:
        """Enough treated and untreated renewals to fit both sides' models."""
        taken = int(self.treated.sum())
        return min(taken, len(self.treated) - taken) >= MIN_RENEWAL_ROWS


def renewal_rows(design: Design, action: str, horizon_days: int) -> RenewalRows:
    """The renewals of `design`'s rows whose window opens inside it, for `action`."""
    to_renewal = design.rows["days_to_renewal"].to_numpy(float)
    opens = (to_renewal > horizon_days - WEEK.days) & (to_renewal <= horizon_days)
    since = design.rows[recency.days_since_column(action)].to_numpy(float)
    taken_before = np.nan_to_num(since, nan=np.inf) <= TRIGGER_REACH_DAYS - to_renewal
    rows = np.flatnonzero(opens & ~taken_before)
    # `horizon_left` is 1 - (days to the first take from the cutoff) / horizon: a take before the renewal
    # has more than 1 - (days to the renewal) / horizon of it left
    left = design.horizon_left[action][rows]
    treated = (left > 1.0 - to_renewal[rows] / horizon_days).astype(np.int8)
    return RenewalRows(rows, treated)


@dataclass(frozen=True)
class RenewalFit:
    """An action's estimates over its renewals where both choices were open (propensity within the trim):
    per outcome, the average effect and the effect as a share of the outcome's baseline probability at the
    window's start, against never acting; the propensities of every renewal, and which were kept."""

    average: dict[str, doubly_robust.Effect]
    relative: dict[str, doubly_robust.RelativeEffect]
    propensity: np.ndarray
    kept: np.ndarray


def fit_renewal(
    renewals: RenewalRows,
    x: doubly_robust.Matrix,
    outcomes: dict[str, np.ndarray],
    groups: np.ndarray,
    *,
    folds: int,
    clip: float,
    seed: int,
    threads: int,
) -> RenewalFit:
    """The DR estimates over `renewals` (`x`, `outcomes` and `groups` over the design's rows): the same
    cross-fitted nuisances and second stage as the weekly design's, on one row per renewal, over those
    whose propensity lies within the trim."""
    x = x.take(renewals.rows)
    groups = groups[renewals.rows]
    t = renewals.treated
    splits = doubly_robust.folds(groups, folds, seed)
    none = np.zeros(len(t))
    propensity, clipped = doubly_robust.fit_propensity(
        x, t, none.astype(np.int8), none, splits, groups, clip=clip, seed=seed, threads=threads
    )
    kept = (propensity >= TRIM) & (propensity <= 1.0 - TRIM)
    average, relative = {}, {}
    for outcome, values in outcomes.items():
        y = values[renewals.rows]
        baseline = doubly_robust.out_of_fold_baseline(x, y, splits, seed=seed, threads=threads)
        mu0, mu1 = doubly_robust.fit_outcomes(t, y, splits, baseline, propensity)
        nuisance = doubly_robust.Nuisance(mu0[kept], mu1[kept], propensity[kept], clipped[kept])
        psi = doubly_robust.pseudo_outcomes(t[kept], y[kept], nuisance)
        average[outcome], relative[outcome] = doubly_robust.effect_and_share(
            psi, t[kept], y[kept], nuisance, baseline[kept], groups[kept]
        )
    return RenewalFit(average, relative, propensity, kept)
