"""monitor.html: one self-contained page (inline CSS, base64 figures, no scripts) from a MonitorReport."""

from __future__ import annotations

from core.templates import page_templates
from products.monitor import figures
from products.monitor.drift import DRIFTED, WATCH
from products.monitor.schema import MonitorReport

_ENV = page_templates("products.monitor")


def render(report: MonitorReport) -> str:
    pictures = {
        "drift": figures.drift_plot(report),
        "scores": figures.score_plot(report),
        "performance": figures.performance_plot(report),
        "reliability": figures.reliability_plot(report),
        "plans": figures.plans_plot(report),
    }
    return _ENV.get_template("monitor.html").render(
        report=report, figures=pictures, watch=WATCH, drifted=DRIFTED
    )
