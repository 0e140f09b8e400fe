"""Where the effect differs: the arm's pseudo-outcomes averaged within each level of the segment columns
and within the leaves of a shallow tree (who responds best).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn.tree import DecisionTreeRegressor

from products.report.estimation import ArmData, PseudoOutcomes
from products.report.schema import (
    Goal,
    ResponderGroup,
    SegmentEffect,
    SkippedSegment,
    Targeting,
    estimate_fields,
)
from products.report.wording import amount, interval
from training.causal.qini import qini

#: a subgroup with fewer treated rows than this gets no estimate: its interval would say nothing
MIN_SUBGROUP_TREATED = 20
#: who responds best: a tree this deep, each leaf holding at least this share of the rows
TREE_DEPTH = 2
TREE_LEAF_SHARE = 0.1


def segments(
    frame: pd.DataFrame,
    columns: list[str],
    pseudo: PseudoOutcomes,
    data: ArmData,
    treatment: str,
    outcome: str,
) -> tuple[list[SegmentEffect], list[SkippedSegment]]:
    """The mean pseudo-outcome within each level of each column; levels with too few treated rows are
    listed as skipped instead."""
    found, skipped = [], []
    for column in columns:
        levels = frame[column].map(lambda v: "unknown" if pd.isna(v) else str(v)).to_numpy()
        for level in sorted(set(levels)):
            m = levels == level
            treated = int(data.treated[m].sum())
            if treated < MIN_SUBGROUP_TREATED:
                skipped.append(
                    SkippedSegment(
                        treatment=treatment, outcome=outcome, by=column, level=str(level), n_treated=treated
                    )
                )
            else:
                effect = estimate_fields(pseudo.effect(data, np.flatnonzero(m)))
                found.append(
                    SegmentEffect(treatment=treatment, outcome=outcome, by=column, level=str(level), **effect)
                )
    return found, skipped


def _tree_inputs(frame: pd.DataFrame) -> tuple[np.ndarray, list[tuple[str, str | None]]]:
    """Numbers as they are (missing stays missing: the tree routes it), text one-hot per level."""
    columns: list[np.ndarray] = []
    names: list[tuple[str, str | None]] = []
    for name in frame.columns:
        column = frame[name]
        if column.dtype == object:
            for level in sorted({str(v) for v in column.dropna()}):
                columns.append((column.astype(str) == level).to_numpy(float))
                names.append((name, level))
        else:
            columns.append(pd.to_numeric(column, errors="coerce").to_numpy(dtype="float64", na_value=np.nan))
            names.append((name, None))
    return np.column_stack(columns), names


def _threshold(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def _rule_in_words(
    path: list[tuple[int, bool, float, bool]], names: list[tuple[str, str | None]], has_nan: np.ndarray
) -> str:
    """A leaf's path as one condition per column: numeric splits merged into a range, category splits
    into "is" / "is not"."""
    ranges: dict[str, tuple[float, float, bool]] = {}
    chosen: dict[str, str] = {}
    excluded: dict[str, list[str]] = {}
    for j, left, threshold, missing_left in path:
        column, level = names[j]
        if level is not None:
            if left:
                excluded.setdefault(column, []).append(level)
            else:
                chosen[column] = level
            continue
        low, high, unknown = ranges.get(column, (-math.inf, math.inf, bool(has_nan[j])))
        if left:
            high = min(high, threshold)
        else:
            low = max(low, threshold)
        ranges[column] = (low, high, unknown and missing_left == left)
    parts = []
    for column in dict.fromkeys(names[j][0] for j, *_ in path):
        if column in chosen:
            parts.append(f"{column} is {chosen[column]}")
        elif column in excluded:
            parts.append(f"{column} is not {', '.join(excluded[column])}")
        else:
            low, high, unknown = ranges[column]
            if math.isfinite(low) and math.isfinite(high):
                text = f"{_threshold(low)} < {column} ≤ {_threshold(high)}"
            else:
                text = (
                    f"{column} ≤ {_threshold(high)}"
                    if math.isfinite(high)
                    else f"{column} > {_threshold(low)}"
                )
            parts.append(text + (" (or unknown)" if unknown else ""))
    return " and ".join(parts) or "every row"


def _rules(
    tree: DecisionTreeRegressor, names: list[tuple[str, str | None]], has_nan: np.ndarray
) -> dict[int, str]:
    """Leaf id -> the conditions that lead to it, in words."""
    t = tree.tree_
    out: dict[int, str] = {}

    def walk(node: int, path: list[tuple[int, bool, float, bool]]) -> None:
        if t.children_left[node] == -1:
            out[node] = _rule_in_words(path, names, has_nan)
            return
        split = (int(t.feature[node]), float(t.threshold[node]), bool(t.missing_go_to_left[node]))
        walk(int(t.children_left[node]), [*path, (split[0], True, split[1], split[2])])
        walk(int(t.children_right[node]), [*path, (split[0], False, split[1], split[2])])

    walk(0, [])
    return out


def responders(
    frame: pd.DataFrame,
    pseudo: PseudoOutcomes,
    weights: np.ndarray,
    data: ArmData,
    goal: Goal,
    seed: int,
) -> tuple[list[ResponderGroup], str, Targeting]:
    """Who responds best: a shallow tree on the pseudo-outcomes, weighted by e(1 - e) so the rows that
    carry information about the effect lead. Honest: the tree is grown on half of the groups and each
    leaf's effect is the mean pseudo-outcome of the other half, so the best leaf is not flattered by
    the noise that made the split. A leaf with too few treated rows is listed without an effect. Returns
    the leaves (estimated ones by effect, lowest first), the finding in a sentence, and how well the tree's
    ranking of the held-out half sorts who gains toward the goal, or the average effect's side without one
    (`targeting`)."""
    x, names = _tree_inputs(frame)
    groups = np.unique(data.groups)
    grow = np.isin(data.groups, np.random.default_rng(seed).permutation(groups)[: len(groups) // 2])
    tree = DecisionTreeRegressor(
        max_depth=TREE_DEPTH, min_samples_leaf=max(1, int(TREE_LEAF_SHARE * grow.sum())), random_state=seed
    ).fit(x[grow], pseudo.values[grow], sample_weight=weights[grow])
    held = np.flatnonzero(~grow)
    leaf_of = tree.apply(x[held])
    estimated, thin = [], []
    for node, rule in _rules(tree, names, np.isnan(x[grow]).any(axis=0)).items():
        m = held[leaf_of == node]
        treated = int(data.treated[m].sum())
        if treated < MIN_SUBGROUP_TREATED:
            thin.append(_thin_leaf(rule, len(m), treated))
        else:
            estimated.append(
                ResponderGroup(rule=rule, rows=len(m), **estimate_fields(pseudo.effect(data, m)))
            )
    estimated.sort(key=lambda leaf: math.inf if leaf.ate is None else leaf.ate)
    # without a goal, toward the average effect's side: who responds most the way the action works
    toward = goal or ("lower" if pseudo.values.mean() < 0 else "higher")
    ranked = targeting(tree.predict(x[held]), pseudo.values[held], data.groups[held], toward, seed)
    return estimated + thin, _best_group(estimated, goal, data.binary), ranked


def targeting(
    predicted: np.ndarray, pseudo: np.ndarray, groups: np.ndarray, goal: Goal, seed: int
) -> Targeting:
    """The Qini of ranking rows by a `predicted` effect toward the `goal`, on their pseudo-outcomes."""
    sign = -1.0 if goal == "lower" else 1.0
    found = qini(sign * predicted, sign * pseudo, groups, seed)
    return Targeting(
        qini=found.qini,
        ci_low=found.ci_low,
        ci_high=found.ci_high,
        auuc=found.auuc,
        random_auuc=found.random_auuc,
        better_than_random=found.better_than_random,
    )


def _thin_leaf(rule: str, rows: int, treated: int) -> ResponderGroup:
    """A leaf with too few treated rows for an estimate: its size only."""
    return ResponderGroup(
        rule=rule,
        rows=rows,
        ate=None,
        se=None,
        ci_low=None,
        ci_high=None,
        naive_difference=None,
        n_treated=treated,
        n_control=rows - treated,
    )


def _best_group(leaves: list[ResponderGroup], goal: Goal, binary: bool) -> str:
    """Where the effect is best (or, without a goal, lowest and highest), in a sentence."""
    if not leaves:
        return f"No group has the {MIN_SUBGROUP_TREATED} treated rows an estimate needs."
    if len(leaves) == 1:
        return (
            "Only one group has enough treated rows for an estimate: the data cannot say who responds best."
        )
    low, high = leaves[0], leaves[-1]
    if goal is None:
        return (
            f"The effect is lowest where {low.rule} ({amount(low.ate, binary)}) and highest where "
            f"{high.rule} ({amount(high.ate, binary)})."
        )
    best = low if goal == "lower" else high
    sentence = (
        f"Responds best where {best.rule}: {amount(best.ate, binary)} "
        f"(95% CI {interval(best.ci_low, best.ci_high, binary)}, {best.rows:,} rows)"
    )
    if best.ci_low is None or best.ci_high is None or best.ci_low <= 0.0 <= best.ci_high:
        return sentence + "; its interval includes zero, so this is a lead to test, not a finding."
    return sentence + "."
