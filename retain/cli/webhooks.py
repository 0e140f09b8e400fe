"""`retain webhooks`: alerts pushed to playbook engines and CRMs (subscriptions, secrets, dead letters and
the delivery worker); and `retain alerts`, which records the alerts they deliver."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any, cast

import typer

from core.logs import log_retain_lines
from retain import api
from retain.cli import summaries
from retain.cli.common import JsonOpt, StoreOpt, comma_list, console, emit, err, open_store, stage

webhooks_app = typer.Typer(
    help="Webhooks: alerts pushed to playbook engines and CRMs, signed, at least once.", no_args_is_help=True
)


@webhooks_app.command("add")
def webhooks_add(
    url: Annotated[str, typer.Argument(help="the http(s) URL alerts are POSTed to")],
    events: Annotated[
        str, typer.Option(help="comma-separated alert types, e.g. usage_drop,risk_band_changed; * for all")
    ],
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Subscribe a URL to alert types: its summary, then the signing secret as the last line. The secret
    is shown this once only."""
    added = api.add_webhook(url, comma_list(events), store=open_store(store))
    note = {"note": "the signing secret on the next line is shown only once"}
    if as_json:
        sys.stdout.write(json.dumps(cast(dict[str, Any], api.as_json(added.webhook)) | note, indent=2) + "\n")
    else:
        console.print(summaries.webhook_added(added.webhook))
    sys.stdout.write(added.secret + "\n")


@webhooks_app.command("list")
def webhooks_list(store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Every live subscription with its pending and dead deliveries; never a secret."""
    emit(api.webhooks(store=open_store(store)), as_json, summaries.webhooks_listed)


@webhooks_app.command("remove")
def webhooks_remove(
    webhook_id: Annotated[str, typer.Argument(help="the webhook's id, as `retain webhooks list` shows it")],
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """End a subscription: nothing more is sent to it."""
    emit(api.remove_webhook(webhook_id, store=open_store(store)), as_json, summaries.webhook_removed)


@webhooks_app.command("rotate")
def webhooks_rotate(
    webhook_id: Annotated[str, typer.Argument(help="the webhook's id, as `retain webhooks list` shows it")],
    overlap: Annotated[
        float | None,
        typer.Option(
            help="seconds the old secret keeps signing beside the new one; 0 drops it at once "
            "[default: RETAIN_WEBHOOKS__ROTATION_OVERLAP_SECONDS, a day]",
            min=0,
        ),
    ] = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Give a webhook a new signing secret: its summary, then the new secret as the last line, shown this
    once. Deliveries carry a signature by each secret until the overlap ends."""
    rotated = api.rotate_webhook_secret(webhook_id, overlap, store=open_store(store))
    note = {"note": "the signing secret on the next line is shown only once"}
    if as_json:
        shown = cast(dict[str, Any], api.as_json(rotated.webhook))
        shown |= {"previous_until": api.as_json(rotated.previous_until)} | note
        sys.stdout.write(json.dumps(shown, indent=2) + "\n")
    else:
        console.print(summaries.webhook_rotated(rotated))
    sys.stdout.write(rotated.secret + "\n")


@webhooks_app.command("failed")
def webhooks_failed(store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """The dead letters: deliveries that failed every attempt, with the last error."""
    emit(api.failed_deliveries(store=open_store(store)), as_json, summaries.deliveries_failed)


@webhooks_app.command("retry")
def webhooks_retry(
    alert_id: Annotated[str | None, typer.Argument(help="retry this alert's dead deliveries")] = None,
    webhook: Annotated[str | None, typer.Option(help="retry this webhook's dead deliveries")] = None,
    every: Annotated[bool, typer.Option("--all", help="retry every dead delivery")] = False,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Send dead deliveries again, their attempts counted from zero."""
    retried = api.retry_deliveries(alert_id, webhook, every=every, store=open_store(store))
    emit(retried, as_json, summaries.deliveries_retried)


@webhooks_app.command("deliver")
def webhooks_deliver(
    once: Annotated[bool, typer.Option("--once", help="one round, then exit (for a cron)")] = False,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Send due deliveries: one round with --once, else a round every RETAIN_WEBHOOKS__POLL_SECONDS until
    stopped. `retain serve` runs this worker itself; more than one may run at once."""
    if once:
        emit(api.deliver_webhooks(store=open_store(store)), as_json, summaries.delivery_round)
        return
    log_retain_lines()
    stage("delivering webhooks (Ctrl-C stops)")
    try:
        api.run_webhook_worker(store=open_store(store))
    except KeyboardInterrupt:
        err.print("stopped")


def alerts(store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Derive the alerts of the latest feature build, scoring run and plan again and record those not yet
    recorded (a step whose recording failed says so); exits 2 when the decision log cannot be reached."""
    recorded = api.alerts(store=open_store(store))
    emit(recorded, as_json, summaries.alerts_recorded)
    if recorded.error is not None:
        raise SystemExit(2)
