"""The action catalogue (docs/domain.md): what next-best-action ranks, with its cost, channel and cool-down.

The trigger is the action's eligibility rule and its fallback ranking, never its worth: worth is the
causal uplift times the account's value, minus the cost.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Action:
    name: str
    trigger: str
    channel: str
    cost_hours: float
    cost_usd: float
    cooldown_days: int
    needs_approval: bool = False
    #: its worth lands once, at the renewal decision (a value case shown before it): taken a few weeks
    #: later but still before the renewal, it is worth as much as taken now
    settles_at_renewal: bool = False


CATALOGUE: dict[str, Action] = {
    a.name: a
    for a in (
        Action(
            "office_hours_invite", "post-incident, low confidence, many how-to tickets", "email", 0.25, 0, 14
        ),
        Action("exec_sponsor_call", "sponsor disengaged, enterprise at risk", "call", 2.0, 0, 60),
        Action("hypercare_onboarding", "onboarding stalled, first value not reached", "meeting", 6.0, 0, 45),
        Action("integration_assist", "integration failing or missing", "meeting", 3.0, 0, 30),
        Action("training_session", "low adoption width in target roles", "meeting", 2.0, 0, 30),
        Action(
            "qbr_roi_review",
            "renewal within 120 days, value unproven",
            "meeting",
            4.0,
            0,
            90,
            settles_at_renewal=True,
        ),
        Action("health_check_call", "at-risk band", "call", 1.0, 0, 21),
        Action("in_app_nudge", "unused core feature for 7 days", "in_app", 0.0, 0, 7),
        Action("billing_outreach", "overdue or failed invoice", "email", 0.5, 0, 14),
        Action(
            "save_offer", "cancellation intent, critical band", "call", 1.5, 2_000, 180, needs_approval=True
        ),
        Action("upgrade_offer", "seat or plan limit >= 80%, healthy band", "email", 0.5, 0, 60),
        Action("reference_ask", "healthy, high NPS, value proven", "email", 0.5, 0, 180),
    )
}
ACTIONS: tuple[str, ...] = tuple(CATALOGUE)
