"""What `retain webhooks` and `retain alerts` tell a person: subscriptions, secrets, dead letters, rounds
of delivery, alerts recorded."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.text import Text

from retain.cli.summaries.common import count, plain_table

if TYPE_CHECKING:
    from features.alerts import Alerted
    from serving.webhooks.delivery import DeliveryRound
    from serving.webhooks.outbox import FailedDelivery, Retried, RotatedSecret, Webhook


def alerts_recorded(a: Alerted) -> RenderableType:
    if a.error is not None:
        return Text.assemble(("error:", "red"), f" {a.raised} alerts derived, {a.error}")
    return (
        f"{a.raised} alerts derived from the latest build, scores and plan: {a.new} recorded now, "
        f"{a.known} recorded before; {a.deliveries} deliveries queued for the webhooks"
    )


def webhook_added(w: Webhook) -> RenderableType:
    return (
        f"Subscribed webhook {w.webhook_id} at {w.url} to {', '.join(w.events)}. Its signing secret is on "
        "the next line: it will not be shown again, so give it to the receiver now."
    )


def webhooks_listed(webhooks: list[Webhook]) -> RenderableType:
    rows = [
        [
            w.webhook_id,
            w.url,
            ", ".join(w.events),
            f"{w.created_at:%Y-%m-%d %H:%M}",
            count(w.pending),
            count(w.dead),
        ]
        for w in webhooks
    ]
    columns = ["webhook id", "url", "events", "created (UTC)", "pending", "dead"]
    return plain_table(None, columns, rows, figures=False) if rows else "No webhooks."


def webhook_removed(w: Webhook) -> RenderableType:
    return f"Removed webhook {w.webhook_id} ({w.url}): nothing more is sent to it."


def webhook_rotated(r: RotatedSecret) -> RenderableType:
    w = r.webhook
    kept = (
        f"the secret it replaces still signs beside it until {r.previous_until:%Y-%m-%d %H:%M:%S} UTC, "
        "then is dropped"
        if r.previous_until is not None
        else "the secret it replaces was dropped at once"
    )
    return (
        f"Rotated the signing secret of webhook {w.webhook_id} ({w.url}): {kept}. The new secret is on the "
        "next line: it will not be shown again, so give it to the receiver now."
    )


def deliveries_failed(failed: list[FailedDelivery]) -> RenderableType:
    if not failed:
        return "No dead deliveries."
    rows = [
        [f.alert_id, f.type, f.account_id or "", f.webhook_id, str(f.attempts), f.last_error or ""]
        for f in failed
    ]
    columns = ["alert id", "type", "account", "webhook id", "attempts", "last error"]
    return Group(
        f"{len(failed)} dead deliveries; `retain webhooks retry` sends them again.",
        plain_table(None, columns, rows, figures=False),
    )


def deliveries_retried(r: Retried) -> RenderableType:
    return f"{r.deliveries} dead deliveries made pending again; the worker sends them on its next round."


def delivery_round(r: DeliveryRound) -> RenderableType:
    return f"Delivered {r.sent}; {r.failed} failed and will be tried again; {r.dead} dead" + (
        " (`retain webhooks failed` lists them)." if r.dead else "."
    )
