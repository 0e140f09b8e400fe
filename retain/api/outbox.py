"""Alerts pushed to playbook engines and CRMs: alerts recorded for delivery, the webhooks subscribed to
them, their dead letters, and the delivery worker."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

from core.settings import Settings
from retain.api.common import StoreLike, decision_log, open_store, settings_or_default

if TYPE_CHECKING:
    from features.alerts import Alert, Alerted
    from serving.webhooks.delivery import DeliveryRound
    from serving.webhooks.outbox import (
        FailedDelivery,
        NewWebhook,
        Outbox,
        RecordedAlerts,
        Retried,
        RotatedSecret,
        Webhook,
    )


def alerts(*, store: StoreLike = None, settings: Settings | None = None) -> Alerted:
    """Derive again the alerts of the latest feature build, scoring run and plan, and record those not
    recorded yet: for a step whose recording failed while the decision log was away."""
    from products import alerting  # deferred: the serving layer's outbox

    settings = settings_or_default(settings)
    return alerting.record_latest(open_store(store, settings), settings)


@contextlib.contextmanager
def _outbox(store: StoreLike, settings: Settings) -> Iterator[Outbox]:
    """The outbox in the decision log's database the settings name, closed after use."""
    from serving.webhooks.outbox import Outbox  # deferred: the serving layer

    with decision_log(store, settings) as log:
        yield Outbox(log)


def add_webhook(
    url: str, events: Sequence[str], *, store: StoreLike = None, settings: Settings | None = None
) -> NewWebhook:
    """Subscribe `url` to alerts of `events` (alert types, or `*` for all) recorded from now on; the
    result holds the signing secret, this once. A refused URL or unknown type is a `RetainError`."""
    from features.playbook_file import store_playbook

    settings = settings_or_default(settings)
    opened = open_store(store, settings)
    types = store_playbook(opened, settings).alert_types
    with _outbox(opened, settings) as outbox:
        return outbox.add(url, events, types)


def webhooks(*, store: StoreLike = None, settings: Settings | None = None) -> list[Webhook]:
    """The live subscriptions with their pending and dead deliveries; never a secret."""
    with _outbox(store, settings_or_default(settings)) as outbox:
        return outbox.webhooks()


def remove_webhook(webhook_id: str, *, store: StoreLike = None, settings: Settings | None = None) -> Webhook:
    """End a subscription: nothing more is sent to it."""
    with _outbox(store, settings_or_default(settings)) as outbox:
        return outbox.remove(webhook_id)


def rotate_webhook_secret(
    webhook_id: str,
    overlap_seconds: float | None = None,
    *,
    store: StoreLike = None,
    settings: Settings | None = None,
) -> RotatedSecret:
    """Give a subscription a new signing secret, returned this once; the one it replaces keeps signing
    beside it for `overlap_seconds` (default: `webhooks.rotation_overlap_seconds`), then is dropped."""
    settings = settings_or_default(settings)
    overlap = settings.webhooks.rotation_overlap_seconds if overlap_seconds is None else overlap_seconds
    with _outbox(store, settings) as outbox:
        return outbox.rotate(webhook_id, overlap)


def record_alerts(
    alerts: Iterable[Alert], *, store: StoreLike = None, settings: Settings | None = None
) -> RecordedAlerts:
    """Record alerts for delivery, each with its deliveries in one transaction; an alert recorded
    before (by id) is left as it was, so a rerun records nothing twice."""
    with _outbox(store, settings_or_default(settings)) as outbox:
        return outbox.record(alerts)


def failed_deliveries(*, store: StoreLike = None, settings: Settings | None = None) -> list[FailedDelivery]:
    """The dead letters: deliveries that failed every attempt, with the last error."""
    with _outbox(store, settings_or_default(settings)) as outbox:
        return outbox.failed()


def retry_deliveries(
    alert_id: str | None = None,
    webhook_id: str | None = None,
    *,
    every: bool = False,
    store: StoreLike = None,
    settings: Settings | None = None,
) -> Retried:
    """Send dead deliveries again (of one alert, one webhook, both, or `every` one), attempts from zero."""
    with _outbox(store, settings_or_default(settings)) as outbox:
        return outbox.retry(alert_id, webhook_id, every=every)


def deliver_webhooks(*, store: StoreLike = None, settings: Settings | None = None) -> DeliveryRound:
    """One round of the delivery worker: every delivery due now, sent and settled (what a cron runs)."""
    from serving.webhooks.delivery import deliver_once  # deferred: requests, with the serving layer

    settings = settings_or_default(settings)
    with _outbox(store, settings) as outbox:
        return deliver_once(outbox, settings.webhooks)


def run_webhook_worker(*, store: StoreLike = None, settings: Settings | None = None) -> None:
    """The delivery worker in this thread, a round every `webhooks.poll_seconds`, until interrupted."""
    from serving.webhooks.delivery import DeliveryWorker  # deferred: requests, with the serving layer

    settings = settings_or_default(settings)
    with _outbox(store, settings) as outbox:
        DeliveryWorker(outbox, settings.webhooks).run()
