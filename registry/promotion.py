"""Promotion and rollback of `champion`: a gate on one shared out-of-time window, forcing with a reason.

The challenger (the latest trained version) replaces the champion only if, scored on the same latest
matured window, its AUC is not lower by more than 0.005 and its Brier score is not worse; an uplift
model, only if the churn its policy averts on the store's latest weeks (estimated with DR pseudo-outcomes)
is not significantly less. The metrics each version logged at training time came from different windows,
so they are shown for context, never used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict
from rich.table import Table
from sklearn.metrics import brier_score_loss, roc_auc_score

from core.errors import RetainError
from core.settings import Settings
from features.alerts import Alerted
from registry.aliases import CHALLENGER, CHAMPION, champion_history, restore_previous_champion, set_champion
from registry.models import StaleModel, VersionInfo, resolve, scoring_model, uplift_model
from registry.tracking import VERSION_METRICS, StoreClient, client
from store.delta import Store
from training.artifact import ScoringModel
from training.causal.doubly_robust import clustered_norm
from training.config import UpliftConfig

if TYPE_CHECKING:
    from training.causal.off_policy import EvaluationWeeks

AUC_TOLERANCE = 0.005
#: uplift: how many standard errors of shortfall the challenger's policy may show
UPLIFT_Z = 1.96
SCORING_RULE = f"challenger AUC >= champion AUC - {AUC_TOLERANCE} and challenger Brier <= champion Brier"
UPLIFT_RULE = "challenger's estimated churn averted (DR, same window and budget) >= champion's - 1.96 SE"
STALE_CHAMPION_RULE = "a champion that cannot rank is replaced"
#: feature rows and their 0/1 labels: the out-of-time window both versions are scored on
EvaluationWindow = tuple[pd.DataFrame, np.ndarray]
Decision = Literal["promoted", "forced", "refused", "unchanged"]


class _Result(BaseModel):
    model_config = ConfigDict(frozen=True)


class WindowSummary(_Result):
    """The rows both versions were judged on."""

    rows: int
    #: scoring models: how many rows are labelled 1
    positives: int | None = None
    #: uplift models: how many accounts the policy may act on
    budget: int | None = None
    #: scoring models: every cutoff in the window; uplift models: the first and the last
    cutoffs: list[str] | None = None


class VersionScores(_Result):
    """One version's figures on the shared window, and for context those of its own test window."""

    version: str
    auc: float | None = None
    brier: float | None = None
    churn_averted: float | None = None
    #: the uplift challenger: the standard error of its difference from the champion
    se: float | None = None
    at_training: dict[str, float] | None = None


class Comparison(_Result):
    champion: VersionScores
    challenger: VersionScores


class GateResult(_Result):
    """How the challenger fared against the promotion rule."""

    window: WindowSummary | None = None
    rule: str
    gate: Literal["passed", "failed"]
    verdict: str
    scores: Comparison | None = None


class Promotion(_Result):
    """What `promote` did; `.model_dump(exclude_none=True)` is its JSON."""

    name: str
    champion_before: str
    window: WindowSummary | None = None
    rule: str | None = None
    gate: Literal["passed", "failed"] | None = None
    verdict: str | None = None
    scores: Comparison | None = None
    decision: Decision
    #: the recorded reason: the gate's verdict, or the one given when forcing
    reason: str
    champion: str
    #: a new champion, recorded for the webhooks (set by `retain.api`)
    alerts: Alerted | None = None


class Rollback(_Result):
    """What `rollback` did: the version dropped, the champion restored, the history left."""

    name: str
    rolled_back: str
    champion: str
    history: list[str]
    #: the champion's change, recorded for the webhooks (set by `retain.api`)
    alerts: Alerted | None = None


@dataclass(frozen=True)
class Scores:
    """A scoring model's AUC and Brier score on one window."""

    auc: float
    brier: float


def evaluate(model: ScoringModel, window: EvaluationWindow) -> Scores:
    rows, labels = window
    probability = model.predict(rows)
    return Scores(float(roc_auc_score(labels, probability)), float(brier_score_loss(labels, probability)))


def scoring_gate(champion: Scores, challenger: Scores) -> tuple[bool, str]:
    """The promotion rule for scoring models, and a sentence saying how the challenger fared against it."""
    auc_ok = challenger.auc >= champion.auc - AUC_TOLERANCE
    brier_ok = challenger.brier <= champion.brier
    auc = f"AUC {challenger.auc:.4f} vs {champion.auc:.4f} (may drop {AUC_TOLERANCE})"
    brier = f"Brier {challenger.brier:.4f} vs {champion.brier:.4f} (may not rise)"
    verdicts = [f"{text}: {'ok' if ok else 'fails'}" for text, ok in ((auc, auc_ok), (brier, brier_ok))]
    return auc_ok and brier_ok, "; ".join(verdicts)


def uplift_gate(champion: np.ndarray, challenger: np.ndarray, groups: np.ndarray) -> tuple[bool, str, float]:
    """Per-row churn averted by each model's policy on one window: the challenger passes unless it averts
    significantly less (its shortfall beyond 1.96 account-clustered standard errors); returns the
    verdict and the standard error of the difference."""
    difference = challenger - champion
    se = clustered_norm(difference - difference.mean(), groups)
    total = float(difference.sum())
    passed = total >= -UPLIFT_Z * se
    verdict = (
        f"churn averted {challenger.sum():.1f} vs {champion.sum():.1f} accounts "
        f"(difference {total:+.1f}, standard error {se:.1f}): {'ok' if passed else 'fails'}"
    )
    return passed, verdict, se


def _check_window(window: EvaluationWindow) -> WindowSummary:
    """The window's summary, or a RetainError if the two models cannot be compared on it."""
    rows, labels = window
    labels = np.asarray(labels)
    if len(rows) != len(labels):
        raise RetainError(f"the evaluation window has {len(rows)} rows but {len(labels)} labels")
    if len(np.unique(labels)) < 2:
        raise RetainError("the evaluation window holds one class only; AUC cannot compare the models")
    cutoffs = None
    if "cutoff" in rows.columns:
        cutoffs = sorted({str(pd.Timestamp(c).date()) for c in rows["cutoff"].unique()})
    return WindowSummary(rows=len(rows), positives=int(labels.sum()), cutoffs=cutoffs)


def _version_scores(info: VersionInfo, scores: Scores) -> VersionScores:
    logged = {k: float(info.tags[k]) for k in VERSION_METRICS if k in info.tags}
    return VersionScores(version=info.version, auc=scores.auc, brier=scores.brier, at_training=logged)


def _latest_window(store: Store, settings: Settings, kind: str) -> EvaluationWindow:
    # deferred: training.dataset loads Feast, seconds at import, and only promotion reads a window
    from training.dataset import evaluation_window

    return evaluation_window(store, settings, kind)


def promote(
    store: Store,
    settings: Settings,
    name: str,
    window: EvaluationWindow | None = None,
    force: bool = False,
    reason: str | None = None,
) -> Promotion:
    """Move `champion` to the challenger if it passes the gate on `window` (default: the latest matured
    out-of-time window of the model's kind), or regardless with `force` and a `reason`, which is recorded.
    """
    if force and not (reason and reason.strip()):
        raise RetainError("--force needs --reason: say why the gate is overridden, it is recorded")
    mlflow_client = client(store, settings)
    champion = resolve(mlflow_client, f"{name}@{CHAMPION}")
    challenger = resolve(mlflow_client, f"{name}@{CHALLENGER}")
    if champion.version == challenger.version:
        return Promotion(
            name=name,
            champion_before=champion.version,
            decision="unchanged",
            reason=f"the challenger (version {challenger.version}) is already the champion",
            champion=champion.version,
        )
    if challenger.tags.get("kind") == "uplift":
        outcome = _apply_uplift_gate(store, settings, mlflow_client, champion, challenger)
    else:
        outcome = _apply_scoring_gate(store, settings, mlflow_client, champion, challenger, window)
    return _decide(mlflow_client, name, outcome, champion, challenger, force, reason)


def _apply_scoring_gate(
    store: Store,
    settings: Settings,
    mlflow_client: StoreClient,
    champion: VersionInfo,
    challenger: VersionInfo,
    window: EvaluationWindow | None,
) -> GateResult:
    champion_model = scoring_model(mlflow_client, champion)
    challenger_model = scoring_model(mlflow_client, challenger)
    if window is None:
        window = _latest_window(store, settings, challenger_model.kind)
    summary = _check_window(window)
    champion_scores = evaluate(champion_model, window)
    challenger_scores = evaluate(challenger_model, window)
    passed, verdict = scoring_gate(champion_scores, challenger_scores)
    return GateResult(
        window=summary,
        rule=SCORING_RULE,
        gate="passed" if passed else "failed",
        verdict=verdict,
        scores=Comparison(
            champion=_version_scores(champion, champion_scores),
            challenger=_version_scores(challenger, challenger_scores),
        ),
    )


def _decide(
    mlflow_client: StoreClient,
    name: str,
    outcome: GateResult,
    champion: VersionInfo,
    challenger: VersionInfo,
    force: bool,
    reason: str | None,
) -> Promotion:
    """Move `champion` if the gate passed or is forced (recording why), and say what was done."""
    passed = outcome.gate == "passed"
    decision: Decision
    if passed or force:
        decision, recorded = (
            ("promoted" if passed else "forced"),
            reason.strip() if reason else outcome.verdict,
        )
        set_champion(mlflow_client, name, challenger.version, recorded, forced=not passed)
        after = challenger.version
    else:
        decision, recorded, after = "refused", outcome.verdict, champion.version
    return Promotion(
        name=name,
        champion_before=champion.version,
        window=outcome.window,
        rule=outcome.rule,
        gate=outcome.gate,
        verdict=outcome.verdict,
        scores=outcome.scores,
        decision=decision,
        reason=recorded,
        champion=after,
    )


def _weeks_summary(window: EvaluationWeeks) -> WindowSummary:
    """The latest weeks policies were judged on: rows, the budget, the first and last cutoff."""
    cutoffs = window.rows["cutoff"]
    return WindowSummary(
        rows=len(window.rows),
        budget=window.budget,
        cutoffs=[str(cutoffs.min().date()), str(cutoffs.max().date())],
    )


def _apply_uplift_gate(
    store: Store,
    settings: Settings,
    mlflow_client: StoreClient,
    champion: VersionInfo,
    challenger: VersionInfo,
) -> GateResult:
    # deferred: training.causal.off_policy loads Feast, seconds at import, and only promotion reads a window
    from training.causal.off_policy import estimated_averted, evaluation_weeks

    challenger_model = uplift_model(mlflow_client, challenger)
    try:
        champion_model = uplift_model(mlflow_client, champion)
    except StaleModel as e:
        # serving already ranks by the rules without it: there is no champion's policy to compare with
        return GateResult(rule=STALE_CHAMPION_RULE, gate="passed", verdict=str(e))
    window = evaluation_weeks(store, settings, UpliftConfig())
    by_champion = estimated_averted(champion_model, window)
    by_challenger = estimated_averted(challenger_model, window)
    passed, verdict, se = uplift_gate(by_champion, by_challenger, window.groups)
    return GateResult(
        window=_weeks_summary(window),
        rule=UPLIFT_RULE,
        gate="passed" if passed else "failed",
        verdict=verdict,
        scores=Comparison(
            champion=VersionScores(version=champion.version, churn_averted=float(by_champion.sum())),
            challenger=VersionScores(
                version=challenger.version, churn_averted=float(by_challenger.sum()), se=se
            ),
        ),
    )


class PolicyValue(_Result):
    """One policy's estimated churn averted against the usual course (`off_policy.estimate`)."""

    policy: str
    pairs: int
    dr: float
    dr_ci: tuple[float, float]
    snipw: float
    snipw_ci: tuple[float, float]


class PolicyEvaluation(_Result):
    """Candidate policies judged on the store's latest weeks from the log alone: the uplift champion, the
    challenger where it is another version, the rules and the riskiest first, at one budget."""

    window: WindowSummary
    policies: list[PolicyValue]


def evaluate_policies(
    store: Store, settings: Settings, name: str = "uplift", weeks: int = 12
) -> PolicyEvaluation:
    """Each candidate policy's churn averted on the latest `weeks` of the uplift design, by DR and by
    self-normalised IPW, each with its 95% interval."""
    from training.causal import off_policy  # deferred: loads Feast, seconds at import

    mlflow_client = client(store, settings)
    champion = resolve(mlflow_client, f"{name}@{CHAMPION}")
    models = {f"champion v{champion.version}": uplift_model(mlflow_client, champion)}
    challenger = resolve(mlflow_client, f"{name}@{CHALLENGER}")
    if challenger.version != champion.version:
        models[f"challenger v{challenger.version}"] = uplift_model(mlflow_client, challenger)
    window = off_policy.evaluation_weeks(store, settings, UpliftConfig(), weeks)
    chosen = {label: off_policy.model_choices(model, window) for label, model in models.items()}
    chosen |= off_policy.account_orders(next(iter(models.values())), window)
    values = [off_policy.estimate(label, *pairs, window) for label, pairs in chosen.items()]
    return PolicyEvaluation(
        window=_weeks_summary(window),
        policies=[
            PolicyValue(
                policy=v.policy,
                pairs=v.pairs,
                dr=v.dr,
                dr_ci=(v.dr_low, v.dr_high),
                snipw=v.snipw,
                snipw_ci=(v.snipw_low, v.snipw_high),
            )
            for v in values
        ],
    )


def rollback(store: Store, settings: Settings, name: str) -> Rollback:
    """Point `champion` back at the previous champion; the current one leaves the history."""
    mlflow_client = client(store, settings)
    current = resolve(mlflow_client, f"{name}@{CHAMPION}")
    history = champion_history(mlflow_client, name)
    if history and history[-1] != current.version:
        raise RetainError(
            f"{name}@{CHAMPION} is version {current.version} but the last recorded champion is "
            f"{history[-1]}: the alias was moved outside Retain; set it back or promote again"
        )
    restored = restore_previous_champion(mlflow_client, name)
    if restored is None:
        shown = ", ".join(history) or "none"
        raise RetainError(
            f"model {name!r} has no previous champion to roll back to (champions so far: {shown})"
        )
    dropped, champion = restored
    return Rollback(
        name=name, rolled_back=dropped, champion=champion, history=champion_history(mlflow_client, name)
    )


def comparison_table(result: Promotion) -> Table:
    """The champion/challenger comparison of a gated `promote` result, for people (stderr)."""
    if result.scores is None:
        raise ValueError("only a promotion that compared the two versions has a comparison table")
    before, after = result.scores.champion, result.scores.challenger
    table = Table(title=f"{result.name}: {result.decision} ({result.verdict})")
    table.add_column("metric")
    table.add_column(f"champion v{before.version}", justify="right")
    table.add_column(f"challenger v{after.version}", justify="right")
    table.add_column("change", justify="right")
    for metric in ("auc", "brier", "churn_averted"):
        old, new = getattr(before, metric), getattr(after, metric)
        if old is None or new is None:
            continue
        table.add_row(f"{metric} (shared window)", f"{old:.4f}", f"{new:.4f}", f"{new - old:+.4f}")
    trained_before, trained_after = before.at_training or {}, after.at_training or {}
    for metric in sorted(set(trained_before) | set(trained_after)):
        cells = [
            f"{v:.4f}" if v is not None else "-"
            for v in (trained_before.get(metric), trained_after.get(metric))
        ]
        table.add_row(f"{metric} (own test window)", *cells, "")
    return table
