"""Webhook signatures: HMAC-SHA256 with the subscription's secret over `f"{timestamp}.{body}"`, sent as
`Retain-Signature: v1=<hex>` beside `Retain-Timestamp`. Signing the timestamp with the body lets a receiver
refuse a captured request replayed later (`verify_signature`'s tolerance); the version prefix lets the
scheme change without breaking receivers that check `v1`. docs/examples/webhook_receiver.py carries a
copy of `verify_signature` a receiver can take as it is.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

EVENT_HEADER = "Retain-Event"
IDEMPOTENCY_HEADER = "Retain-Idempotency-Key"
TIMESTAMP_HEADER = "Retain-Timestamp"
SIGNATURE_HEADER = "Retain-Signature"
SECRET_PREFIX = "whsec_"
#: how old (or how far ahead) a signed timestamp may be before a receiver refuses it
TOLERANCE_SECONDS = 300


def new_secret() -> str:
    """A signing secret: 256 random bits, shown once when a webhook is subscribed."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The `Retain-Signature` value for `body` sent at `timestamp` (unix seconds)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"v1={digest}"


def verify_signature(
    secret: str,
    timestamp: str | int,
    body: bytes,
    signature: str,
    tolerance_seconds: float = TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """Whether `signature` signs exactly `body` at `timestamp` with `secret`, and `timestamp` is within
    `tolerance_seconds` of `now` (default: the clock). Compares in constant time."""
    try:
        sent = int(timestamp)
    except (TypeError, ValueError):
        return False
    current = time.time() if now is None else now
    if abs(current - sent) > tolerance_seconds:
        return False
    return hmac.compare_digest(sign(secret, sent, body).encode(), signature.strip().encode())


def signed_headers(
    secret: str, alert_id: str, alert_type: str, body: bytes, timestamp: int
) -> dict[str, str]:
    """The headers of one delivery: the idempotency key is the alert's id, the same on every attempt."""
    return {
        "Content-Type": "application/json",
        "User-Agent": "Retain-Webhooks/1",
        EVENT_HEADER: alert_type,
        IDEMPOTENCY_HEADER: alert_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secret, timestamp, body),
    }
