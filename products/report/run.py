"""The causal intervention report: what each action (or each treatment value of an export) did to the
outcomes, and how far to trust it.

Estimates are doubly robust with cross-fitting (`training.causal.doubly_robust`): the average effect with
its interval beside the naive treated-minus-untreated difference, the same pseudo-outcomes averaged within
segments and within the leaves of a shallow tree (who responds best), propensity overlap, covariate
balance before and after weighting, the E-value against an unmeasured confounder, three refutations, and,
where an experiment arm ran, the randomised comparison. A `Study` comes from the store's weekly design
(`store_study`) or from a table (`table_study`); `analyse` is pure computation and returns a typed report
(`schema.CausalReport`); reading the store or the file happens only in `from_store` and `from_table`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from core.parallel import Call, Workers, side_by_side
from core.settings import Settings
from products.report.balance import MATERIAL_SMD, arm_balance, pooled_spread
from products.report.crosscheck import IrmSettings, cross_check, irm_effect
from products.report.estimation import (
    COMMON_CAUSE_TOLERANCE_SE,
    PER_ARM_MIN_ROWS,
    PLACEBO_FALSE_ALARM,
    REFUTATION_CHECKS,
    REFUTE_FOLDS,
    SUBSET_SHARE,
    ArmData,
    PseudoOutcomes,
    overlap,
    placebo_level,
    pseudo_outcomes,
    randomised_holdout,
    refutation_verdict,
)
from products.report.fits import Fits, shared_fits, variant
from products.report.schema import (
    ArmBalance,
    ArmOverlap,
    AverageEffect,
    CausalReport,
    CrossCheck,
    HoldoutComparison,
    Method,
    ProgramComparison,
    Refutation,
    RefutationCheck,
    RefutationSettings,
    ReportedOutcome,
    Responders,
    SegmentEffect,
    Sensitivity,
    SkippedSegment,
    TreeSettings,
    estimate_fields,
    finite,
)
from products.report.sensitivity import METHOD as SENSITIVITY_METHOD
from products.report.sensitivity import sensitivity
from products.report.study import OutcomeValues, Study, store_study, table_study
from products.report.subgroups import MIN_SUBGROUP_TREATED, TREE_DEPTH, TREE_LEAF_SHARE, responders, segments
from store.delta import Store
from training.causal import doubly_robust
from training.causal.crossfit import crossfit_cache
from training.causal.design import store_design
from training.causal.holdout import ProgramEffect, design_program_effects
from training.config import UpliftConfig

REPORT_VERSION = 6
#: above this share of comparable untreated rows treated later anyway, a caveat says "later, not never"
LATER_NOT_NEVER_SHARE = 0.5


@dataclass(frozen=True)
class Propensities:
    """One arm's estimated propensities, of its treated and of its control rows (for the overlap plot)."""

    treated: np.ndarray
    control: np.ndarray


@dataclass(frozen=True)
class Analysis:
    """The report, and per treatment the propensities to plot."""

    report: CausalReport
    propensities: dict[str, Propensities]


@dataclass(frozen=True)
class ArmEstimates:
    """One arm's entries in every section but the refutations (a worker's first job for the arm)."""

    index: int
    effects: list[AverageEffect]
    segments: list[SegmentEffect]
    segments_skipped: list[SkippedSegment]
    responders: list[Responders]
    overlap: ArmOverlap
    balance: ArmBalance
    sensitivity: list[Sensitivity]
    holdout: list[HoldoutComparison]
    propensities: Propensities
    #: the estimate on `Study.refute_outcome`, which the refutations try to break
    refuted_estimate: doubly_robust.Effect
    #: each outcome's estimate by DoubleML beside this one, where the study asks (`Study.cross_check`)
    cross_check: list[CrossCheck]


@dataclass(frozen=True)
class RefutationRun:
    """One refutation's re-estimate for one arm (a worker's job apart from the arm's estimates)."""

    index: int
    check: RefutationCheck
    estimate: doubly_robust.Effect


def estimate_arm(study: Study, x: doubly_robust.Matrix, index: int, fits: Fits) -> ArmEstimates:
    """One arm's effect on each outcome, with its segments, responders and randomised comparison."""
    arm = study.arms[index]
    frame = study.frame.iloc[arm.rows].reset_index(drop=True)
    base, splits = variant(study, ArmData.of(study, x, index), index, "estimate")
    e, clipped = fits.propensity(base, study.propensity_clip)
    effects, found, skipped, trees, holdout, robustness = [], [], [], [], [], []
    by_outcome: dict[str, doubly_robust.Effect] = {}
    for outcome in study.outcomes:
        data = base.with_outcome(outcome.values[arm.rows], outcome.binary)
        pseudo = pseudo_outcomes(
            data, e, clipped, splits, fits.baseline.get(outcome.name), study.seed, study.per_arm_outcomes
        )
        effect = by_outcome[outcome.name] = pseudo.effect(data)
        effects.append(AverageEffect.of(arm.treatment, outcome.name, effect))
        robustness.append(_sensitivity(arm.treatment, outcome, data, pseudo, effect))
        levels, thin = segments(frame, study.segment_columns, pseudo, data, arm.treatment, outcome.name)
        found += levels
        skipped += thin
        leaves, summary, ranked = responders(
            frame[study.responder_columns], pseudo, e * (1.0 - e), data, outcome.goal, study.seed
        )
        trees.append(
            Responders(
                treatment=arm.treatment,
                outcome=outcome.name,
                leaves=leaves,
                summary=summary,
                targeting=ranked,
            )
        )
        randomised = randomised_holdout(data) if arm.randomised.any() else None
        if randomised is not None:
            holdout.append(_holdout_comparison(arm.treatment, outcome.name, randomised, effect))
    t = arm.treated == 1
    return ArmEstimates(
        index=index,
        effects=effects,
        segments=found,
        segments_skipped=skipped,
        responders=trees,
        overlap=overlap(arm.treatment, base, e, clipped, study.min_effective_treated, arm.taken_later),
        balance=arm_balance(arm.treatment, frame[study.covariates_used], arm.treated, e),
        sensitivity=robustness,
        holdout=holdout,
        propensities=Propensities(e[t], e[~t]),
        refuted_estimate=by_outcome[study.refute_outcome],
        cross_check=[_cross_check(study, index, base, o, by_outcome[o.name]) for o in study.outcomes]
        if study.cross_check
        else [],
    )


def _cross_check(
    study: Study, index: int, data: ArmData, outcome: OutcomeValues, ours: doubly_robust.Effect
) -> CrossCheck:
    """DoubleML's IRM on the arm's rows and covariates, beside the report's estimate `ours`."""
    arm = study.arms[index]
    settings = IrmSettings(study.folds, study.propensity_clip, study.seed)
    theirs = irm_effect(data.x, arm.treated, outcome.values[arm.rows], outcome.binary, settings)
    return cross_check(arm.treatment, outcome.name, ours, theirs, outcome.binary)


def _sensitivity(
    treatment: str,
    outcome: OutcomeValues,
    data: ArmData,
    pseudo: PseudoOutcomes,
    effect: doubly_robust.Effect,
) -> Sensitivity:
    """The effect's E-values: a 0/1 outcome's as a ratio of the untreated risk, a numeric one's from its
    difference in units of the outcome's spread."""
    if outcome.binary:
        return sensitivity(treatment, outcome.name, effect, float(pseudo.untreated.mean()), None)
    return sensitivity(treatment, outcome.name, effect, None, float(pooled_spread(data.y, data.treated)[0]))


def _holdout_comparison(
    treatment: str, outcome: str, randomised: doubly_robust.Effect, effect: doubly_robust.Effect
) -> HoldoutComparison:
    return HoldoutComparison(
        treatment=treatment,
        outcome=outcome,
        **estimate_fields(randomised),
        dr_ate=finite(effect.ate),
        dr_ci_low=finite(effect.ci_low),
        dr_ci_high=finite(effect.ci_high),
        intervals_overlap=bool(randomised.ci_low <= effect.ci_high and effect.ci_low <= randomised.ci_high),
    )


def _program_comparison(program: ProgramEffect) -> ProgramComparison:
    return ProgramComparison(
        outcome=program.outcome,
        **estimate_fields(program.effect),
        never_rate=program.never_rate,
        share=finite(program.share) if program.share is not None else None,
        held_accounts=program.held_accounts,
        window_days=program.window_days,
    )


def refute_arm(
    study: Study, x: doubly_robust.Matrix, index: int, check: RefutationCheck, fits: Fits
) -> RefutationRun:
    """One refutation of one arm's estimate on the refuted outcome."""
    data, splits = variant(study, ArmData.of(study, x, index), index, check)
    e, clipped = fits.propensity(data, study.propensity_clip)
    baseline = fits.baseline.get(study.refute_outcome)
    pseudo = pseudo_outcomes(data, e, clipped, splits, baseline, study.seed, study.per_arm_outcomes)
    estimate = pseudo.effect(data)
    return RefutationRun(index, check, estimate)


def _run(
    study: Study, x: doubly_robust.Matrix, workers: Workers, cache: Path | None
) -> tuple[list[ArmEstimates], list[RefutationRun]]:
    """Every arm's estimates and refutations on `workers`, from the fits they share (`fits`), with a
    progress bar on stderr for each stage."""
    fits = shared_fits(study, x, workers, cache)
    arms = range(len(study.arms))
    work: list[Call[ArmEstimates | RefutationRun]] = [
        (estimate_arm, (study, x, i, fits[(i, "estimate")])) for i in arms
    ]
    work += [
        (refute_arm, (study, x, i, check, fits[(i, check)])) for i in arms for check in REFUTATION_CHECKS
    ]
    done = side_by_side(work, workers)
    estimates: dict[int, ArmEstimates] = {}
    runs: dict[tuple[int, RefutationCheck], RefutationRun] = {}
    with tqdm(total=len(work), desc="causal report: estimates", unit="step", disable=None) as bar:
        for result in done:
            if isinstance(result, ArmEstimates):
                estimates[result.index] = result
                step = "estimated"
            else:
                runs[(result.index, result.check)] = result
                step = result.check.replace("_", " ")
            bar.set_postfix_str(f"{study.arms[result.index].treatment}: {step}", refresh=False)
            bar.update()
    return [estimates[i] for i in arms], [runs[(i, check)] for i in arms for check in REFUTATION_CHECKS]


def _refutation(study: Study, run: RefutationRun, main: doubly_robust.Effect) -> Refutation:
    arm = study.arms[run.index]
    binary = study.outcome(study.refute_outcome).binary
    units = "accounts" if len(np.unique(study.groups[arm.rows])) < len(arm.rows) else "rows"
    passed, verdict = refutation_verdict(run.check, run.estimate, main, binary, units, len(study.arms))
    return Refutation(
        treatment=arm.treatment,
        outcome=study.refute_outcome,
        check=run.check,
        ate=finite(run.estimate.ate),
        ci_low=finite(run.estimate.ci_low),
        ci_high=finite(run.estimate.ci_high),
        passed=passed,
        verdict=verdict,
    )


def analyse(study: Study, workers: Workers = Workers(), cache: Path | None = None) -> Analysis:
    """Every section of the report; arms and their refutations are independent, so `workers` estimate
    them side by side. Fits found in `cache` (`crossfit`'s) are read, not refitted."""
    study = replace(study, groups=doubly_robust.account_codes(study.groups))
    x = doubly_robust.Matrix.of(study.frame, study.covariates, study.category_levels)
    arms, runs = _run(study, x, workers, cache)
    overlaps = [a.overlap for a in arms]
    balances = [a.balance for a in arms]
    refutations = [_refutation(study, run, arms[run.index].refuted_estimate) for run in runs]
    skipped = [s for a in arms for s in a.segments_skipped]
    checks = [c for a in arms for c in a.cross_check]
    report = CausalReport(
        report_version=REPORT_VERSION,
        source=study.source,
        covariates_used=study.covariates_used,
        covariates_dropped=study.covariates_dropped,
        covariates_suspect=study.covariates_suspect,
        outcomes={
            o.name: ReportedOutcome("binary" if o.binary else "numeric", o.goal) for o in study.outcomes
        },
        method=_method(study),
        effects=[e for a in arms for e in a.effects],
        segments=[s for a in arms for s in a.segments],
        segments_skipped=skipped,
        responders=[r for a in arms for r in a.responders],
        overlap=overlaps,
        balance=balances,
        sensitivity=[s for a in arms for s in a.sensitivity],
        refutations=refutations,
        holdout=[h for a in arms for h in a.holdout],
        caveats=[
            *study.caveats,
            *_caveats(study, overlaps, balances, refutations, len(skipped)),
            *_disagreements(checks),
        ],
        program=[_program_comparison(p) for p in study.program],
        cross_check=checks,
    )
    return Analysis(report, {study.arms[a.index].treatment: a.propensities for a in arms})


def _method(study: Study) -> Method:
    clustered = len(np.unique(study.groups)) < len(study.groups)
    return Method(
        estimator="doubly robust (AIPW) with cross-fitting; LightGBM nuisance models",
        outcome_models=_outcome_models(study),
        folds=study.folds,
        propensity_clip=study.propensity_clip,
        interval="95%, standard errors clustered on "
        + ("the account" if clustered else "the row")
        + "; on a 0/1 outcome at least the one the fitted probabilities imply",
        min_effective_treated=study.min_effective_treated,
        min_subgroup_treated=MIN_SUBGROUP_TREATED,
        balance_smd_limit=MATERIAL_SMD,
        sensitivity=SENSITIVITY_METHOD,
        tree=TreeSettings(TREE_DEPTH, TREE_LEAF_SHARE, study.responder_columns),
        refutations=RefutationSettings(
            outcome=study.refute_outcome,
            folds=REFUTE_FOLDS,
            subset_share=SUBSET_SHARE,
            random_common_cause_tolerance_se=COMMON_CAUSE_TOLERANCE_SE,
            placebo_level=placebo_level(len(study.arms)),
            placebo_false_alarm=PLACEBO_FALSE_ALARM,
        ),
    )


def _outcome_models(study: Study) -> str:
    """How the outcome models are fitted, in words: the rule `estimation.per_arm_fits` applies per arm."""
    shift = (
        "the treated arm's log-odds shift from a shared out-of-fold baseline E[Y | x] (the uplift models')"
    )
    if not study.per_arm_outcomes:
        return f"on a 0/1 outcome, {shift}; on a numeric one, a regression per arm"
    return (
        "each arm's own LightGBM model, its rounds early-stopped on a held-out quarter of the fold, where "
        f"every fold has at least {PER_ARM_MIN_ROWS} treated and {PER_ARM_MIN_ROWS} untreated rows to fit "
        f"on; with fewer, on a 0/1 outcome, {shift}"
    )


def _caveats(
    study: Study,
    overlaps: list[ArmOverlap],
    balances: list[ArmBalance],
    refutations: list[Refutation],
    skipped: int,
) -> list[str]:
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
    poor = [o.treatment for o in overlaps if o.poor]
    if poor:
        out.append(
            f"Poor overlap (fewer than {study.min_effective_treated:g} effective treated rows) for "
            f"{', '.join(poor)}: their estimates lean on a handful of rows."
        )
    clipped = [o.treatment for o in overlaps if o.clipped_share > 0.01]
    if clipped:
        clip = study.propensity_clip
        out.append(
            f"More than 1% of propensities were clipped to [{clip:g}, {1 - clip:g}] for "
            f"{', '.join(clipped)}: some rows were (almost) certain to be treated or not, so no comparison "
            "exists for them and the clip trades a little bias for a finite variance."
        )
    unbalanced = [f"{b.treatment} ({b.imbalanced_after})" for b in balances if b.imbalanced_after]
    if unbalanced:
        out.append(
            f"After weighting, some measured columns still differ materially (|SMD| above {MATERIAL_SMD:g}) "
            f"between treated and untreated rows for {', '.join(unbalanced)}: the propensity model did not "
            "even them out, so those estimates rely on the outcome models to adjust for them (see Balance)."
        )
    later = _later_not_never(overlaps)
    if later:
        out.append(later)
    failed = sorted({f"{r.treatment} ({r.check})" for r in refutations if not r.passed})
    if failed:
        out.append(f"Refutations failed for {', '.join(failed)}: treat those estimates with suspicion.")
    if skipped:
        out.append(
            f"Subgroups with fewer than {MIN_SUBGROUP_TREATED} treated rows get no estimate "
            f"({skipped} skipped; listed in the JSON under segments_skipped)."
        )
    return out


def _disagreements(checks: list[CrossCheck]) -> list[str]:
    """A caveat for each effect DoubleML's estimate on the same rows disagrees with."""
    return [f"{c.treatment} on {c.outcome}: {c.sentence}" for c in checks if c.disagree]


def _later_not_never(overlaps: list[ArmOverlap]) -> str | None:
    """The caveat for arms whose comparable untreated weeks mostly got the action later anyway, if any."""
    later = {o.treatment: o.control_treated_later or 0.0 for o in overlaps}
    named = [
        f"{t} ({share:.0%})"
        for t, share in sorted(later.items(), key=lambda kv: -kv[1])
        if round(share, 2) > LATER_NOT_NEVER_SHARE  # as shown: "most" is never "50%"
    ]
    if not named:
        return None
    return (
        f"Most untreated weeks that resemble the treated ones were followed by the same action within "
        f"the horizon anyway for {', '.join(named)}. For these the team usually acts soon: the "
        "estimate compares acting this week with acting a few weeks later, not with never acting, so an "
        "action that works shows an effect shrunk towards 0, and a wide interval around 0 is no sign "
        "that it does nothing. The uplift ranking scales its estimates to never acting for this; the "
        "effects in this report are as measured."
    )


# -- the I/O edges --------------------------------------------------------------------------------------


def from_store(store: Store, settings: Settings, jobs: int = 1) -> Analysis:
    """The report over the store's weekly design: every action, on churn and expansion, over the weeks the
    team was free to act; and, where the log has a never-treated holdout, the usual course against never
    acting. Fitted in `jobs` processes, or on Spark's executors with `settings.engine` spark."""
    workers = Workers.of(settings, jobs)
    config = UpliftConfig().resolved(settings)
    design = store_design(store, settings, int(config.horizon_days or settings.horizon_days), config.threads)
    cache = crossfit_cache(store)
    study = store_study(design.usual_course(), config, str(store.root.resolve()))
    program = design_program_effects(
        design.rows,
        design.outcomes,
        design.holdout,
        folds=config.folds,
        seed=study.seed,
        threads=config.threads,
        workers=workers,
        cache=cache,
    )
    return analyse(replace(study, program=program, sampling=settings.nuisance_sampling), workers, cache)


def from_table(
    path: Path,
    treatment: str,
    outcome: str,
    control: str | None,
    settings: Settings,
    jobs: int = 1,
    *,
    covariates: list[str] | None = None,
    exclude: list[str] | None = None,
    cross_check: bool = False,
) -> Analysis:
    """The report over an experiment or intervention export; `covariates` and `exclude` as in
    `table_study`; with `cross_check`, each effect also by DoubleML's IRM on the same rows."""
    from training.dataset import read_table  # deferred: imports Feast, which the workers need not load

    frame = read_table(path)
    study = table_study(
        frame,
        treatment,
        outcome,
        control,
        table=str(path.resolve()),
        seed=settings.seed,
        covariates=covariates,
        exclude=exclude,
    )
    return analyse(replace(study, cross_check=cross_check), Workers.of(settings, jobs))
