"""monitor.json: what one `retain monitor` run found, typed (the HTML page is rendered from it)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from products.monitor.drift import FeatureDrift
from products.monitor.impact import PlanImpact
from products.monitor.performance import Estimated, Realised, Reliability

SCHEMA_VERSION = 1


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class DriftAlarm(_Frozen):
    """A feature drifted at a cutoff: PSI at or above the threshold there and at the cutoff before."""

    feature: str
    cutoff: str
    psi: float
    previous_psi: float


class InputDrift(_Frozen):
    """Each feature's PSI per cutoff against the churn champion's training window, and the alarms."""

    reference_cutoffs: list[str]
    features: list[str]
    #: features that grow with time by definition (tenure, days since ...): reported, never alarmed
    clock_features: list[str]
    values: list[FeatureDrift]
    alarms: list[DriftAlarm]


class ScoreSpread(_Frozen):
    """The churn champion's probabilities at one cutoff: quantiles and the share in each risk band."""

    cutoff: str
    rows: int
    quantiles: dict[str, float]
    bands: dict[str, float]


class CutoffPerformance(_Frozen):
    """One target at one cutoff: realised figures (once matured) of the model and the health formula per
    slice ("all" and each tier), and CBPE's estimate from the probabilities alone."""

    target: str
    cutoff: str
    matured: bool
    realised: dict[str, dict[str, Realised]]
    estimated: Estimated


class TargetPerformance(_Frozen):
    target: str
    model_version: str
    cutoffs: list[CutoffPerformance]
    #: pooled over the matured cutoffs after the training window
    reliability: Reliability | None


class Fallbacks(_Frozen):
    """Answers the API served since the window's start, and the share from the rules, by reason."""

    since: str | None
    answers: int
    rules: int
    share: float | None
    by_reason: dict[str, int]


class ActionFeedback(_Frozen):
    action: str
    accepted: int
    rejected: int
    done: int
    acceptance_rate: float | None
    rejection_rate: float | None
    top_rejection_reasons: list[tuple[str, int]]


class MonitorReport(_Frozen):
    schema_version: int = SCHEMA_VERSION
    store: str
    computed_at: str
    latest_cutoff: str
    models: dict[str, str]
    drift: InputDrift
    scores: list[ScoreSpread]
    performance: list[TargetPerformance]
    fallbacks: Fallbacks
    feedback: list[ActionFeedback]
    plans: PlanImpact
    #: what a reader should look at first, in words
    findings: list[str]
