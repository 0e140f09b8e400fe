"""The pages people read: the causal report (of the store or an export), the monitor and the weekly
digest."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from core.settings import Settings
from retain.api.common import StoreLike, open_store, settings_or_default

if TYPE_CHECKING:
    from products.digest.run import DigestFiles
    from products.monitor.run import MonitorFiles
    from products.report.html import ReportFiles


def report_causal(
    out: Path, *, store: StoreLike = None, settings: Settings | None = None, jobs: int = 2
) -> ReportFiles:
    """What each action did to churn and expansion over the store's weekly design, doubly robust, as
    `out/report.html` and `out/report.json`; `jobs` processes estimate actions side by side."""
    # deferred: the causal estimators
    from products.report.html import write_report
    from products.report.run import from_store

    settings = settings_or_default(settings)
    return write_report(from_store(open_store(store, settings), settings, jobs), Path(out))


def report_causal_table(
    table: Path,
    out: Path,
    *,
    treatment: str,
    outcome: str,
    control: str | None = None,
    covariates: list[str] | None = None,
    exclude: list[str] | None = None,
    settings: Settings | None = None,
    jobs: int = 2,
    cross_check: bool = False,
) -> ReportFiles:
    """The same report over an experiment or intervention export: each `treatment` value against
    `control` (default: 0/false of a 0/1 column) on `outcome`, adjusting for exactly `covariates`, or else
    for every usable column but `exclude` and those that look changed by the treatment or the outcome
    (listed in `ReportFiles.covariates_dropped`, with why); with `cross_check`, each effect also by
    DoubleML's IRM on the same rows, side by side (`ReportFiles.cross_check`)."""
    # deferred: the causal estimators
    from products.report.html import write_report
    from products.report.run import from_table

    settings = settings_or_default(settings)
    analysis = from_table(
        Path(table),
        treatment,
        outcome,
        control,
        settings,
        jobs,
        covariates=covariates,
        exclude=exclude,
        cross_check=cross_check,
    )
    return write_report(analysis, Path(out))


def monitor(out: Path, *, store: StoreLike = None, settings: Settings | None = None) -> MonitorFiles:
    """Drift, realised and estimated performance, what the plans kept, answers and feedback: written to
    `out/monitor.html` and `out/monitor.json`, logged to MLflow, and kept in the store as gauges."""
    from products.monitor.run import monitor_store  # deferred: MLflow, the models and matplotlib

    settings = settings_or_default(settings)
    return monitor_store(open_store(store, settings), settings, Path(out))


def digest(
    week: date, out: Path, *, store: StoreLike = None, settings: Settings | None = None, send: bool = False
) -> DigestFiles:
    """The week starting on Monday `week` for leadership and CSM leads: accounts entering and leaving high
    risk, ARR at risk by tier and CSM, the week's plan and what the plans kept, the alerts by type; as an
    email-ready `out/digest-WEEK.html` and `out/digest-WEEK.json`. With `send`, also mailed (HTML with a
    text part) and its headlines posted to Slack, as `settings.delivery` says (`DigestFiles.sent`)."""
    from products.digest.run import digest_store  # deferred: the monitor's plan impact, DuckDB, Jinja2

    settings = settings_or_default(settings)
    return digest_store(open_store(store, settings), settings, week, Path(out), send_it=send)
