"""The week in a few sentences: the top of the page and what `retain digest` prints."""

from __future__ import annotations

from products.digest.schema import AlertsSection, ArrAtRisk, DigestReport, PlanSection, RiskMoves
from products.monitor.impact import money


def _risk(risk: RiskMoves, week_end: str) -> str:
    if risk.previous_cutoff is None:
        return (
            f"Only the cutoff {risk.cutoff} is scored on or before {week_end}: score an earlier one to see "
            "which accounts entered and left high risk."
        )
    arr_in = sum(m.arr or 0.0 for m in risk.entering)
    arr_out = sum(m.arr or 0.0 for m in risk.leaving)
    gone = sum(m.probability_after is None for m in risk.leaving)
    left = f", {gone} of them no longer active" if gone else ""
    return (
        f"{len(risk.entering)} account(s) entered high risk ({money(arr_in)} ARR) and {len(risk.leaving)} "
        f"left it ({money(arr_out)}{left}) from {risk.previous_cutoff} to {risk.cutoff}."
    )


def _arr(arr: ArrAtRisk) -> str:
    total = arr.total
    moved = ""
    if total.change is not None:
        moved = (
            f", {'up' if total.change >= 0 else 'down'} {money(abs(total.change))} from {arr.previous_cutoff}"
        )
    top = arr.by_tier[0] if arr.by_tier else None
    most = f"; the most in tier {top.group} ({money(top.arr_at_risk)})" if top is not None else ""
    return f"ARR at risk {money(total.arr_at_risk)} at {arr.cutoff}{moved}{most}."


def _plan(plan: PlanSection, week: str) -> str:
    p = plan.week
    if p is None:
        return f"No plan was recorded for this week (`retain plan --week {week}` records one)."
    return (
        f"The plan of {p.week}: {p.planned} action(s) worth an expected {money(p.expected_value)}; "
        f"{p.holdout} of {p.accounts} active accounts held out to measure it."
    )


def _alerts(alerts: AlertsSection) -> str:
    if not alerts.logged:
        return "No alerts: this store has never served, so it has no decision log to record them in."
    if not alerts.total:
        return "No alerts were recorded about this week."
    named = ", ".join(f"{c.count} {c.type.replace('_', ' ')}" for c in alerts.by_type)
    return f"{alerts.total} alert(s) about this week: {named}."


def headlines(report: DigestReport) -> list[str]:
    return [
        _risk(report.risk, report.week_end),
        _arr(report.arr_at_risk),
        _plan(report.plan, report.week),
        report.plan.impact.sentence,
        _alerts(report.alerts),
    ]
