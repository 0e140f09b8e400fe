"""The autopilot: the plan's autonomous actions executed with no CSM, and its switches (the kill switch
and each action's)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from core.settings import Settings
from retain.api.common import StoreLike, decision_log, open_store, settings_or_default

if TYPE_CHECKING:
    from products.autopilot.run import AutopilotRun
    from serving.autopilot_log import Switch


def autopilot_run(
    *,
    store: StoreLike = None,
    settings: Settings | None = None,
    at: datetime | None = None,
    dry_run: bool = False,
) -> AutopilotRun:
    """Execute the current plan's autonomous actions the guardrails let through, as `action.execute`
    events to the subscribed playbook engines, after pausing any action its holdout comparison shows
    harmful; `at` replays a past moment (default now), `dry_run` only says what it would do."""
    from products.autopilot.run import run_autopilot  # deferred: DuckDB, the plan and the serving layer

    settings = settings_or_default(settings)
    return run_autopilot(open_store(store, settings), settings, at=at, dry_run=dry_run)


def autopilot_pause(
    action: str | None = None,
    reason: str | None = None,
    *,
    actor: str = "cli",
    store: StoreLike = None,
    settings: Settings | None = None,
) -> Switch:
    """The kill switch: stop the autopilot executing anything (no `action`) or one of its actions, until
    resumed."""
    return _autopilot_switch(True, action, reason, actor, store, settings)


def autopilot_resume(
    action: str | None = None,
    *,
    actor: str = "cli",
    store: StoreLike = None,
    settings: Settings | None = None,
) -> Switch:
    """Let the autopilot execute again (everything, or `action`, paused by a person or for harm)."""
    return _autopilot_switch(False, action, None, actor, store, settings)


def autopilot_switches(*, store: StoreLike = None, settings: Settings | None = None) -> list[Switch]:
    """Every switch as last set: the whole autopilot's (`*`) and each action's, with who, when and why."""
    from serving.autopilot_log import AutopilotLog  # deferred: the serving layer

    with decision_log(store, settings_or_default(settings)) as log:
        return sorted(AutopilotLog(log).switches().values(), key=lambda s: s.scope)


def _autopilot_switch(
    paused: bool,
    action: str | None,
    reason: str | None,
    actor: str,
    store: StoreLike,
    settings: Settings | None,
) -> Switch:
    from features.playbook_file import store_playbook
    from serving.autopilot_log import AutopilotLog, switch_scope  # deferred: the serving layer

    settings = settings_or_default(settings)
    opened = open_store(store, settings)
    scope = switch_scope(action, store_playbook(opened, settings))
    with decision_log(opened, settings) as log:
        return AutopilotLog(log).set_switch(scope, paused, actor, reason)
