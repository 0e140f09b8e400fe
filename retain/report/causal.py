"""The causal intervention report: what each action (or each treatment value of an export) did to the
outcomes, and how far to trust it.

Estimates are doubly robust with cross-fitting (`training.causal.dr`): the average effect with its
interval beside the naive treated-minus-untreated difference, the same pseudo-outcomes averaged within
segments and within the leaves of a shallow tree (who responds best), propensity overlap, three
refutations, and, where an experiment arm ran, the randomised comparison. A `Study` comes from the store's
weekly design (`store_study`) or from a table (`table_study`); `analyse` is pure computation and returns a
JSON-safe report; reading the store or the file happens only in `from_store` and `from_table`.

This module runs the parts arm by arm and assembles the report: `study` (what is analysed), `estimation`
(one arm's estimates and the checks on them), `subgroups` (where the effect differs), `wording` (effects
in words).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from retain.core.settings import Settings
from retain.core.store import Store
from retain.report.estimation import (
    PLACEBO_FALSE_ALARM,
    RCC_TOLERANCE,
    REFUTE_FOLDS,
    SUBSET_SHARE,
    Fit,
    holdout,
    overlap,
    placebo_level,
    propensity,
    pseudo_outcomes,
    refutations,
)
from retain.report.study import Study, store_study, table_study
from retain.report.subgroups import MIN_SUBGROUP_TREATED, TREE_DEPTH, TREE_LEAF_SHARE, responders, segments
from training.causal import dr
from training.causal.design import store_design
from training.config import UpliftConfig

REPORT_VERSION = 1
#: above this share of comparable untreated rows treated later anyway, a caveat says "later, not never"
LATER_CAVEAT = 0.5


@dataclass(frozen=True)
class Analysis:
    """The JSON-safe report, and per treatment the propensities of its (treated, control) rows to plot."""

    report: dict[str, Any]
    propensity: dict[str, tuple[np.ndarray, np.ndarray]]


SECTIONS = ("effects", "segments", "segments_skipped", "responders", "overlap", "refutations", "holdout")


def estimate_arm(study: Study, x: dr.Matrix, index: int) -> tuple[dict[str, list[Any]], np.ndarray]:
    """Every section's entries for one arm, and its propensities (a worker's whole job)."""
    arm = study.arms[index]
    sections: dict[str, list[Any]] = {k: [] for k in SECTIONS}
    frame = study.frame.iloc[arm.rows].reset_index(drop=True)
    base = Fit(
        x.take(arm.rows),
        arm.treated,
        arm.randomised,
        arm.known_propensity,
        np.zeros(len(arm.rows)),
        True,
        study.groups[arm.rows],
    )
    splits = dr.folds(base.groups, study.folds, study.seed)
    e, clipped = propensity(base, splits, study)
    sections["overlap"].append(
        {"treatment": arm.treatment, **overlap(base, e, clipped, study.min_effective, arm.later)}
    )
    for outcome in study.outcomes:
        fit = replace(base, y=outcome.values[arm.rows], binary=outcome.binary)
        pseudo = pseudo_outcomes(fit, e, clipped, splits, study)
        effect = pseudo.effect(fit)
        key = {"treatment": arm.treatment, "outcome": outcome.name}
        sections["effects"].append({**key, **_effect_fields(effect)})
        found, skipped = segments(frame, study.segments, pseudo, fit)
        sections["segments"] += [{**key, **s} for s in found]
        sections["segments_skipped"] += [{**key, **s} for s in skipped]
        tree = responders(frame[study.explainers], pseudo, e * (1.0 - e), fit, outcome.goal, study.seed)
        sections["responders"].append({**key, **tree})
        randomised = holdout(fit) if arm.randomised.any() else None
        if randomised is not None:
            agree = randomised.ci_low <= effect.ci_high and effect.ci_low <= randomised.ci_high
            sections["holdout"].append(
                {
                    **key,
                    **randomised.as_dict(),
                    "dr_ate": effect.ate,
                    "dr_ci_low": effect.ci_low,
                    "dr_ci_high": effect.ci_high,
                    "intervals_overlap": agree,
                }
            )
        if outcome.name == study.refute_outcome:
            rng = np.random.default_rng([study.seed, index])
            checks = refutations(fit, effect, splits, study, rng, len(study.arms))
            sections["refutations"] += [{**key, **c} for c in checks]
    return sections, e


def analyse(study: Study, jobs: int = 1) -> Analysis:
    """Every section of the report; arms are independent, so `jobs` processes estimate them side by side."""
    x = dr.Matrix.of(study.frame, study.features, study.categories)
    report: dict[str, Any] = {
        "report_version": REPORT_VERSION,
        "source": study.source,
        "outcomes": {
            o.name: {"type": "binary" if o.binary else "numeric", "goal": o.goal} for o in study.outcomes
        },
        "method": {
            "estimator": "doubly robust (AIPW) with cross-fitting; LightGBM nuisance models",
            "folds": study.folds,
            "propensity_clip": study.clip,
            "interval": "95%, standard errors clustered on "
            + ("the account" if len(np.unique(study.groups)) < len(study.groups) else "the row")
            + "; on a 0/1 outcome at least the one the fitted probabilities imply",
            "min_effective_treated": study.min_effective,
            "min_subgroup_treated": MIN_SUBGROUP_TREATED,
            "tree": {
                "max_depth": TREE_DEPTH,
                "min_leaf_share": TREE_LEAF_SHARE,
                "features": study.explainers,
            },
            "refutations": {
                "outcome": study.refute_outcome,
                "folds": REFUTE_FOLDS,
                "subset_share": SUBSET_SHARE,
                "random_common_cause_tolerance_se": RCC_TOLERANCE,
                "placebo_level": placebo_level(len(study.arms)),
                "placebo_false_alarm": PLACEBO_FALSE_ALARM,
            },
        },
    }
    sections: dict[str, list[Any]] = {k: [] for k in SECTIONS}
    propensities: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    work = (delayed(estimate_arm)(study, x, i) for i in range(len(study.arms)))
    done = Parallel(n_jobs=min(jobs, len(study.arms)), return_as="generator")(work)
    for arm, (parts, e) in zip(
        study.arms,
        tqdm(done, total=len(study.arms), desc="causal report", unit="arm", disable=None),
        strict=True,
    ):
        for k, entries in parts.items():
            sections[k] += entries
        t = arm.treated == 1
        propensities[arm.treatment] = (e[t], e[~t])
    report.update(sections)
    report["caveats"] = [*study.caveats, *_caveats(report, study)]
    return Analysis(_json_safe(report), propensities)


def _effect_fields(effect: dr.Effect) -> dict[str, Any]:
    """The fields every `effects` entry holds (beside treatment and outcome), no more."""
    fields = effect.as_dict()
    return {k: fields[k] for k in ("ate", "ci_low", "ci_high", "naive_difference", "n_treated", "n_control")}


def _caveats(report: dict[str, Any], study: Study) -> list[str]:
    """The caveats this run's numbers call for."""
    out = [
        "The naive difference compares treated with untreated rows as they come: when treatment goes to "
        "rows that were already more (or less) likely to have the outcome, it mixes who was chosen with "
        "what the treatment did. The gap between it and the adjusted estimate is that selection.",
        "An interval that spans 0 means the data cannot tell the effect from none, not that there is none; "
        "small arms give wide intervals.",
        f"Refutations ran on {study.refute_outcome} only, the placebo and subset checks with "
        f"{REFUTE_FOLDS} folds instead of {study.folds}, to bound the cost.",
    ]
    poor = [o["treatment"] for o in report["overlap"] if o["poor"]]
    if poor:
        out.append(
            f"Poor overlap (fewer than {study.min_effective:g} effective treated rows) for "
            f"{', '.join(poor)}: their estimates lean on a handful of rows."
        )
    clipped = [o["treatment"] for o in report["overlap"] if o["clipped_share"] > 0.01]
    if clipped:
        out.append(
            f"More than 1% of propensities were clipped to [{study.clip:g}, {1 - study.clip:g}] for "
            f"{', '.join(clipped)}: some rows were (almost) certain to be treated or not, so no comparison "
            "exists for them and the clip trades a little bias for a finite variance."
        )
    later = {o["treatment"]: o["control_treated_later"] or 0.0 for o in report["overlap"]}
    named = [
        f"{t} ({share:.0%})"
        for t, share in sorted(later.items(), key=lambda kv: -kv[1])
        if round(share, 2) > LATER_CAVEAT  # as shown: "most" is never "50%"
    ]
    if named:
        out.append(
            f"Most untreated weeks that resemble the treated ones were followed by the same action within "
            f"the horizon anyway for {', '.join(named)}. For these the team usually acts soon: the "
            "estimate compares acting this week with acting a few weeks later, not with never acting, so an "
            "action that works shows an effect shrunk towards 0, and a wide interval around 0 is no sign "
            "that it does nothing. The uplift ranking scales its estimates to never acting for this; the "
            "effects in this report are as measured."
        )
    failed = sorted({f"{r['treatment']} ({r['check']})" for r in report["refutations"] if not r["passed"]})
    if failed:
        out.append(f"Refutations failed for {', '.join(failed)}: treat those estimates with suspicion.")
    if report["segments_skipped"]:
        out.append(
            f"Subgroups with fewer than {MIN_SUBGROUP_TREATED} treated rows get no estimate "
            f"({len(report['segments_skipped'])} skipped; listed in the JSON under segments_skipped)."
        )
    return out


def _json_safe(value: Any) -> Any:
    """NaN and infinities become null, numpy scalars Python ones: `json.dumps(allow_nan=False)` holds."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    return value


# -- the I/O edges --------------------------------------------------------------------------------------


def from_store(store: Store, settings: Settings, jobs: int = 1) -> Analysis:
    """The report over the store's weekly design: every action, on churn and expansion."""
    config = UpliftConfig().resolved(settings)
    design = store_design(store, settings, int(config.horizon_days or settings.horizon_days), config.threads)
    source = {"mode": "store", "store": str(store.root.resolve())}
    return analyse(store_study(design, config, source), jobs)


def from_table(
    path: Path, treatment: str, outcome: str, control: str | None, settings: Settings, jobs: int = 1
) -> Analysis:
    """The report over an experiment or intervention export."""
    from training.dataset import read_table

    source = {"mode": "table", "table": str(path.resolve())}
    frame = read_table(path)
    return analyse(table_study(frame, treatment, outcome, control, source=source, seed=settings.seed), jobs)
