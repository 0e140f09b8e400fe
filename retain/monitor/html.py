"""monitor.html: one self-contained page (inline CSS, base64 figures, no scripts) from a MonitorReport."""

from __future__ import annotations

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from retain.monitor import figures
from retain.monitor.drift import DRIFTED, WATCH
from retain.monitor.schema import MonitorReport

_ENV = Environment(
    loader=PackageLoader("retain.monitor", "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


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
