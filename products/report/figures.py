"""The causal report's two figures, as base64 PNG for the page to inline: the forest of effects and the
propensity overlap."""

from __future__ import annotations

import base64
import io
import math

import numpy as np
from matplotlib.figure import Figure

from products.report.run import Propensities
from products.report.schema import ArmOverlap, CausalReport

#: the adjusted estimate and treated rows; the naive difference; an arm with poor overlap
DR_COLOUR = "#1f5fa8"
NAIVE_COLOUR = "#c0392b"
POOR_COLOUR = "#a31515"


def png(figure: Figure) -> str:
    """The figure as base64 PNG, without the matplotlib version in its metadata (same input, same bytes)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _number(value: float | None) -> float:
    return math.nan if value is None else value


def forest_plot(report: CausalReport) -> str:
    """Per outcome, each treatment's DR effect with its interval, the naive difference and the holdout."""
    outcomes = list(dict.fromkeys(e.outcome for e in report.effects))
    treatments = list(dict.fromkeys(e.treatment for e in report.effects))
    holdout = {(h.treatment, h.outcome): h for h in report.holdout}
    figure = Figure(figsize=(5.2 * len(outcomes), 1.6 + 0.38 * len(treatments)), layout="constrained")
    axes = figure.subplots(1, len(outcomes), sharey=True, squeeze=False)[0]
    y = np.arange(len(treatments))[::-1]
    for ax, outcome in zip(axes, outcomes, strict=True):
        scale, unit = (100.0, "percentage points") if report.binary(outcome) else (1.0, outcome)
        rows = {e.treatment: e for e in report.effects if e.outcome == outcome}
        ate = np.array([_number(rows[t].ate) for t in treatments]) * scale
        low = np.array([_number(rows[t].ci_low) for t in treatments]) * scale
        high = np.array([_number(rows[t].ci_high) for t in treatments]) * scale
        naive = np.array([_number(rows[t].naive_difference) for t in treatments]) * scale
        ax.axvline(0, color="grey", linewidth=1)
        ax.errorbar(
            ate, y, xerr=[ate - low, high - ate], fmt="o", color=DR_COLOUR, capsize=3, label="DR, 95% CI"
        )
        ax.plot(naive, y, "x", color=NAIVE_COLOUR, label="naive difference")
        held = [(i, holdout[(t, outcome)]) for i, t in enumerate(treatments) if (t, outcome) in holdout]
        if held:
            ax.plot(
                [_number(h.ate) * scale for _, h in held],
                [y[i] - 0.25 for i, _ in held],
                "o",
                mfc="none",
                color="#555",
                label="randomised holdout",
            )
        ax.set(title=f"effect on {outcome}", xlabel=unit, yticks=y, yticklabels=treatments)
        ax.grid(axis="x", alpha=0.3)
    figure.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncol=3, fontsize=8)
    return png(figure)


def propensity_plot(propensities: dict[str, Propensities], overlaps: list[ArmOverlap]) -> str:
    """Per treatment, where treated and untreated rows sit in estimated propensity (log scale)."""
    overlap = {o.treatment: o for o in overlaps}
    names = list(propensities)
    columns = min(4, len(names))
    rows = math.ceil(len(names) / columns)
    figure = Figure(figsize=(3.2 * columns, 2.4 * rows))
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax, name in zip(axes, names, strict=False):
        treated, control = propensities[name].treated, propensities[name].control
        values = np.log10(np.concatenate([treated, control]))
        bins = np.linspace(values.min(), values.max() + 1e-9, 30)
        ax.hist(np.log10(control), bins=bins, density=True, alpha=0.5, color="#777", label="untreated")
        ax.hist(np.log10(treated), bins=bins, density=True, alpha=0.6, color=DR_COLOUR, label="treated")
        poor = overlap[name].poor
        ax.set_title(
            f"{name}\nESS {_number(overlap[name].effective_treated):.0f}{' · poor overlap' if poor else ''}",
            fontsize=9,
            color=POOR_COLOUR if poor else "black",
        )
        ax.set_xlabel("log10 propensity", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_yticks([])
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    axes[0].legend(fontsize=7)
    figure.tight_layout()
    return png(figure)
