"""digest-WEEK.json: one week's digest, typed (the email page is rendered from it)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from products.monitor.impact import PlanImpact
from serving.schemas import RiskBand

SCHEMA_VERSION = 1


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class AccountMove(_Frozen):
    """An account that entered or left high risk between two scored cutoffs. A probability (and band)
    is None where the account was not scored: new since the cutoff before, or gone (churned, cancelled)
    by the latest."""

    account_id: str
    name: str | None
    tier: str | None
    csm_id: str | None
    arr: float | None
    probability_before: float | None
    probability_after: float | None
    band_before: RiskBand | None
    band_after: RiskBand | None
    #: the churn score's top reason in words, at the latest cutoff it was scored at
    reason: str | None


class RiskMoves(_Frozen):
    """Accounts entering and leaving high risk (band high or critical) from `previous_cutoff` to
    `cutoff`, largest ARR first; none when only one cutoff is scored."""

    cutoff: str
    previous_cutoff: str | None
    #: the churn probability from which an account is high risk (`serve.risk_bands.high`)
    high_from: float
    entering: list[AccountMove]
    leaving: list[AccountMove]


class GroupRisk(_Frozen):
    """ARR at risk (ARR x churn probability, summed) of one tier, one CSM, or all accounts."""

    group: str
    accounts: int
    arr: float
    arr_at_risk: float
    #: at the cutoff before; None where the group had no scored account then
    arr_at_risk_before: float | None
    change: float | None


class ArrAtRisk(_Frozen):
    cutoff: str
    previous_cutoff: str | None
    total: GroupRisk
    by_tier: list[GroupRisk]
    by_csm: list[GroupRisk]


class PlannedAction(_Frozen):
    action: str
    accounts: int
    expected_value: float


class WeekPlan(_Frozen):
    """The plan recorded for a day of the week (its latest, if several): its arms and actions."""

    week: str
    model_version: str
    #: the week's active accounts, every arm
    accounts: int
    planned: int
    holdout: int
    expected_value: float
    actions: list[PlannedAction]


class PlanSection(_Frozen):
    #: None: no plan recorded for the week
    week: WeekPlan | None
    #: what the plans of earlier weeks (and this one) kept against their holdouts, as the monitor measures
    impact: PlanImpact


class AlertExample(_Frozen):
    account_id: str | None
    at: str
    summary: str


class AlertCount(_Frozen):
    type: str
    count: int
    examples: list[AlertExample]


class AlertsSection(_Frozen):
    #: False: the store never served, so it has no decision log and no alert was recorded
    logged: bool
    total: int
    by_type: list[AlertCount]


class DigestReport(_Frozen):
    schema_version: int = SCHEMA_VERSION
    store: str
    computed_at: str
    #: the week's Monday and Sunday
    week: str
    week_end: str
    risk: RiskMoves
    arr_at_risk: ArrAtRisk
    plan: PlanSection
    alerts: AlertsSection
    #: the week in a few sentences, for the top of the page and the CLI
    headlines: list[str]
