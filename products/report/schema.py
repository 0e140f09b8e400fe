"""The causal report's JSON, typed: `CausalReport` is report.json, each of its lists one kind of entry.

Entries are built JSON-safe (no NaN or infinity, None instead; plain Python numbers), so the HTML page
and report.json read the same values and `json.dumps(allow_nan=False)` holds.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Literal, TypedDict

import numpy as np

from training.causal import doubly_robust

#: which direction of an outcome is good news (churn: lower); None when the report cannot know
Goal = Literal["lower", "higher"] | None
RefutationCheck = Literal["placebo_treatment", "random_common_cause", "data_subset"]


def finite(value: float) -> float | None:
    """A number as the JSON holds it: NaN and infinities become None (null), numpy floats Python ones."""
    number = float(value)
    return number if math.isfinite(number) else None


class EstimateFields(TypedDict):
    """The fields of a `doubly_robust.Effect` as every full estimate in the report spells them."""

    ate: float | None
    se: float | None
    ci_low: float | None
    ci_high: float | None
    naive_difference: float | None
    n_treated: int
    n_control: int


def estimate_fields(effect: doubly_robust.Effect) -> EstimateFields:
    return EstimateFields(
        ate=finite(effect.ate),
        se=finite(effect.se),
        ci_low=finite(effect.ci_low),
        ci_high=finite(effect.ci_high),
        naive_difference=finite(effect.naive_difference),
        n_treated=int(effect.n_treated),
        n_control=int(effect.n_control),
    )


# -- where the data came from ----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class StoreSource:
    """The store's weekly design: one row per account and week."""

    mode: Literal["store"] = "store"
    store: str
    rows: int
    accounts: int
    weeks: int
    #: the first and the last weekly cutoff, ISO dates
    cutoffs: list[str]
    horizon_days: int


@dataclass(frozen=True, kw_only=True)
class TableSource:
    """An experiment or intervention export: one row per unit, a treatment and an outcome column."""

    mode: Literal["table"] = "table"
    table: str
    treatment_column: str
    #: the treatment values that mean untreated
    control: list[str]
    outcome_column: str
    outcome_type: Literal["binary", "numeric"]
    rows: int
    rows_dropped_missing: int


Source = StoreSource | TableSource


@dataclass(frozen=True, kw_only=True)
class CovariateFlag:
    """A column the default choice leaves out (the estimate does not adjust for it, or adjusts only because
    `--covariates` named it), why in words, and the statistic that decided it (None when its shape or an
    option did): `z` of its arm imbalance, `auc` or `r2` of the outcome on it, or `implication`, the share
    of the rows it implies the outcome on that have it."""

    column: str
    reason: str
    statistic: Literal["z", "auc", "r2", "implication"] | None = None
    value: float | None = None


# -- how it was estimated --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportedOutcome:
    """An outcome the report estimates effects on."""

    type: Literal["binary", "numeric"]
    goal: Goal


@dataclass(frozen=True)
class TreeSettings:
    """The who-responds-best tree: its depth, its smallest leaf, the columns it may split on."""

    max_depth: int
    min_leaf_share: float
    features: list[str]


@dataclass(frozen=True)
class RefutationSettings:
    outcome: str
    folds: int
    subset_share: float
    random_common_cause_tolerance_se: float
    #: the confidence level each placebo is judged at, and the report-wide false alarm it buys
    placebo_level: float
    placebo_false_alarm: float


@dataclass(frozen=True)
class Method:
    estimator: str
    #: how mu0 and mu1 are fitted (a table's per arm where the rows allow, else the uplift models' shift)
    outcome_models: str
    folds: int
    propensity_clip: float
    interval: str
    min_effective_treated: float
    min_subgroup_treated: int
    #: above this |standardised mean difference| after weighting, a covariate is flagged as imbalanced
    balance_smd_limit: float
    #: how robustness to an unmeasured confounder is measured
    sensitivity: str
    tree: TreeSettings
    refutations: RefutationSettings


# -- the findings ----------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class AverageEffect:
    """One treatment's doubly robust effect on one outcome, beside the naive difference."""

    treatment: str
    outcome: str
    ate: float | None
    ci_low: float | None
    ci_high: float | None
    naive_difference: float | None
    n_treated: int
    n_control: int

    @classmethod
    def of(cls, treatment: str, outcome: str, effect: doubly_robust.Effect) -> AverageEffect:
        return cls(
            treatment=treatment,
            outcome=outcome,
            ate=finite(effect.ate),
            ci_low=finite(effect.ci_low),
            ci_high=finite(effect.ci_high),
            naive_difference=finite(effect.naive_difference),
            n_treated=int(effect.n_treated),
            n_control=int(effect.n_control),
        )

    @property
    def clear(self) -> bool:
        """Whether the 95% interval excludes zero."""
        return self.ci_low is not None and self.ci_high is not None and not self.ci_low <= 0 <= self.ci_high


@dataclass(frozen=True, kw_only=True)
class SegmentEffect:
    """The effect within one level of a segment column (`by`)."""

    treatment: str
    outcome: str
    by: str
    level: str
    ate: float | None
    se: float | None
    ci_low: float | None
    ci_high: float | None
    naive_difference: float | None
    n_treated: int
    n_control: int


@dataclass(frozen=True, kw_only=True)
class SkippedSegment:
    """A segment level with too few treated rows for an estimate."""

    treatment: str
    outcome: str
    by: str
    level: str
    n_treated: int


@dataclass(frozen=True, kw_only=True)
class ResponderGroup:
    """One leaf of the who-responds-best tree: its rule in words and the effect measured on held-out rows;
    the estimate's fields are None when the leaf has too few treated rows."""

    rule: str
    rows: int
    ate: float | None
    se: float | None
    ci_low: float | None
    ci_high: float | None
    naive_difference: float | None
    n_treated: int
    n_control: int


@dataclass(frozen=True, kw_only=True)
class Targeting:
    """How well ranking the held-out rows by the responders' tree sorts who gains (`training.causal.qini`):
    its Qini beside a random ranking's 0, with a 95% interval over bootstraps of the groups."""

    qini: float
    ci_low: float
    ci_high: float
    auuc: float
    random_auuc: float
    better_than_random: bool


@dataclass(frozen=True, kw_only=True)
class Responders:
    treatment: str
    outcome: str
    #: the estimated groups by effect, lowest first, then those with too few treated rows
    leaves: list[ResponderGroup]
    summary: str
    #: the tree's ranking of the held-out half against a random one (None: a report from before it)
    targeting: Targeting | None = None


@dataclass(frozen=True, kw_only=True)
class Quantiles:
    p1: float | None
    p10: float | None
    p50: float | None
    p90: float | None
    p99: float | None

    @classmethod
    def of(cls, values: np.ndarray) -> Quantiles:
        def q(share: float) -> float | None:
            return float(np.quantile(values, share)) if len(values) else None

        return cls(p1=q(0.01), p10=q(0.1), p50=q(0.5), p90=q(0.9), p99=q(0.99))


@dataclass(frozen=True, kw_only=True)
class ArmOverlap:
    """Where one arm's treated and untreated rows sit in propensity, and what their weights are worth."""

    treatment: str
    n_treated: int
    n_randomised: int
    n_control: int
    #: how many equally weighted rows the inverse-propensity weights are worth
    effective_treated: float | None
    effective_control: float | None
    clipped_share: float
    propensity_treated: Quantiles
    propensity_control: Quantiles
    #: of comparable untreated rows, the share that got the treatment later within the horizon anyway
    control_treated_later: float | None
    #: fewer effective treated rows than `Method.min_effective_treated`
    poor: bool


@dataclass(frozen=True, kw_only=True)
class CovariateBalance:
    """One covariate (for text, one level as a 0/1 column) between an arm's treated and control rows: the
    standardised mean difference before and after inverse-propensity weighting (None: too few values, or
    a column constant within each arm)."""

    column: str
    level: str | None
    before: float | None
    after: float | None
    #: |after| above `Method.balance_smd_limit`: weighting left a material difference
    imbalanced: bool


@dataclass(frozen=True, kw_only=True)
class ArmBalance:
    """Whether weighting by the estimate's propensities made an arm's treated and control rows alike."""

    treatment: str
    #: worst after weighting first
    covariates: list[CovariateBalance]
    #: how many covariates (levels) differ materially before, and after, weighting
    imbalanced_before: int
    imbalanced_after: int


@dataclass(frozen=True, kw_only=True)
class Sensitivity:
    """How strong an unmeasured confounder would have to be to explain an effect away: the E-value
    (VanderWeele & Ding 2017) of the estimate and of its interval's limit nearer no effect, with the
    sentence a reader gets. None where the effect cannot be put as a risk ratio."""

    treatment: str
    outcome: str
    #: the effect as a risk ratio of the treated over the untreated outcome (a numeric outcome's: the
    #: approximation exp(0.91 d) from its standardised difference d)
    risk_ratio: float | None
    e_value: float | None
    #: 1 when the interval already holds no effect
    e_value_interval: float | None
    sentence: str


@dataclass(frozen=True, kw_only=True)
class Refutation:
    """One attempt to break an estimate, with its re-estimate and a verdict in words."""

    treatment: str
    outcome: str
    check: RefutationCheck
    ate: float | None
    ci_low: float | None
    ci_high: float | None
    passed: bool
    verdict: str


@dataclass(frozen=True, kw_only=True)
class HoldoutComparison:
    """The experiment arm's randomised estimate beside the doubly robust one."""

    treatment: str
    outcome: str
    ate: float | None
    se: float | None
    ci_low: float | None
    ci_high: float | None
    naive_difference: float | None
    n_treated: int
    n_control: int
    dr_ate: float | None
    dr_ci_low: float | None
    dr_ci_high: float | None
    intervals_overlap: bool


@dataclass(frozen=True, kw_only=True)
class CrossCheck:
    """One treatment's effect on one outcome by another implementation on the same rows (`engine`), beside
    the report's own (`retain_*`); `disagree` when they differ by more than 1.96 standard errors of their
    difference, as `sentence` says in words."""

    treatment: str
    outcome: str
    engine: str
    ate: float | None
    se: float | None
    ci_low: float | None
    ci_high: float | None
    retain_ate: float | None
    retain_se: float | None
    retain_ci_low: float | None
    retain_ci_high: float | None
    disagree: bool
    sentence: str


@dataclass(frozen=True, kw_only=True)
class ProgramComparison:
    """The team's usual course against never acting, on one outcome, from the never-treated holdout
    (`training.causal.holdout`): `n_treated` counts the usual-course weeks, `n_control` the held-out ones,
    in the `window_days` after each draw."""

    outcome: str
    ate: float | None
    se: float | None
    ci_low: float | None
    ci_high: float | None
    naive_difference: float | None
    n_treated: int
    n_control: int
    #: the outcome's rate in the held-out weeks: its level without the course
    never_rate: float
    #: the effect as a share of that rate (None where it is 0)
    share: float | None
    held_accounts: int
    window_days: int


@dataclass(frozen=True, kw_only=True)
class CausalReport:
    """Everything report.json holds; the HTML page shows the same."""

    report_version: int
    source: Source
    #: the columns the nuisance models adjust for, and those left out with why (table mode; the store's
    #: design adjusts for every feature)
    covariates_used: list[str]
    covariates_dropped: list[CovariateFlag]
    #: columns adjusted for because --covariates named them, though the default would leave them out, why
    covariates_suspect: list[CovariateFlag]
    outcomes: dict[str, ReportedOutcome]
    method: Method
    effects: list[AverageEffect]
    segments: list[SegmentEffect]
    segments_skipped: list[SkippedSegment]
    responders: list[Responders]
    overlap: list[ArmOverlap]
    balance: list[ArmBalance]
    sensitivity: list[Sensitivity]
    refutations: list[Refutation]
    holdout: list[HoldoutComparison]
    caveats: list[str]
    #: the usual course against never acting, where the store's log has a never-treated holdout
    program: list[ProgramComparison] = field(default_factory=list)
    #: the same effects by DoubleML on the same rows (a table's `--engine doubleml`; empty otherwise)
    cross_check: list[CrossCheck] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, allow_nan=False) + "\n"

    def binary(self, outcome: str) -> bool:
        return self.outcomes[outcome].type == "binary"

    @property
    def units(self) -> str:
        """What one group of rows is: an account in the store, a row in a table."""
        return "accounts" if self.source.mode == "store" else "rows"
