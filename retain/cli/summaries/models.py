"""What the model commands tell a person: a training run against its baselines (or each action's effects),
a promotion, the policies judged, a rollback, and a turn of the retraining loop."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from rich.console import Group, RenderableType

from retain.cli.summaries.common import alerted, count, number, plain_table
from retain.cli.summaries.reports import monitored

if TYPE_CHECKING:
    from registry.promotion import PolicyEvaluation, Promotion, Rollback
    from retain.api import Json, Retrained, Trained


#: binary metrics shown for each candidate of a churn or expansion run, by their key in `metrics`
CANDIDATE_METRICS = {"auc": "AUC", "pr_auc": "PR-AUC", "brier": "Brier", "lift_top_decile": "lift top 10%"}


#: the policies a trained uplift model is judged by against the truth, as shares of the oracle's
POLICIES = ("uplift", "rules", "highest_risk")


def _registered(t: Trained) -> str:
    r = t.mlflow
    return f"registered as {r.name} version {r.version} ({', '.join(r.aliases)})"


def trained(t: Trained) -> RenderableType:
    if "effects" in t.metrics:
        return _uplift_trained(t)
    candidates = [
        name for name in ("model", "health", "logistic", "oracle") if isinstance(t.metrics.get(name), dict)
    ]
    rows = [[name, *(number(_get(t.metrics, name, key)) for key in CANDIDATE_METRICS)] for name in candidates]
    return Group(
        f"Trained {t.model} in {number(t.metrics.get('seconds'), 0)} s; {_registered(t)}",
        plain_table(_judged_on(t.metrics), ["candidate", *CANDIDATE_METRICS.values()], rows),
        f"  calibration error (ECE) {number(t.metrics.get('ece'))}; MLflow run {t.mlflow.run_id}",
    )


def _judged_on(metrics: Mapping[str, Json]) -> str:
    """Which rows the figures come from: the test window, or every row out of fold (a small table)."""
    if metrics.get("evaluation") != "cross_validation":
        return "On the test window (health: the rules' score, oracle: the true probability)"
    return (
        f"Cross-validated: every row scored by the fold model that did not see it ({metrics.get('folds')} "
        f"folds); the final model ({number(_get(metrics, 'tuning', 'trees'), 0)} trees, "
        f"{metrics.get('calibration')} calibration) is refitted on all {metrics.get('rows_refitted')} rows"
    )


def _get(metrics: Mapping[str, Json], *keys: str) -> Json:
    """A value deep in a JSON document, or None where the path stops."""
    value: Json = dict(metrics)
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _uplift_trained(t: Trained) -> RenderableType:
    usable = _get(t.metrics, "usable_actions")
    usable = usable if isinstance(usable, list) else []
    overlap = _get(t.metrics, "overlap")
    actions = list(overlap) if isinstance(overlap, dict) else []
    rows = [
        [
            action + ("" if action in usable else " (poor overlap)"),
            _share(_get(t.metrics, "relative_effects", f"{action}_churn")),
            _share(_get(t.metrics, "relative_effects", f"{action}_expansion")),
            number(_get(t.metrics, "overlap", action, "effective_treated"), 0),
        ]
        for action in actions
    ]
    lines: list[RenderableType] = [
        f"Trained {t.model} on {count(_int(t.metrics.get('rows')))} account-weeks "
        f"({count(_int(t.metrics.get('accounts')))} accounts, {_int(t.metrics.get('weeks'))} weeks) "
        f"in {number(t.metrics.get('seconds'), 0)} s; {_registered(t)}",
        plain_table(
            "Each action's effect as a share of the account's churn risk or expansion chance, ± 95%",
            ["action", "churn", "expansion", "effective treated"],
            rows,
        ),
    ]
    shares = _get(t.metrics, "truth", "policy", "share_of_oracle")
    if isinstance(shares, dict):
        told = ", ".join(f"{p} {number(shares[p], 2)}" for p in POLICIES if p in shares)
        lines.append(f"  against the truth, churn averted as a share of the oracle's: {told}")
    lines.append(f"  MLflow run {t.mlflow.run_id}")
    return Group(*lines)


def _int(value: Json) -> int:
    return value if isinstance(value, int) else 0


def _share(effect: Json) -> str:
    if not isinstance(effect, dict):
        return "–"
    share, low, high = (effect.get(k) for k in ("share", "ci_low", "ci_high"))
    if (
        not isinstance(share, int | float)
        or not isinstance(low, int | float)
        or not isinstance(high, int | float)
    ):
        return "–"
    return f"{share:+.2f} ± {(high - low) / 2:.2f}"


def promotion(p: Promotion) -> RenderableType:
    return Group(
        f"{p.name}: {p.decision} ({p.reason}); the champion is version {p.champion}", *alerted(p.alerts)
    )


def policies(e: PolicyEvaluation) -> RenderableType:
    cutoffs = e.window.cutoffs or ["?", "?"]
    rows = [
        [
            p.policy,
            count(p.pairs),
            f"{p.dr:+.1f} ({p.dr_ci[0]:+.1f} to {p.dr_ci[1]:+.1f})",
            f"{p.snipw:+.1f} ({p.snipw_ci[0]:+.1f} to {p.snipw_ci[1]:+.1f})",
        ]
        for p in e.policies
    ]
    return Group(
        f"Churned accounts averted against the usual course, weeks of {cutoffs[0]} to {cutoffs[-1]} "
        f"({count(e.window.rows)} account-weeks, {count(e.window.budget or 0)} acted on by each policy):",
        plain_table(None, ["policy", "actions", "doubly robust (95%)", "self-normalised IPW (95%)"], rows),
    )


def rolled_back(r: Rollback) -> RenderableType:
    said = f"{r.name}: version {r.rolled_back} rolled back; the champion is version {r.champion} again"
    return Group(said, *alerted(r.alerts))


def retrained(r: Retrained) -> RenderableType:
    lines = [
        f"Features built (version {r.features_version}); trained {', '.join(t.model for t in r.trained)}"
    ]
    for p in r.promotions:
        lines.append(f"  {p.name}: {p.decision}, champion version {p.champion} ({p.reason})")
    if r.refused:
        lines.append(f"  the gate kept the champion of {', '.join(r.refused)}: exit status 1")
    return Group(*lines, monitored(r.monitor))
