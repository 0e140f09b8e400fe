"""What the cockpit's pages show, and how they are rendered: Jinja2 templates with autoescaping, one
stylesheet served from the package, no script."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from importlib.resources import files

from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from serving.autopilot_log import AutopilotLog, ExecutionStatus, Stop
from serving.caller import Caller
from serving.cockpit.access import Viewer
from serving.cockpit.book import (
    Book,
    Point,
    days_between,
    trends,
)
from serving.cockpit.charts import line_chart
from serving.cockpit.keeper import BookKeeper
from serving.cockpit.timeline import Moment, account_timeline, action_label
from serving.ranking import percent
from serving.resources import AccountRecord
from serving.schemas import ActionsRequest, ActionsResponse, Risk
from serving.service import Service
from serving.tables import reading
from store.decision_log import DecisionLogUnavailable, FeedbackOnAction
from store.plan_table import CHOSEN, EXPLORE, HELD_OUT, PLANS, PlanArm, latest_arm

#: why an answer came from the rules, in a CSM's words
FALLBACK_WORDS = {
    "inactive_account": "the account is no longer active",
    "no_champion": "no churn model is promoted",
    "no_feature_row": "it has no feature row yet",
    "stale_features": "its features are too old",
    "out_of_range": "an input is outside what the model was trained on",
    "model_error": "the model failed on its inputs",
}
#: how far back the account page looks for the plan of this week
WEEK = timedelta(days=7)
#: the feedback a CSM can give on an action
STATUSES = ("done", "accepted", "rejected")
#: why a feedback form was sent back (`?error=` on the account page)
FORM_ERRORS = {
    "reason_required": "Say why you rejected the action: the reason is required.",
    "bad_status": "Choose done, accepted or rejected.",
    "expired_form": "The form had expired; the page is fresh now, try again.",
}
TEMPLATES = Environment(
    loader=PackageLoader("serving.cockpit", "templates"),
    autoescape=select_autoescape(default=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
TEMPLATES.filters["action_label"] = action_label
TEMPLATES.filters["money"] = lambda v: "—" if v is None else f"${v:,.0f}"
TEMPLATES.filters["pct"] = lambda v, digits=0: "—" if v is None else f"{100 * v:.{digits}f}%"
TEMPLATES.filters["chance"] = percent
TEMPLATES.filters["day"] = lambda v: "—" if v is None else f"{v:%Y-%m-%d}"
TEMPLATES.filters["words"] = lambda v: "—" if v is None else str(v).replace("_", " ")
STYLESHEET = files("serving.cockpit").joinpath("static/cockpit.css").read_bytes()


def render(name: str, status: int = 200, **context: object) -> HTMLResponse:
    return HTMLResponse(TEMPLATES.get_template(name).render(**context), status_code=status)


@dataclass(frozen=True)
class AccountPage:
    """Everything the account page shows (the template's variables)."""

    account_id: str
    account: AccountRecord
    risk: Risk
    #: None for an account that has left: it is offered no action
    actions: ActionsResponse | None
    points: tuple[Point, ...]
    #: inline SVG, one per trend with at least two known points
    charts: list[str]
    churn_trend: bool
    timeline: list[Moment]
    timeline_days: int
    recorded: list[FeedbackOnAction]
    #: why `recorded` is empty when the decision log cannot be read
    log_note: str | None
    can_see_actions: bool
    can_act: bool
    renewal: datetime | None
    renewal_in: int | None
    left: bool
    #: the account's arm in this week's plan, in one sentence; None when no plan of the last week names it
    plan_note: str | None
    #: what the autopilot executed for the account, newest first, and whether a CSM stopped it here
    autopilot: list[ExecutionStatus] = field(default_factory=list)
    autopilot_stop: Stop | None = None

    def context(self) -> dict[str, object]:
        """The template's variables, by name."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def build_account_page(
    service: Service, keeper: BookKeeper, account_id: str, who: Viewer, request_id: str
) -> AccountPage:
    """The account page from one assessment, the trend (the book's, or for an account the book leaves out,
    its own last month ends), the store's events and the decision log."""
    resources = service.resources
    caller = Caller(request_id, who.key.key_id)
    risk, actions = service.account(account_id, caller, ActionsRequest(limit=5, include_ineligible=True))
    book = keeper.get()
    account = resources.loaded.accounts.get(account_id) or AccountRecord(account_id)
    entry = book.entry(account_id)
    renewal = entry.renewal_date if entry else account.renewal_date
    as_of = resources.as_of()
    with reading("features"):
        points = _trend(service, book, account_id)
    churn_chart, health_chart = _charts(points)
    try:
        recorded, log_note = resources.log.feedback(account_id, limit=10), None
        pending = resources.log.taken(pending_only=True, account_id=account_id)
        pilot = AutopilotLog(resources.log)
        autopilot, autopilot_stop = pilot.account_history(account_id), pilot.stop_of(account_id)
    except DecisionLogUnavailable as e:
        recorded, pending, log_note = [], [], f"The decision log cannot be read: {e}"
        autopilot, autopilot_stop = [], None
    days = resources.settings.cockpit.timeline_days
    with reading(PLANS):
        arm = latest_arm(resources.store, account_id, as_of - WEEK)
    with reading("interventions"):
        timeline = account_timeline(resources.store, book.events, pending, account_id, as_of, limit=40)
    return AccountPage(
        account_id=account_id,
        account=account,
        risk=risk,
        actions=actions,
        points=points,
        charts=[c for c in (churn_chart, health_chart) if c],
        churn_trend=bool(churn_chart),
        timeline=timeline,
        timeline_days=days,
        recorded=recorded,
        log_note=log_note,
        autopilot=autopilot,
        autopilot_stop=autopilot_stop,
        can_see_actions=who.key.allows("actions:read"),
        can_act=who.key.allows("actions:write"),
        renewal=renewal,
        renewal_in=days_between(renewal, as_of),
        left=actions is None,
        plan_note=plan_sentence(arm) if arm else None,
    )


def plan_sentence(arm: PlanArm) -> str:
    """Which arm of the week's plan the account is in, and why, in a CSM's words."""
    week = f"the week of {arm.week:%Y-%m-%d}"
    label = action_label(arm.action) if arm.action else ""
    if arm.arm == CHOSEN:
        value = "" if arm.expected_value is None else f" (expected value ${arm.expected_value:,.0f})"
        return f"In the plan for {week}: {label}, chosen as the best use of the CSM's hours{value}."
    if arm.arm == EXPLORE:
        return (
            f"In the plan for {week}: {label}, tried to learn what works. A few accounts are picked at "
            "random each week, and each is given an action drawn in proportion to its chance of being the "
            "best play here, so the plans' own results settle effects the data are still unsure of."
        )
    if arm.arm == HELD_OUT:
        share = "" if arm.propensity is None else f" ({percent(arm.propensity)} of accounts are)"
        return (
            f"Held out of the plan for {week} at random{share}: no proactive play this week, so the plan's "
            "effect can be measured against accounts like this one."
        )
    return f"No action in the plan for {week}: none was worth its cost within the CSM's hours."


def _trend(service: Service, book: Book, account_id: str) -> tuple[Point, ...]:
    """The book's trend for the account, or its own for one the book leaves out (it has left)."""
    points = book.trends.get(account_id)
    if points is not None:
        return points
    resources = service.resources
    return trends(
        resources.store,
        resources.loaded,
        {account_id},
        resources.as_of(),
        resources.settings.cockpit.trend_cutoffs,
    ).get(account_id, ())


def _charts(points: tuple[Point, ...]) -> tuple[str, str]:
    """The churn probability and health score charts (each empty with fewer than two known points)."""
    churn = line_chart(
        "trend-churn",
        "Churn probability at recent month ends",
        [(p.cutoff, p.churn_probability) for p in points],
        low=0.0,
        high=max([0.5, *(p.churn_probability or 0.0 for p in points)]),
        label="{:.0%}",
    )
    health = line_chart(
        "trend-health",
        "Health score at recent month ends",
        [(p.cutoff, p.health_score) for p in points],
        low=0.0,
        high=100.0,
        label="{:.0f}",
    )
    return churn, health
