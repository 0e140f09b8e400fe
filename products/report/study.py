"""What the causal report analyses: a `Study` of arms, outcomes and covariates, built from the store's
weekly design (`store_study`) or from a table (`table_study`). Pure on frames: reading the store or the
file is left to `products.report.run`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from core.errors import RetainError
from core.settings import NuisanceSampling
from products.report.covariates import choose_covariates
from products.report.schema import CovariateFlag, Goal, Source, StoreSource, TableSource
from training.causal.design import Design
from training.causal.holdout import ProgramEffect
from training.causal.renewal import renewal_rows
from training.causal.uplift import OUTCOMES
from training.columns import binary_labels, category_levels, design_columns
from training.config import UpliftConfig

#: in table mode no experiment arm keeps propensities off 0 and 1: clip harder than the store does
TABLE_CLIP = 0.01
#: a table's nuisances are cross-fitted on 5 folds: each model sees 80% of the rows (DoubleML's default)
TABLE_FOLDS = 5
#: the one constant column of a table with nothing to adjust for
NO_COVARIATE = "(no covariate)"
#: text columns with more levels are not covariates; with at most SEGMENT_LEVELS they are also segments
MAX_LEVELS = 50
SEGMENT_LEVELS = 10
STORE_SEGMENTS = ("tier", "segment", "health_band")
#: the readable columns the who-responds-best tree may split on
STORE_RESPONDER_COLUMNS = ("tier", "health_score", "days_to_renewal", "seat_utilisation", "tenure_days")


@dataclass(frozen=True)
class Arm:
    """One treatment value against the control, over the study rows holding either (`rows`)."""

    treatment: str
    rows: np.ndarray
    treated: np.ndarray
    randomised: np.ndarray
    known_propensity: np.ndarray
    #: 1 where the row got the treatment within the horizon anyway; known from a store's log, not a table
    taken_later: np.ndarray | None = None


@dataclass(frozen=True)
class OutcomeValues:
    """One outcome's values over the study rows; 0/1 or numeric."""

    name: str
    values: np.ndarray
    binary: bool
    goal: Goal = None


@dataclass(frozen=True)
class Study:
    """Everything `analyse` estimates from: covariates, arms, outcomes, and the knobs."""

    source: Source
    frame: pd.DataFrame
    #: the columns of `frame` the nuisance models adjust for, and the levels of the text ones
    covariates: list[str]
    category_levels: dict[str, list[str]]
    arms: list[Arm]
    outcomes: list[OutcomeValues]
    #: rows of one group (an account) move together: folds and standard errors cluster on it
    groups: np.ndarray
    #: the columns whose levels get an effect each, and those the who-responds-best tree may split on
    segment_columns: list[str]
    responder_columns: list[str]
    #: the outcome the refutations re-estimate (each costs three more fits per arm)
    refute_outcome: str
    propensity_clip: float
    folds: int
    #: below this many effective treated rows an arm's overlap is poor
    min_effective_treated: float
    seed: int
    caveats: list[str] = field(default_factory=list)
    #: the columns not adjusted for, with why (a table's; the store's design adjusts for every feature)
    covariates_dropped: list[CovariateFlag] = field(default_factory=list)
    #: columns adjusted for because --covariates named them, though the default would leave them out
    covariates_suspect: list[CovariateFlag] = field(default_factory=list)
    #: the usual course against never acting, where the store's log has a never-treated holdout
    program: list[ProgramEffect] = field(default_factory=list)
    #: fit each arm's 0/1 outcome model on its own rows where they allow (`estimation.per_arm_fits`), not as
    #: the uplift models' shift from a shared baseline: a table has one arm, so nothing to share
    per_arm_outcomes: bool = False
    #: also estimate each effect by DoubleML's IRM on the same rows (`crosscheck`; --engine doubleml)
    cross_check: bool = False
    #: fit the propensities on case-control samples, as uplift training does (the store's design)
    sampling: NuisanceSampling | None = None

    def outcome(self, name: str) -> OutcomeValues:
        return next(o for o in self.outcomes if o.name == name)

    @property
    def covariates_used(self) -> list[str]:
        """The data's columns adjusted for: `covariates` without the stand-in of a table with none."""
        return [c for c in self.covariates if c != NO_COVARIATE]


def _store_arm(design: Design, action: str, horizon_days: int) -> Arm:
    """`action` against not taking it that week, over every row; an action whose worth settles at the
    renewal, taken before a renewal against not at all, over one row per renewal, where there are enough
    (`training.causal.renewal`)."""
    if design.actions[action].settles_at_renewal:
        renewals = renewal_rows(design, action, horizon_days)
        if renewals.enough:
            none = np.zeros(len(renewals.rows))
            return Arm(action, renewals.rows, renewals.treated, none.astype(np.int8), none)
    return Arm(
        action,
        np.arange(len(design.rows)),
        design.treated[action],
        design.randomised[action],
        design.known_propensity[action],
        design.taken_later(action),
    )


def store_study(design: Design, config: UpliftConfig, store: str) -> Study:
    """Every catalogue action against not taking it that week (or, settling at the renewal, not before it),
    on churn and expansion at the horizon."""
    rows = design.rows
    covariates, levels = design_columns(rows)
    horizon = int(config.horizon_days or 0)
    arms = [_store_arm(design, a, horizon) for a in design.actions]
    goals: dict[str, Goal] = {"churn": "lower", "expansion": "higher"}
    outcomes = [OutcomeValues(o, design.outcomes[o].astype(float), True, goals[o]) for o in OUTCOMES]
    return Study(
        source=StoreSource(
            store=store,
            rows=len(rows),
            accounts=int(rows["account_id"].nunique()),
            weeks=int(rows["cutoff"].nunique()),
            cutoffs=[str(rows["cutoff"].min().date()), str(rows["cutoff"].max().date())],
            horizon_days=horizon,
        ),
        frame=rows,
        covariates=covariates,
        category_levels=levels,
        arms=arms,
        outcomes=outcomes,
        groups=design.groups,
        segment_columns=[c for c in STORE_SEGMENTS if c in rows],
        responder_columns=[c for c in STORE_RESPONDER_COLUMNS if c in rows],
        refute_outcome="churn",
        propensity_clip=config.clip,
        folds=config.folds,
        min_effective_treated=config.min_effective_treated,
        seed=int(config.seed or 0),
        caveats=[
            "Actions the CS team chose (the targeted arm) are assumed to depend only on what the features "
            "record: a reason for acting that no feature captures, and that also moves churn or expansion, "
            "biases the estimate. Only the experiment arm is free of this assumption, hence its comparison.",
            f"Effects count what happened within {horizon} days of the week the action was taken; slower "
            "effects are not seen, and the latest weeks are left out until their horizon has passed.",
            "Each action is compared with not taking it that week, whatever else the account received: "
            "effects of actions that usually come together are not separated.",
            *(
                f"{arm.treatment} settles at the renewal: it is compared per renewal, taken in the "
                f"{horizon} days before it against not taken before it at all, on one row per renewal "
                "at the start of that window."
                for arm in arms
                if arm.taken_later is None  # compared per renewal: no later take to count
            ),
            "The weekly rows of one account are not independent: folds and intervals cluster on the account.",
        ],
    )


def _label(value: Any) -> str:
    """A treatment value as text; whole floats as integers (a CSV column of 0/1 with a gap reads as float)."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _arm_labels(column: pd.Series, control: str | None) -> tuple[pd.Series, list[str]]:
    """The column as text labels, and the labels that mean control."""
    name = column.name
    labels = column.map(lambda v: None if pd.isna(v) else _label(v))
    seen = sorted(labels.dropna().unique())
    shown = ", ".join(repr(v) for v in seen[:10]) + (" ..." if len(seen) > 10 else "")
    if len(seen) < 2:
        raise RetainError(
            f"--treatment: column {name!r} has {'one value, ' + shown if seen else 'no values'}; "
            "nothing to compare"
        )
    if control is not None:
        wanted = (
            _label(float(control)) if pd.api.types.is_numeric_dtype(column) and _numeric(control) else control
        )
        if wanted not in seen:
            raise RetainError(f"--control: column {name!r} has no value {control!r} (values seen: {shown})")
        return labels, [wanted]
    try:
        flags = binary_labels(column)
    except RetainError:
        raise RetainError(
            f"--treatment: column {name!r} is not 0/1 or true/false (values seen: {shown}); give --control "
            "VALUE, the value of the untreated rows"
        ) from None
    return labels, sorted(set(labels[flags == 0].dropna()))


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _outcome_values(column: pd.Series) -> tuple[np.ndarray, bool]:
    """Floats (NaN where missing), and whether they are 0/1."""
    try:
        return binary_labels(column).astype("float64").to_numpy(na_value=np.nan), True
    except RetainError:
        pass
    numbers = pd.to_numeric(column, errors="coerce")
    bad = column[column.notna() & numbers.isna()]
    if len(bad):
        shown = ", ".join(repr(v) for v in bad.astype(str).unique()[:5])
        raise RetainError(
            f"--outcome: column {column.name!r} is neither binary (0/1, true/false, yes/no) nor numeric: "
            f"found {shown}"
        )
    return numbers.to_numpy(dtype="float64", na_value=np.nan), False


def _covariates(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
    """Numbers as floats and text as categories; why each other column was dropped."""
    kept: dict[str, pd.Series] = {}
    dropped: dict[str, str] = {}
    n = len(frame)
    for name in frame.columns:
        column = frame[name]
        unique = column.nunique()
        if pd.api.types.is_bool_dtype(column) or pd.api.types.is_float_dtype(column):
            kept[name] = column.astype("float64")
        elif pd.api.types.is_datetime64_any_dtype(column):
            dropped[name] = "a date/time column"
        elif n > 1 and unique == n:
            dropped[name] = "id-like: a different value on every row"
        elif pd.api.types.is_numeric_dtype(column):
            kept[name] = column.astype("float64")
        elif unique > MAX_LEVELS:
            dropped[name] = f"text with more than {MAX_LEVELS} distinct values"
        else:
            kept[name] = column.map(lambda v: None if pd.isna(v) else str(v)).astype(object)
    return pd.DataFrame(kept, index=frame.index), dropped


def table_study(
    frame: pd.DataFrame,
    treatment: str,
    outcome: str,
    control: str | None,
    *,
    table: str,
    seed: int,
    covariates: list[str] | None = None,
    exclude: list[str] | None = None,
) -> Study:
    """Each treatment value against the control, adjusting for exactly `covariates` if given, else for
    every usable column but `exclude` and those that look post-treatment or post-outcome
    (`choose_covariates`)."""
    _check_columns(frame, treatment, outcome)
    _check_chosen(frame, treatment, outcome, covariates, exclude)
    labels, controls = _arm_labels(frame[treatment], control)
    y, binary = _outcome_values(frame[outcome])
    usable = labels.notna().to_numpy() & ~np.isnan(y)
    if not usable.any():
        raise RetainError(f"no row has both a {treatment!r} and an {outcome!r} value")
    shaped, unusable = _covariates(frame.loc[usable].drop(columns=[treatment, outcome]))
    shaped = shaped.reset_index(drop=True)
    labels = labels[usable].reset_index(drop=True)
    used, dropped, suspect = _adjusted_for(
        shaped, unusable, labels, controls, y[usable], binary, covariates=covariates, exclude=exclude or []
    )
    # nothing to adjust for (a randomised export): a constant column, and the estimate is the difference
    # of means
    x = shaped[used] if used else pd.DataFrame({NO_COVARIATE: np.zeros(len(labels))})
    text = [c for c in x.columns if x[c].dtype == object]
    return Study(
        source=TableSource(
            table=table,
            treatment_column=treatment,
            control=controls,
            outcome_column=outcome,
            outcome_type="binary" if binary else "numeric",
            rows=len(labels),
            rows_dropped_missing=int((~usable).sum()),
        ),
        frame=x,
        covariates=list(x.columns),
        category_levels=category_levels(x, text),
        arms=_table_arms(labels, controls, treatment, named_control=control is not None),
        outcomes=[OutcomeValues(outcome, y[usable], binary)],
        groups=np.arange(len(labels)),
        segment_columns=[c for c in text if 2 <= x[c].nunique() <= SEGMENT_LEVELS],
        responder_columns=list(x.columns),
        refute_outcome=outcome,
        propensity_clip=TABLE_CLIP,
        folds=TABLE_FOLDS,
        min_effective_treated=UpliftConfig().min_effective_treated,
        seed=seed,
        caveats=list(TABLE_CAVEATS),
        covariates_dropped=dropped,
        covariates_suspect=suspect,
        per_arm_outcomes=True,
    )


def _adjusted_for(
    shaped: pd.DataFrame,
    unusable: dict[str, str],
    labels: pd.Series,
    controls: list[str],
    y: np.ndarray,
    binary: bool,
    *,
    covariates: list[str] | None,
    exclude: list[str],
) -> tuple[list[str], list[CovariateFlag], list[CovariateFlag]]:
    """The columns to adjust for, those left out with why (for their shape, by an option, or as likely
    post-treatment or post-outcome), and those `covariates` forces in that the default would leave out."""
    dropped = [CovariateFlag(column=c, reason=why) for c, why in unusable.items()]
    if covariates is not None:
        named = set(covariates)
        for c in covariates:
            if c in unusable:
                raise RetainError(f"--covariates: column {c!r} cannot be adjusted for: {unusable[c]}")
        left = [
            CovariateFlag(column=str(c), reason="not named in --covariates")
            for c in shaped.columns
            if c not in named
        ]
        default = choose_covariates(shaped, labels, controls, y, binary)
        suspect = [d for d in default.dropped if d.column in named]
        return list(dict.fromkeys(covariates)), dropped + left, suspect
    excluded = [c for c in shaped.columns if c in set(exclude)]
    dropped += [CovariateFlag(column=c, reason="excluded with --exclude") for c in excluded]
    choice = choose_covariates(shaped.drop(columns=excluded), labels, controls, y, binary)
    return choice.used, dropped + choice.dropped, []


TABLE_CAVEATS = (
    "No propensity is known from the export: the estimate assumes the table's columns record "
    "everything that drove both who was treated and the outcome. For a randomised experiment this "
    "holds by design; for a log of decisions it is an assumption.",
    "Every row counts as independent: if one customer appears on several rows, the intervals are too narrow.",
)


def _check_chosen(
    frame: pd.DataFrame, treatment: str, outcome: str, covariates: list[str] | None, exclude: list[str] | None
) -> None:
    """--covariates and --exclude name columns of the table other than the treatment and the outcome."""
    if covariates is not None and exclude is not None:
        raise RetainError(
            "give --covariates (adjust for exactly these) or --exclude (leave these out of the automatic "
            "choice), not both"
        )
    option, names = ("--covariates", covariates) if covariates is not None else ("--exclude", exclude)
    unknown = [c for c in names or [] if c not in frame.columns]
    if unknown:
        raise RetainError(
            f"{option}: the table has no column {', '.join(repr(c) for c in unknown)} "
            f"(columns: {', '.join(frame.columns)})"
        )
    for name, role in ((treatment, "treatment"), (outcome, "outcome")):
        if name in (names or []):
            raise RetainError(f"{option}: {name!r} is the {role} column, not a covariate")


def _check_columns(frame: pd.DataFrame, treatment: str, outcome: str) -> None:
    for option, name in (("--treatment", treatment), ("--outcome", outcome)):
        if name not in frame.columns:
            raise RetainError(
                f"{option}: the table has no column {name!r} (columns: {', '.join(frame.columns)})"
            )
    if treatment == outcome:
        raise RetainError(f"--treatment and --outcome are both {treatment!r}")
    if frame.empty:
        raise RetainError("the table has no rows")


def _table_arms(labels: pd.Series, controls: list[str], treatment: str, *, named_control: bool) -> list[Arm]:
    """One arm per treatment value, each over its own rows and every control row."""
    is_control = labels.isin(controls).to_numpy()
    arms = []
    for value in sorted(set(labels) - set(controls)):
        rows = np.flatnonzero(is_control | (labels == value).to_numpy())
        zeros = np.zeros(len(rows))
        treated = (labels.iloc[rows] == value).to_numpy(np.int8)
        arms.append(Arm(value, rows, treated, zeros.astype(np.int8), zeros))
    if not arms:
        raise RetainError(f"--treatment: column {treatment!r} has only control rows ({', '.join(controls)})")
    if not named_control and len(arms) == 1:
        # a 0/1 column: the treatment is the column itself ("discount", not "1")
        arms = [replace(arms[0], treatment=treatment)]
    return arms
