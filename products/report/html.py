"""The causal report as one HTML page for leadership, beside its JSON.

The page is rendered from `templates/report.html` with autoescaping, styled like the cockpit
(`templates/report.css`, inlined) and self-contained: figures as base64 PNG, no scripts and no links, so it
can be mailed, attached to a ticket or archived and still open as it was written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from core.templates import page_templates
from products.report.figures import forest_plot, propensity_plot
from products.report.run import Analysis
from products.report.schema import (
    ArmBalance,
    AverageEffect,
    CausalReport,
    CovariateBalance,
    CovariateFlag,
    CrossCheck,
    Goal,
    ProgramComparison,
    Quantiles,
    Refutation,
    SegmentEffect,
    Sensitivity,
    SkippedSegment,
)
from products.report.wording import amount, confidence_level, interval

#: the balance table shows at least this many covariates per arm (and every imbalanced one)
BALANCE_ROWS = 8

TEMPLATES = page_templates("products.report")


@dataclass(frozen=True)
class EffectWords:
    """An effect in a few words, and whether that is good news (`tone`, a CSS class)."""

    text: str
    tone: Literal["good", "bad", "none", "plain"]


def verdict(effect: AverageEffect, goal: Goal) -> EffectWords:
    if effect.ci_low is None or effect.ci_high is None:
        return EffectWords("no estimate", "none")
    if not effect.clear:
        return EffectWords("no clear effect", "none")
    direction = "lowers" if effect.ci_high < 0 else "raises"
    if goal is None:
        return EffectWords(direction, "plain")
    good = (direction == "lowers") == (goal == "lower")
    return EffectWords(f"{direction} {effect.outcome}", "good" if good else "bad")


@dataclass(frozen=True)
class SegmentsOfTreatment:
    """One treatment's segment effects, and the levels skipped for too few treated rows (listed once, as
    on the first outcome: the treated rows are the same on every outcome)."""

    treatment: str
    found: list[SegmentEffect]
    skipped: list[SkippedSegment]


def segments_by_treatment(report: CausalReport) -> list[SegmentsOfTreatment]:
    out = []
    for treatment in dict.fromkeys(e.treatment for e in report.effects):
        skipped = [s for s in report.segments_skipped if s.treatment == treatment]
        out.append(
            SegmentsOfTreatment(
                treatment,
                [s for s in report.segments if s.treatment == treatment],
                [s for s in skipped if s.outcome == skipped[0].outcome],
            )
        )
    return out


@dataclass(frozen=True)
class Page:
    """What the template shows beyond the report itself: the figures and the summary's selections."""

    report: CausalReport
    forest_png: str
    propensity_png: str
    clear: list[AverageEffect]
    #: the sensitivity of the clear effects, for the summary
    robustness: list[Sensitivity]
    poor: list[str]
    failed: list[Refutation]
    segments: list[SegmentsOfTreatment]


class _HasInterval(Protocol):
    @property
    def ci_low(self) -> float | None: ...
    @property
    def ci_high(self) -> float | None: ...


def _ci(entry: _HasInterval, binary: bool) -> str:
    return interval(entry.ci_low, entry.ci_high, binary)


def _worst(balance: ArmBalance) -> list[CovariateBalance]:
    """The covariates the page shows for an arm: every imbalanced one, and the worst BALANCE_ROWS."""
    return balance.covariates[: max(BALANCE_ROWS, balance.imbalanced_after)]


def _smd(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.2f}".replace("-", "−")


def _quantile_span(q: Quantiles) -> str:
    if q.p10 is None or q.p90 is None:
        return "n/a"
    return f"{q.p10:.3g} to {q.p90:.3g}"


TEMPLATES.globals.update(verdict=verdict, ci=_ci, quantile_span=_quantile_span, worst=_worst)
TEMPLATES.filters.update(
    amount=amount,
    interval=interval,
    confidence_level=confidence_level,
    count="{:,}".format,
    smd=_smd,
    g="{:g}".format,
    percent=lambda share, digits=0: f"{share:.{digits}%}",
)


def render(analysis: Analysis) -> str:
    report = analysis.report
    page = Page(
        report=report,
        forest_png=forest_plot(report),
        propensity_png=propensity_plot(analysis.propensities, report.overlap),
        clear=[e for e in report.effects if e.clear],
        robustness=clear_robustness(report),
        poor=[o.treatment for o in report.overlap if o.poor],
        failed=[r for r in report.refutations if not r.passed],
        segments=segments_by_treatment(report),
    )
    return TEMPLATES.get_template("report.html").render(page=page, report=report)


def clear_robustness(report: CausalReport) -> list[Sensitivity]:
    """The sensitivity of each effect whose interval excludes zero: the ones worth saying how sure."""
    clear = {(e.treatment, e.outcome) for e in report.effects if e.clear}
    return [s for s in report.sensitivity if (s.treatment, s.outcome) in clear]


@dataclass(frozen=True)
class ReportFiles:
    """Where a report was written, how many effects it estimated, the columns it did not adjust for (the
    summary warns of those a statistic left out), those --covariates forced in though they look
    post-treatment or post-outcome (it warns of each), and how strong a hidden factor would have to be to
    erase each clear effect (the summary says it)."""

    html: Path
    json: Path
    effects: int
    covariates_dropped: list[CovariateFlag]
    covariates_suspect: list[CovariateFlag]
    robustness: list[Sensitivity]
    #: the usual course against never acting, where the store's log has a never-treated holdout
    program: list[ProgramComparison]
    #: each effect by DoubleML beside the report's (a table's --engine doubleml; else empty)
    cross_check: list[CrossCheck]


def write_report(analysis: Analysis, out: Path) -> ReportFiles:
    """`out/report.html` and `out/report.json`."""
    out.mkdir(parents=True, exist_ok=True)
    report = analysis.report
    files = ReportFiles(
        out / "report.html",
        out / "report.json",
        len(report.effects),
        report.covariates_dropped,
        report.covariates_suspect,
        clear_robustness(report),
        report.program,
        report.cross_check,
    )
    files.json.write_text(analysis.report.to_json())
    files.html.write_text(render(analysis), encoding="utf-8")
    return files
