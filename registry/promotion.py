"""Promotion and rollback of `champion`: a gate on one shared out-of-time window, forcing with a reason.

The challenger (the latest trained version) replaces the champion only if, scored on the same latest
matured window, its AUC is not lower by more than 0.005 and its Brier score is not worse; an uplift
model, only if the churn its policy averts on the store's latest weeks (estimated with DR pseudo-outcomes)
is not significantly less. The metrics each version logged at training time came from different windows,
so they are shown for context, never used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from rich.table import Table
from sklearn.metrics import brier_score_loss, roc_auc_score

from registry.aliases import CHALLENGER, CHAMPION, champion_history, crown, uncrown
from registry.models import StaleModel, VersionInfo, resolve, scoring_model, uplift_model
from registry.tracking import VERSION_METRICS, client
from retain.core.errors import RetainError
from retain.core.settings import Settings
from retain.core.store import Store
from training.artifact import ScoringModel
from training.causal.dr import clustered_norm

AUC_TOLERANCE = 0.005
#: uplift: how many standard errors of shortfall the challenger's policy may show
UPLIFT_Z = 1.96
Window = tuple[pd.DataFrame, np.ndarray]


@dataclass(frozen=True)
class Scores:
    auc: float
    brier: float


def evaluate(model: ScoringModel, window: Window) -> Scores:
    rows, labels = window
    probability = model.predict(rows)
    return Scores(float(roc_auc_score(labels, probability)), float(brier_score_loss(labels, probability)))


def gate(champion: Scores, challenger: Scores) -> tuple[bool, str]:
    """The promotion rule, and a sentence saying how the challenger fared against it."""
    auc_ok = challenger.auc >= champion.auc - AUC_TOLERANCE
    brier_ok = challenger.brier <= champion.brier
    auc = f"AUC {challenger.auc:.4f} vs {champion.auc:.4f} (may drop {AUC_TOLERANCE})"
    brier = f"Brier {challenger.brier:.4f} vs {champion.brier:.4f} (may not rise)"
    verdicts = [f"{text}: {'ok' if ok else 'fails'}" for text, ok in ((auc, auc_ok), (brier, brier_ok))]
    return auc_ok and brier_ok, "; ".join(verdicts)


def _check_window(window: Window) -> dict[str, Any]:
    rows, labels = window
    labels = np.asarray(labels)
    if len(rows) != len(labels):
        raise RetainError(f"the evaluation window has {len(rows)} rows but {len(labels)} labels")
    if len(np.unique(labels)) < 2:
        raise RetainError("the evaluation window holds one class only; AUC cannot compare the models")
    summary: dict[str, Any] = {"rows": len(rows), "positives": int(labels.sum())}
    if "cutoff" in rows.columns:
        summary["cutoffs"] = sorted({str(pd.Timestamp(c).date()) for c in rows["cutoff"].unique()})
    return summary


def _side(info: VersionInfo, scores: Scores) -> dict[str, Any]:
    logged = {k: float(info.tags[k]) for k in VERSION_METRICS if k in info.tags}
    return {"version": info.version, "auc": scores.auc, "brier": scores.brier, "at_training": logged}


def _latest_window(store: Store, settings: Settings, kind: str) -> Window:
    from training.dataset import evaluation_window

    return evaluation_window(store, settings, kind)


def promote(
    store: Store,
    settings: Settings,
    name: str,
    window: Window | None = None,
    force: bool = False,
    reason: str | None = None,
) -> dict[str, Any]:
    """Move `champion` to the challenger if it passes the gate on `window` (default: the latest matured
    out-of-time window of the model's kind), or regardless with `force` and a `reason`, which is recorded.
    """
    if force and not (reason and reason.strip()):
        raise RetainError("--force needs --reason: say why the gate is overridden, it is recorded")
    mlflow_client = client(store, settings)
    champion = resolve(mlflow_client, f"{name}@{CHAMPION}")
    challenger = resolve(mlflow_client, f"{name}@{CHALLENGER}")
    result: dict[str, Any] = {"name": name, "champion_before": champion.version}
    if champion.version == challenger.version:
        return {
            **result,
            "decision": "unchanged",
            "reason": f"the challenger (version {challenger.version}) is already the champion",
            "champion": champion.version,
        }
    if challenger.tags.get("kind") == "uplift":
        gate_result = _uplift_gate(store, settings, mlflow_client, champion, challenger)
        return _decide(mlflow_client, name, result | gate_result, champion, challenger, force, reason)
    champion_model = scoring_model(mlflow_client, champion)
    challenger_model = scoring_model(mlflow_client, challenger)
    if window is None:
        window = _latest_window(store, settings, challenger_model.kind)
    result["window"] = _check_window(window)
    champion_scores = evaluate(champion_model, window)
    challenger_scores = evaluate(challenger_model, window)
    passed, verdict = gate(champion_scores, challenger_scores)
    result |= {
        "rule": f"challenger AUC >= champion AUC - {AUC_TOLERANCE} and challenger Brier <= champion Brier",
        "gate": "passed" if passed else "failed",
        "verdict": verdict,
        "scores": {
            CHAMPION: _side(champion, champion_scores),
            CHALLENGER: _side(challenger, challenger_scores),
        },
    }
    return _decide(mlflow_client, name, result, champion, challenger, force, reason)


def _decide(
    mlflow_client: Any,
    name: str,
    result: dict[str, Any],
    champion: VersionInfo,
    challenger: VersionInfo,
    force: bool,
    reason: str | None,
) -> dict[str, Any]:
    passed, verdict = result["gate"] == "passed", result["verdict"]
    if passed or force:
        decision = "promoted" if passed else "forced"
        recorded = reason.strip() if reason else verdict
        crown(mlflow_client, name, challenger.version, recorded, forced=not passed)
        return {**result, "decision": decision, "reason": recorded, "champion": challenger.version}
    return {**result, "decision": "refused", "reason": verdict, "champion": champion.version}


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


def _uplift_gate(
    store: Store, settings: Settings, mlflow_client: Any, champion: VersionInfo, challenger: VersionInfo
) -> dict[str, Any]:
    from training.causal.off_policy import estimated_averted, evaluation_weeks
    from training.config import UpliftConfig

    challenger_model = uplift_model(mlflow_client, challenger)
    try:
        champion_model = uplift_model(mlflow_client, champion)
    except StaleModel as e:
        # serving already ranks by the rules without it: there is no champion's policy to compare with
        return {"rule": "a champion that cannot rank is replaced", "gate": "passed", "verdict": str(e)}
    window = evaluation_weeks(store, settings, UpliftConfig())
    by_champion = estimated_averted(champion_model, window)
    by_challenger = estimated_averted(challenger_model, window)
    passed, verdict, se = uplift_gate(by_champion, by_challenger, window.groups)
    cutoffs = window.rows["cutoff"]
    return {
        "window": {
            "rows": len(window.rows),
            "budget": window.budget,
            "cutoffs": [str(cutoffs.min().date()), str(cutoffs.max().date())],
        },
        "rule": "challenger's estimated churn averted (DR, same window and budget) >= champion's - 1.96 SE",
        "gate": "passed" if passed else "failed",
        "verdict": verdict,
        "scores": {
            CHAMPION: {"version": champion.version, "churn_averted": float(by_champion.sum())},
            CHALLENGER: {
                "version": challenger.version,
                "churn_averted": float(by_challenger.sum()),
                "se": se,
            },
        },
    }


def rollback(store: Store, settings: Settings, name: str) -> dict[str, Any]:
    """Point `champion` back at the previous champion; the current one leaves the history."""
    mlflow_client = client(store, settings)
    current = resolve(mlflow_client, f"{name}@{CHAMPION}")
    history = champion_history(mlflow_client, name)
    if history and history[-1] != current.version:
        raise RetainError(
            f"{name}@{CHAMPION} is version {current.version} but the last recorded champion is "
            f"{history[-1]}: the alias was moved outside Retain; set it back or promote again"
        )
    restored = uncrown(mlflow_client, name)
    if restored is None:
        shown = ", ".join(history) or "none"
        raise RetainError(
            f"model {name!r} has no previous champion to roll back to (champions so far: {shown})"
        )
    dropped, champion = restored
    return {
        "name": name,
        "rolled_back": dropped,
        "champion": champion,
        "history": champion_history(mlflow_client, name),
    }


def comparison_table(result: dict[str, Any]) -> Table:
    """The champion/challenger comparison of a `promote` result, for people (stderr)."""
    scores = result["scores"]
    before, after = scores[CHAMPION], scores[CHALLENGER]
    table = Table(title=f"{result['name']}: {result['decision']} ({result['verdict']})")
    table.add_column("metric")
    table.add_column(f"champion v{before['version']}", justify="right")
    table.add_column(f"challenger v{after['version']}", justify="right")
    table.add_column("change", justify="right")
    for metric in ("auc", "brier", "churn_averted"):
        if metric not in before:
            continue
        change = after[metric] - before[metric]
        table.add_row(
            f"{metric} (shared window)", f"{before[metric]:.4f}", f"{after[metric]:.4f}", f"{change:+.4f}"
        )
    trained_before, trained_after = before.get("at_training", {}), after.get("at_training", {})
    for metric in sorted(set(trained_before) | set(trained_after)):
        old, new = trained_before.get(metric), trained_after.get(metric)
        cells = [f"{v:.4f}" if v is not None else "-" for v in (old, new)]
        table.add_row(f"{metric} (own test window)", *cells, "")
    return table
