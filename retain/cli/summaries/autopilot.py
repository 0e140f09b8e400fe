"""What `retain autopilot` tells a person: a run's executions and skips, and its switches."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Group, RenderableType

from retain.cli.summaries.common import count, plain_table

if TYPE_CHECKING:
    from products.autopilot.run import AutopilotRun
    from serving.autopilot_log import Switch


def autopilot_ran(r: AutopilotRun) -> RenderableType:
    if r.week is None:
        return f"The autopilot executed nothing: {r.note}."
    done = sum(r.executed.values())
    verb = "would execute" if r.dry_run else "executed"
    dry = ", dry run" if r.dry_run else ""
    lines: list[RenderableType] = [
        f"Autopilot run {r.run_id} (week of {r.week}{dry}): {verb} {count(done)} of {count(r.candidates)} "
        f"autonomous plan rows; {count(r.compared)} held-out accounts newly compared."
    ]
    if r.executed:
        lines.append(plain_table(None, ["action", verb], [[a, count(n)] for a, n in r.executed.items()]))
    if r.skipped:
        lines.append(
            plain_table(None, ["skipped because", "rows"], [[w, count(n)] for w, n in r.skipped.items()])
        )
    said = "Would pause" if r.dry_run else "Paused"
    lines += [f"{said} {action}: its holdout comparison shows it harmful." for action in r.paused]
    return Group(*lines)


def autopilot_switched(s: Switch) -> RenderableType:
    scope = "The whole autopilot" if s.scope == "*" else s.scope
    state = "is paused: it executes nothing" if s.paused else "runs again"
    why = f" ({s.reason})" if s.reason else ""
    return f"{scope} {state}{'' if s.scope == '*' else ' for this action'}{why}; set by {s.actor}."


def autopilot_switches(switches: list[Switch]) -> RenderableType:
    rows = [
        [s.scope, "paused" if s.paused else "running", s.actor, f"{s.at:%Y-%m-%d %H:%M}", s.reason or ""]
        for s in switches
    ]
    columns = ["scope", "state", "set by", "at (UTC)", "why"]
    return plain_table(None, columns, rows, figures=False) if rows else "No switch set: the autopilot runs."
