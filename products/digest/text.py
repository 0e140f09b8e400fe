"""The digest's plain-text part: what a mail client without HTML (or a person who prefers text) shows, the
sections of digest-WEEK.html in the same order, every figure formatted as there. Python rather than a
template: a plain-text template would need no escaping and is not among the files the package ships."""

from __future__ import annotations

from products.digest.html import LISTED
from products.digest.schema import AccountMove, ArrAtRisk, DigestReport, GroupRisk, PlanSection
from products.monitor.impact import money

#: the text part's title line, above the week
TITLE = "RETAIN WEEKLY DIGEST"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f}%"


def _signed(value: float | None) -> str:
    return "–" if value is None else ("+" if value > 0 else "") + money(value)


def _money(value: float | None) -> str:
    return "–" if value is None else money(value)


def _moves(moves: list[AccountMove]) -> list[str]:
    if not moves:
        return ["None."]
    lines = []
    for m in moves[:LISTED]:
        before = "new" if m.probability_before is None else _pct(m.probability_before)
        after = "gone" if m.probability_after is None else _pct(m.probability_after)
        where = f"{m.account_id}, {m.tier or 'tier unknown'}, {m.csm_id or 'no CSM'}"
        lines.append(
            f"- {m.name or m.account_id} ({where}): {_money(m.arr)} ARR, churn risk {before} -> {after}; "
            f"{m.reason or 'no reason given'}"
        )
    if len(moves) > LISTED:
        lines.append(f"  and {len(moves) - LISTED} more, smaller by ARR (all in the JSON).")
    return lines


def _risk(report: DigestReport) -> list[str]:
    risk = report.risk
    if risk.previous_cutoff is None:
        entering = leaving = ["One scored cutoff only: nothing to compare with."]
    else:
        entering = _moves(risk.entering)
        leaving = ['"gone": no longer scored, the account churned or cancelled.', *_moves(risk.leaving)]
    return [
        f"ACCOUNTS ENTERING HIGH RISK ({len(risk.entering)})",
        *entering,
        "",
        f"ACCOUNTS LEAVING HIGH RISK ({len(risk.leaving)})",
        *leaving,
    ]


def _groups(groups: list[GroupRisk], label: str) -> list[str]:
    return [
        f"- {label} {g.group}: {money(g.arr_at_risk)} at risk of {money(g.arr)} ARR, {g.accounts} accounts, "
        f"change {_signed(g.change)}"
        for g in groups
    ]


def _arr(arr: ArrAtRisk) -> list[str]:
    since = "" if arr.total.change is None else f"; {_signed(arr.total.change)} since {arr.previous_cutoff}"
    return [
        f"ARR AT RISK: {money(arr.total.arr_at_risk)}",
        f"ARR times churn probability, summed over the {arr.total.accounts} accounts scored at {arr.cutoff}"
        f"{since}.",
        *_groups(arr.by_tier, "tier"),
        *_groups(arr.by_csm, "CSM"),
    ]


def _plan(plan: PlanSection) -> list[str]:
    lines = ["THE WEEK'S PLAN"]
    p = plan.week
    if p is None:
        lines.append("No plan was recorded for this week.")
    else:
        lines.append(
            f"Plan of {p.week} (uplift model {p.model_version}): {p.planned} action(s) for {p.accounts} "
            f"active accounts, an expected {money(p.expected_value)}; {p.holdout} held out at random to "
            "measure it."
        )
        lines += [
            f"- {a.action.replace('_', ' ')}: {a.accounts} accounts, expected {money(a.expected_value)}"
            for a in p.actions
        ]
    lines += ["", "WHAT THE PLANS KEPT SO FAR", plan.impact.sentence]
    for w in plan.impact.weeks:
        kept, prevented = w.arr_kept, w.churn_prevented
        lines.append(
            f"- week {w.week} ({w.accounts} accounts, {w.holdout} held out): churn "
            f"{_pct(w.churn_rate_plan)} with the plan, {_pct(w.churn_rate_holdout)} held out; "
            f"{prevented.estimate:.1f} churns prevented "
            f"({prevented.low:.1f} to {prevented.high:.1f}), {money(kept.estimate)} ARR kept "
            f"({money(kept.low)} to {money(kept.high)})"
        )
    if plan.impact.pending:
        lines.append(
            f"Labels not matured yet (judged once the horizon has passed): {', '.join(plan.impact.pending)}."
        )
    return lines


def _alerts(report: DigestReport) -> list[str]:
    alerts = report.alerts
    lines = [f"ALERTS ({alerts.total})"]
    if not alerts.logged:
        return [*lines, "This store has never served: it has no decision log, so no alert was recorded."]
    if not alerts.by_type:
        return [*lines, "No alert was recorded about this week."]
    for c in alerts.by_type:
        lines.append(f"{c.type.replace('_', ' ')}: {c.count}")
        lines += [f"- {e.account_id + ', ' if e.account_id else ''}{e.at}: {e.summary}" for e in c.examples]
    return lines


def render_text(report: DigestReport) -> str:
    """The whole digest as plain text, the HTML page's sections in its order."""
    risk = report.risk
    against = f" against {risk.previous_cutoff}" if risk.previous_cutoff else ""
    lines = [
        TITLE,
        f"Week of {report.week} to {report.week_end}",
        f"Scores of {risk.cutoff}{against}; high risk means a churn probability of {_pct(risk.high_from)} "
        "or more.",
        "",
        *(f"* {line}" for line in report.headlines),
        "",
        *_risk(report),
        "",
        *_arr(report.arr_at_risk),
        "",
        *_plan(report.plan),
        "",
        *_alerts(report),
        "",
        "--",
        f"Store {report.store}, computed {report.computed_at}. The whole digest, every account included, is "
        f"in digest-{report.week}.json (schema version {report.schema_version}).",
    ]
    return "\n".join(lines) + "\n"
