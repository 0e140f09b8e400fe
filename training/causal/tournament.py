"""Per action, a small tournament of effect learners, judged by the churn their rankings avert on accounts
they never saw, so that an action's ranking follows heterogeneity only where the data carry it.

The entrants, each ranking the design's rows by the churn change it predicts for them:

- `pooled_share`: one share of the baseline risk (today's form): the riskiest gain most;
- `band_shares`: a share per health band, partially pooled across bands (`posterior.pooled`);
- `dr_learner`: a regularised regression of the DR pseudo-outcomes on every feature (`learners`).

Each is fitted on half the accounts and ranks the other half (then the other way round); its value is the
churn averted by the first `budget_share` of all rows it ranked, estimated by their cross-fitted DR
pseudo-outcomes. A challenger wins only when its value beats the pooled share's beyond its noise: by more
than `critical_z` account-clustered standard errors of the difference, the one-sided 5% point corrected
for every comparison a training run makes (a dozen actions, two challengers each: about 2.9). At 1.96
each, some challenger among two dozen would win by chance in most runs, and on the tuning seeds such wins
cost as much as the real ones gained. Otherwise the pooled share stays. The winner is then fitted on every
row. Actions compared per renewal, and those with poor overlap, keep their share.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import lightgbm as lgb
import numpy as np

from training.causal import doubly_robust
from training.causal.learners import SECOND_STAGE, SECOND_STAGE_ROUNDS, BandShares, DrLearner, Learner
from training.causal.posterior import pooled

POOLED, BANDS, DR_LEARNER = "pooled_share", "band_shares", "dr_learner"
ENTRANTS = (POOLED, BANDS, DR_LEARNER)
#: the column whose levels `band_shares` splits by
BAND = "health_band"
FOLDS = 2
#: the family-wise chance of any challenger winning by luck alone in one training run
FAMILY_ALPHA = 0.05


def critical_z(comparisons: int) -> float:
    """How many standard errors a challenger must win by when a run makes `comparisons` of them: the
    one-sided Bonferroni point for `FAMILY_ALPHA`."""
    return NormalDist().inv_cdf(1.0 - FAMILY_ALPHA / max(comparisons, 1))


@dataclass(frozen=True)
class Standing:
    """One action's tournament: each entrant's held-out value (churned accounts averted by its first
    `budget_share` of rows), the winner, the runner-up and the margin between them with its standard error."""

    action: str
    values: dict[str, float]
    winner: str
    runner_up: str
    margin: float
    se: float
    #: the standard errors a challenger had to beat the pooled share by
    critical: float = doubly_robust.Z95

    def as_dict(self) -> dict[str, object]:
        return {
            "values": self.values,
            "winner": self.winner,
            "runner_up": self.runner_up,
            "margin": self.margin,
            "se": self.se,
            "critical_z": self.critical,
        }


@dataclass(frozen=True)
class Entry:
    """What every entrant of one action sees: the rows' encoded features, the pseudo-outcomes on churn,
    their weights e (1 - e), the out-of-fold baseline risk and the accounts."""

    x: doubly_robust.Matrix
    psi: np.ndarray
    weight: np.ndarray
    baseline: np.ndarray
    groups: np.ndarray

    def share(self, rows: np.ndarray) -> doubly_robust.RelativeEffect:
        return doubly_robust.relative_effect(
            self.psi[rows], self.baseline[rows], self.weight[rows], self.groups[rows]
        )


def _pooled_share(entry: Entry, rows: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    share = entry.share(rows).value
    return lambda out: share * entry.baseline[out]


def band_shares(entry: Entry, rows: np.ndarray, levels: list[str], scale: float = 1.0) -> BandShares:
    """A share per level of the health band over `rows`, pooled across levels; a level without rows takes
    the pooled share of all of them."""
    column = entry.x.columns.index(BAND)
    codes = entry.x.values[rows, column]
    found = {
        levels[int(code)]: entry.share(rows[codes == code]) for code in np.unique(codes[~np.isnan(codes)])
    }
    shares = {level: p.value for level, p in pooled(found, "churn").items()} if found else {}
    return BandShares(column, tuple(levels), shares, entry.share(rows).value, scale)


def dr_learner(entry: Entry, rows: np.ndarray, seed: int, threads: int, scale: float = 1.0) -> DrLearner:
    """The DR-learner's regularised second stage over `rows`."""
    (learner,) = _dr_learners(entry.x, [(entry.psi, entry.weight)], rows, seed, threads)
    return DrLearner(learner.booster, scale)


def _dr_learners(
    x: doubly_robust.Matrix,
    targets: list[tuple[np.ndarray, np.ndarray]],
    rows: np.ndarray,
    seed: int,
    threads: int,
) -> list[DrLearner]:
    """A second stage over `rows` per (pseudo-outcomes, weights) of `targets`, on one dataset binned once
    and relabelled: the bins depend on the features only, so each model is the one a fresh dataset gives."""
    params = SECOND_STAGE | {"seed": seed, "num_threads": threads}
    psi, weight = targets[0]
    data = lgb.Dataset(
        x.values[rows],
        label=psi[rows],
        weight=weight[rows],
        feature_name=x.columns,
        categorical_feature=x.categorical,
        params=params | {"verbose": -1},
    )
    out = []
    for psi, weight in targets:
        data.set_label(psi[rows])
        data.set_weight(weight[rows])
        out.append(DrLearner(lgb.train(params, data, num_boost_round=SECOND_STAGE_ROUNDS)))
    return out


def fold_dr_changes(
    x: doubly_robust.Matrix,
    targets: list[tuple[np.ndarray, np.ndarray]],
    baseline: np.ndarray,
    fit_rows: np.ndarray,
    out_rows: np.ndarray,
    seed: int,
    threads: int,
) -> list[np.ndarray]:
    """One tournament fold of every action's DR-learner (`targets`: each action's pseudo-outcomes and
    weights): fitted on `fit_rows`, the churn change each predicts for `out_rows`. The actions share
    their folds, so a fold is one job for all of them (`dr_changes`)."""
    learners = _dr_learners(x, targets, fit_rows, seed, threads)
    return [learner.change(x.values[out_rows], baseline[out_rows]) for learner in learners]


#: how a tournament runs its folds' jobs, each a function and its arguments: one after the other by
#: default; uplift training passes `core.parallel.side_by_side` on its workers (any order of results)
FoldRunner = Callable[[list[tuple[Callable[..., Any], tuple[Any, ...]]]], Iterable[Any]]


def _in_turn(calls: list[tuple[Callable[..., Any], tuple[Any, ...]]]) -> Iterable[Any]:
    return (run(*args) for run, args in calls)


def dr_changes(
    entries: dict[str, Entry], seed: int, threads: int, run: FoldRunner = _in_turn
) -> dict[str, np.ndarray]:
    """Each action's out-of-fold DR-learner churn changes over the tournament's folds, a fold of every
    action being one job (`fold_dr_changes`), run by `run`. The entries share their rows and accounts."""
    if not entries:
        return {}
    first = next(iter(entries.values()))
    targets = [(e.psi, e.weight) for e in entries.values()]
    splits = doubly_robust.folds(first.groups, FOLDS, seed)
    calls: list[tuple[Callable[..., Any], tuple[Any, ...]]] = [
        (_numbered, (fold, first.x, targets, first.baseline, fit_rows, out, seed + fold, threads))
        for fold, (fit_rows, out) in enumerate(splits)
    ]
    changes = {name: np.zeros(len(first.psi)) for name in entries}
    for fold, predicted in run(calls):
        for name, change in zip(entries, predicted, strict=True):
            changes[name][splits[fold][1]] = change
    return changes


def _numbered(fold: int, *args: Any) -> tuple[int, list[np.ndarray]]:
    return fold, fold_dr_changes(*args)


def compete(
    action: str,
    entry: Entry,
    levels: list[str] | None,
    budget_share: float,
    seed: int,
    threads: int = 1,
    critical: float = doubly_robust.Z95,
    dr_changed: np.ndarray | None = None,
) -> Standing:
    """The action's tournament (module docstring); `levels` are the health band's (None: no band entrant);
    a challenger must beat the pooled share by `critical` standard errors (`critical_z`). `dr_changed`:
    the DR-learner's out-of-fold changes where `dr_changes` fitted them already."""
    n = len(entry.psi)
    predicted = {name: np.zeros(n) for name in ENTRANTS if name != BANDS or levels is not None}
    for fit_rows, out in doubly_robust.folds(entry.groups, FOLDS, seed):
        predicted[POOLED][out] = _pooled_share(entry, fit_rows)(out)
        if levels is not None:
            predicted[BANDS][out] = band_shares(entry, fit_rows, levels).change(
                entry.x.values[out], entry.baseline[out]
            )
    predicted[DR_LEARNER] = (
        dr_changes({action: entry}, seed, threads)[action] if dr_changed is None else dr_changed
    )
    budget = max(1, round(budget_share * n))
    averted = {}
    for name, change in predicted.items():
        chosen = np.argsort(change, kind="stable")[:budget]  # the largest falls in churn first
        averted[name] = np.zeros(n)
        averted[name][chosen] = -entry.psi[chosen]
    values = {name: float(a.sum()) for name, a in averted.items()}

    def margin(name: str, over: str) -> tuple[float, float]:
        """`name`'s value less `over`'s, with the difference's account-clustered standard error."""
        difference = averted[name] - averted[over]
        return float(difference.sum()), doubly_robust.clustered_norm(
            difference - difference.mean(), entry.groups
        )

    beyond = {name: margin(name, POOLED) for name in values if name != POOLED}
    winners = [name for name, (gain, se) in beyond.items() if gain > critical * se]
    winner = max(winners, key=values.__getitem__) if winners else POOLED
    runner_up = max((name for name in values if name != winner), key=values.__getitem__)
    return Standing(action, values, winner, runner_up, *margin(winner, runner_up), critical)


def winning_learner(
    standing: Standing, entry: Entry, levels: list[str] | None, scale: float, seed: int, threads: int
) -> Learner | None:
    """The standing's winner fitted on every row, scaled to never acting; None where the pooled share won."""
    rows = np.arange(len(entry.psi))
    if standing.winner == BANDS and levels is not None:
        return band_shares(entry, rows, levels, scale)
    if standing.winner == DR_LEARNER:
        return dr_learner(entry, rows, seed, threads, scale)
    return None
