"""What `retain report causal`, `retain monitor` and `retain digest` tell a person."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.text import Text

from retain.cli.summaries.common import count

if TYPE_CHECKING:
    from products.digest.run import DigestFiles
    from products.monitor.run import MonitorFiles
    from products.report.html import ReportFiles
    from products.report.schema import ProgramComparison


def report_written(r: ReportFiles) -> RenderableType:
    """Where the report is, after a warning for each column a statistic left out of the adjustment or
    --covariates forced in against it, and how strong a hidden factor would have to be to erase each clear
    effect."""
    warnings = [
        Text.assemble(
            ("warning:", "yellow"), f" left out `{d.column}`: {d.reason}. Pass --covariates to choose."
        )
        for d in r.covariates_dropped
        if d.statistic is not None
    ] + [
        Text.assemble(
            ("warning:", "yellow"),
            f" adjusting for `{d.column}` as --covariates asks, though it looks post-treatment or "
            f"post-outcome: {d.reason}.",
        )
        for d in r.covariates_suspect
    ]
    return Group(
        *warnings,
        f"Causal report: {r.effects} effects estimated",
        *(f"  {s.treatment} on {s.outcome}: {s.sentence}" for s in r.robustness),
        *(_program(p) for p in r.program),
        *(
            Text.assemble(
                ("warning:" if c.disagree else "cross-check:", "yellow" if c.disagree else ""),
                f" {c.treatment} on {c.outcome}: {c.sentence}",
            )
            for c in r.cross_check
        ),
        f"  {r.html} (open it in a browser); its figures in {r.json}",
    )


def _program(p: ProgramComparison) -> str:
    """One outcome's usual course against never acting, in percentage points."""
    if p.ate is None or p.ci_low is None or p.ci_high is None:
        return f"  the usual course against never acting on {p.outcome}: not estimable"
    return (
        f"  the usual course against never acting on {p.outcome}: {100 * p.ate:+.1f} pp "
        f"(95% CI {100 * p.ci_low:+.1f} to {100 * p.ci_high:+.1f}) from {100 * p.never_rate:.1f}% "
        f"among {count(p.held_accounts)} held-out accounts"
    )


def monitored(m: MonitorFiles) -> RenderableType:
    return Group(
        f"Monitor written to {m.html} and {m.json} (MLflow run {m.mlflow_run}, gauges v{m.gauges_version})",
        *(f"  {line}" for line in m.findings),
    )


def digested(d: DigestFiles) -> RenderableType:
    sent = []
    if d.sent is not None:
        went = [f"mailed to {', '.join(d.sent.mailed_to)}"] if d.sent.mailed_to else []
        went += ["its headlines posted to Slack"] if d.sent.posted else []
        sent = [f"Sent: {'; '.join(went)}"]
    return Group(
        f"Digest of the week of {d.week} written to {d.html} and {d.json}",
        *(f"  {line}" for line in d.headlines),
        *sent,
    )
