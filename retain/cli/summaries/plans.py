"""What `retain plan` tells a person: the week's actions, the holdout, each CSM's hours."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Group, RenderableType

from retain.cli.summaries.common import alerted, count, plain_table, written_to

if TYPE_CHECKING:
    from products.plan import MostPlanned, PlanSummary


def planned(p: PlanSummary) -> RenderableType:
    rows = [[action, count(n)] for action, n in sorted(p.by_action.items(), key=lambda item: -item[1])]
    hours = list(p.hours_used.values())
    used = f"{min(hours):.1f} to {max(hours):.1f}" if hours else "0"
    return Group(
        f"Planned the week of {p.week}: {count(p.planned_actions)} actions for {count(p.accounts)} "
        f"active accounts, expected value ${p.expected_value:,.0f} "
        f"(by {p.model.name} version {p.model.version})",
        f"  holdout {count(p.holdout)} ({p.holdout_share:.0%}, no action, to keep effects measurable); "
        f"{count(p.no_action)} with nothing worth doing; {p.needs_approval} need approval",
        f"  each CSM used {used} of {p.capacity_hours_per_csm:g} hours",
        f"  explored {count(p.explored)} ({p.explore_share:.0%} of the accounts it would act on, each "
        "given the action that is best under a draw from the evidence, so that unsure actions get tried)",
        plain_table(None, ["action", "accounts"], rows),
        *([_most_planned(p.most_planned)] if p.most_planned else []),
        *(
            [f"  not planned (too little overlap to trust): {', '.join(p.excluded_actions)}"]
            if p.excluded_actions
            else []
        ),
        *(
            [f"  not planned (no uplift model has learnt them yet): {', '.join(p.unmodelled_actions)}"]
            if p.unmodelled_actions
            else []
        ),
        f"  plan: {written_to(p.out, f'rows of the week of {p.week}')}",
        *alerted(p.alerts),
    )


def _most_planned(m: MostPlanned) -> str:
    if m.why_anyway is None:
        return f"  most planned: {m.action}, a {100 * m.p_helps:.0f}% chance it lowers churn risk"
    return f"  most planned: {m.why_anyway}"
