"""The monitor page's figures, as base64 PNG: drift over time, the score spread, realised against estimated
AUC, the reliability curve and the plans' weekly impact."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from products.monitor.drift import DRIFTED, WATCH
from products.monitor.schema import MonitorReport
from products.report.figures import png

#: features drawn in the drift figure: the most drifted
TOP_DRIFT = 8


def drift_plot(report: MonitorReport) -> str | None:
    """PSI over the cutoffs for the features that moved most (clock features left out), with thresholds."""
    values = [v for v in report.drift.values if v.feature not in report.drift.clock_features]
    if not values:
        return None
    peak: dict[str, float] = {}
    for v in values:
        peak[v.feature] = max(peak.get(v.feature, 0.0), v.psi)
    top = sorted(peak, key=lambda f: -peak[f])[:TOP_DRIFT]
    cutoffs = sorted({v.cutoff for v in values})
    figure = Figure(figsize=(8, 3.6), layout="constrained")
    ax = figure.subplots()
    for feature in top:
        series = {v.cutoff: v.psi for v in values if v.feature == feature}
        ax.plot(range(len(cutoffs)), [series.get(c, np.nan) for c in cutoffs], marker="o", label=feature)
    ax.axhline(WATCH, color="#d4a017", linestyle="--", linewidth=1)
    ax.axhline(DRIFTED, color="#a31515", linestyle="--", linewidth=1)
    ax.set_xticks(range(len(cutoffs)), cutoffs, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("PSI against the training window")
    ax.legend(fontsize=7, ncol=2)
    return png(figure)


def score_plot(report: MonitorReport) -> str | None:
    """The churn probabilities' median and 10-90% and 25-75% bands per cutoff."""
    if not report.scores:
        return None
    x = np.arange(len(report.scores))
    q = {k: np.array([s.quantiles[k] for s in report.scores]) for k in report.scores[0].quantiles}
    figure = Figure(figsize=(8, 3.2), layout="constrained")
    ax = figure.subplots()
    ax.fill_between(x, q["p10"], q["p90"], alpha=0.2, color="#1f5fa8", label="10-90%")
    ax.fill_between(x, q["p25"], q["p75"], alpha=0.35, color="#1f5fa8", label="25-75%")
    ax.plot(x, q["p50"], color="#1f5fa8", marker="o", label="median")
    ax.set_xticks(x, [s.cutoff for s in report.scores], rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("churn probability")
    ax.legend(fontsize=8)
    return png(figure)


def performance_plot(report: MonitorReport) -> str | None:
    """Per model: realised AUC (model and health formula) at matured cutoffs, CBPE's estimate and interval
    at every cutoff."""
    if not report.performance:
        return None
    figure = Figure(figsize=(5 * len(report.performance), 3.4), layout="constrained")
    axes = figure.subplots(1, len(report.performance), squeeze=False)[0]
    for ax, target in zip(axes, report.performance, strict=True):
        cutoffs = [c.cutoff for c in target.cutoffs]
        x = np.arange(len(cutoffs))
        est = np.array([np.nan if c.estimated.auc is None else c.estimated.auc for c in target.cutoffs])
        low = np.array(
            [np.nan if c.estimated.auc_low is None else c.estimated.auc_low for c in target.cutoffs]
        )
        high = np.array(
            [np.nan if c.estimated.auc_high is None else c.estimated.auc_high for c in target.cutoffs]
        )
        ax.fill_between(x, low, high, alpha=0.2, color="#888", label="estimated (CBPE), 95%")
        ax.plot(x, est, color="#888", linestyle="--")
        for name, colour in (("model", "#1f5fa8"), ("health", "#c0392b")):
            realised = [
                np.nan
                if name not in c.realised or c.realised[name]["all"].auc is None
                else c.realised[name]["all"].auc
                for c in target.cutoffs
            ]
            ax.plot(x, realised, marker="o", color=colour, label=f"realised, {name}")
        ax.set_title(f"{target.target} (version {target.model_version})", fontsize=10)
        ax.set_xticks(x, cutoffs, rotation=45, ha="right", fontsize=8)
        ax.set_ylabel("AUC")
        ax.legend(fontsize=7)
    return png(figure)


def reliability_plot(report: MonitorReport) -> str | None:
    curves = [t for t in report.performance if t.reliability is not None]
    if not curves:
        return None
    figure = Figure(figsize=(4.2, 4), layout="constrained")
    ax = figure.subplots()
    ax.plot([0, 1], [0, 1], color="grey", linewidth=1)
    for target in curves:
        assert target.reliability is not None
        ax.plot(target.reliability.predicted, target.reliability.observed, marker="o", label=target.target)
    ax.set_xlabel("predicted probability")
    ax.set_ylabel("observed rate")
    ax.legend(fontsize=8)
    return png(figure)


def plans_plot(report: MonitorReport) -> str | None:
    weeks = report.plans.weeks
    if not weeks:
        return None
    figure = Figure(figsize=(8, 3), layout="constrained")
    ax = figure.subplots()
    x = np.arange(len(weeks))
    est = np.array([w.churn_prevented.estimate for w in weeks])
    low = np.array([w.churn_prevented.low for w in weeks])
    high = np.array([w.churn_prevented.high for w in weeks])
    ax.axhline(0, color="grey", linewidth=1)
    ax.errorbar(x, est, yerr=[est - low, high - est], fmt="o", capsize=3, color="#1f5fa8")
    ax.set_xticks(x, [w.week for w in weeks], rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("churns prevented (95% CI)")
    return png(figure)
