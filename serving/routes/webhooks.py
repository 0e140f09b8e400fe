"""Webhook subscriptions for playbook engines and CRMs, and the deliveries that failed every attempt:
for admin keys only, since a subscription decides where account data goes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from serving.auth import KeyRequired
from serving.deps import RequestId, ServiceDep
from serving.schemas import (
    FailedDeliveries,
    RetryIn,
    RetryOut,
    WebhookCreated,
    WebhookIn,
    WebhookList,
    WebhookResponse,
    WebhookRotated,
    WebhookRotateIn,
)
from serving.webhook_admin import WebhookAdmin

router = APIRouter(tags=["webhooks"], dependencies=[Depends(KeyRequired("admin"))])


@router.get("/v1/webhooks", summary="the subscriptions, with pending and dead deliveries counted")
def webhooks(service: ServiceDep, request_id: RequestId) -> WebhookList:
    return WebhookAdmin(service.resources).webhooks(request_id)


@router.post(
    "/v1/webhooks",
    summary="subscribe a URL to alert types; the answer holds the signing secret, shown this once",
    status_code=201,
)
def add_webhook(body: WebhookIn, service: ServiceDep, request_id: RequestId) -> WebhookCreated:
    return WebhookAdmin(service.resources).add_webhook(body, request_id)


@router.delete("/v1/webhooks/{webhook_id}", summary="end a subscription: nothing more is sent to it")
def remove_webhook(
    webhook_id: Annotated[str, Path(min_length=1, max_length=200)], service: ServiceDep, request_id: RequestId
) -> WebhookResponse:
    return WebhookAdmin(service.resources).remove_webhook(webhook_id, request_id)


@router.post(
    "/v1/webhooks/{webhook_id}/rotate",
    summary="a new signing secret, shown this once; the old one signs beside it for the overlap",
)
def rotate_webhook_secret(
    webhook_id: Annotated[str, Path(min_length=1, max_length=200)],
    service: ServiceDep,
    request_id: RequestId,
    body: WebhookRotateIn | None = None,
) -> WebhookRotated:
    return WebhookAdmin(service.resources).rotate_webhook_secret(
        webhook_id, body or WebhookRotateIn(), request_id
    )


@router.get("/v1/webhooks/failed", summary="deliveries that failed every attempt (the dead letters)")
def failed_deliveries(service: ServiceDep, request_id: RequestId) -> FailedDeliveries:
    return WebhookAdmin(service.resources).failed_deliveries(request_id)


@router.post("/v1/webhooks/retry", summary="send dead deliveries again: of an alert, a webhook, or all")
def retry_deliveries(body: RetryIn, service: ServiceDep, request_id: RequestId) -> RetryOut:
    return WebhookAdmin(service.resources).retry_deliveries(body, request_id)
