"""`retain autopilot`: the plan's autonomous actions executed with no CSM, and its switches."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from core.errors import RetainError
from retain import api
from retain.cli import summaries
from retain.cli.common import JsonOpt, StoreOpt, emit, open_store, stage

autopilot_app = typer.Typer(
    help="The autopilot: the plan's autonomous actions executed with no CSM, under guardrails.",
    no_args_is_help=True,
)


@autopilot_app.command("run")
def autopilot_run(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="say what it would execute and pause; record and send nothing")
    ] = False,
    at: Annotated[
        str | None, typer.Option(help="replay a past moment, e.g. 2025-07-29T09:00:00+00:00 [default: now]")
    ] = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Execute the current plan's autonomous actions the guardrails let through, as action.execute events
    to the subscribed playbook engines; first pause any action its holdout comparison shows harmful. A
    cron runs it, or `retain serve` with RETAIN_AUTOPILOT__WORKER=true; runs may overlap."""
    moment = None if at is None else _instant(at, "--at")
    stage("the autopilot: harm checks, then the current plan's autonomous actions under the guardrails")
    emit(
        api.autopilot_run(store=open_store(store), at=moment, dry_run=dry_run),
        as_json,
        summaries.autopilot_ran,
    )


@autopilot_app.command("pause")
def autopilot_pause(
    action: Annotated[str | None, typer.Argument(help="pause only this action [default: everything]")] = None,
    reason: Annotated[str | None, typer.Option(help="why, for whoever resumes it")] = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The kill switch: the autopilot executes nothing (or not ACTION) until resumed; runs under way stop
    before their next execution."""
    emit(api.autopilot_pause(action, reason, store=open_store(store)), as_json, summaries.autopilot_switched)


@autopilot_app.command("resume")
def autopilot_resume(
    action: Annotated[
        str | None, typer.Argument(help="resume only this action [default: everything]")
    ] = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Let the autopilot execute again: everything, or ACTION (paused by a person or for harm)."""
    emit(api.autopilot_resume(action, store=open_store(store)), as_json, summaries.autopilot_switched)


@autopilot_app.command("status")
def autopilot_status(store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Every switch as last set (the whole autopilot's and each action's), with who, when and why."""
    emit(api.autopilot_switches(store=open_store(store)), as_json, summaries.autopilot_switches)


def _instant(text: str, option: str) -> datetime:
    """An ISO 8601 instant; one without a zone is UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as e:
        raise RetainError(f"{option}: expected an instant like 2025-07-29T09:00:00+00:00 ({e})") from e
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
