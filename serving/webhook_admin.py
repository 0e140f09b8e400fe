"""Webhook administration over HTTP, as `retain webhooks ...`: subscribe, list, remove, rotate a secret,
and see or retry the deliveries that failed every attempt. The admin routes of `serving/routes/webhooks.py`
call it; the subscriptions and the outbox are `serving.webhooks.outbox`'s.
"""

from __future__ import annotations

from dataclasses import asdict

from serving.errors import ApiError
from serving.resources import Resources
from serving.schemas import (
    FailedDeliveries,
    FailedDeliveryOut,
    RetryIn,
    RetryOut,
    WebhookCreated,
    WebhookIn,
    WebhookList,
    WebhookOut,
    WebhookResponse,
    WebhookRotated,
    WebhookRotateIn,
)
from serving.webhooks.checks import WebhookInputError
from serving.webhooks.outbox import UnknownWebhook


class WebhookAdmin:
    """The webhook endpoints' work over the loaded resources, callable without HTTP."""

    def __init__(self, resources: Resources) -> None:
        self.resources = resources

    def webhooks(self, request_id: str) -> WebhookList:
        listed = self.resources.outbox.webhooks()
        return WebhookList(request_id=request_id, webhooks=[WebhookOut(**asdict(w)) for w in listed])

    def add_webhook(self, body: WebhookIn, request_id: str) -> WebhookCreated:
        """Subscribe; the answer carries the signing secret, this once."""
        try:
            added = self.resources.outbox.add(body.url, body.events, self.resources.playbook.alert_types)
        except WebhookInputError as e:
            raise _invalid(e) from e
        return WebhookCreated(request_id=request_id, secret=added.secret, **asdict(added.webhook))

    def remove_webhook(self, webhook_id: str, request_id: str) -> WebhookResponse:
        try:
            removed = self.resources.outbox.remove(webhook_id)
        except UnknownWebhook as e:
            raise ApiError(404, "webhook_not_found", str(e)) from e
        return WebhookResponse(request_id=request_id, **asdict(removed))

    def rotate_webhook_secret(
        self, webhook_id: str, body: WebhookRotateIn, request_id: str
    ) -> WebhookRotated:
        """A new signing secret, in this answer only; the one it replaces signs beside it for the overlap."""
        default = self.resources.settings.webhooks.rotation_overlap_seconds
        overlap = default if body.overlap_seconds is None else body.overlap_seconds
        try:
            rotated = self.resources.outbox.rotate(webhook_id, overlap)
        except UnknownWebhook as e:
            raise ApiError(404, "webhook_not_found", str(e)) from e
        except WebhookInputError as e:
            raise _invalid(e) from e
        return WebhookRotated(
            request_id=request_id,
            secret=rotated.secret,
            previous_until=rotated.previous_until,
            **asdict(rotated.webhook),
        )

    def failed_deliveries(self, request_id: str) -> FailedDeliveries:
        dead = [FailedDeliveryOut(**asdict(f)) for f in self.resources.outbox.failed()]
        return FailedDeliveries(request_id=request_id, deliveries=dead)

    def retry_deliveries(self, body: RetryIn, request_id: str) -> RetryOut:
        try:
            retried = self.resources.outbox.retry(body.alert_id, body.webhook_id, every=body.all)
        except WebhookInputError as e:
            raise _invalid(e) from e
        return RetryOut(request_id=request_id, retried=retried.deliveries)


def _invalid(error: WebhookInputError) -> ApiError:
    """A 422 naming the body's field at fault, with the check's own code."""
    fields = [{"field": f"body.{error.field}", "message": str(error)}]
    return ApiError(422, error.code, str(error), fields)
