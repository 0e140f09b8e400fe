"""Webhook signatures by the Standard Webhooks spec (https://www.standardwebhooks.com), made with its
reference library, `standardwebhooks`: `webhook-id` (the event's id, the same on every attempt: the
idempotency key), `webhook-timestamp` (unix seconds) and `webhook-signature`, `v1,<base64>` of the
HMAC-SHA256 of `f"{id}.{timestamp}.{body}"` keyed with the secret's decoded bytes, one per live secret,
space-separated. Any Standard Webhooks or Svix verifier checks them: `Webhook(secret).verify(body,
headers)`. Signing the id and the timestamp with the body lets a receiver refuse a captured request
replayed later, and the version prefix lets the scheme change without breaking receivers that check `v1`.

A secret is `whsec_` and the base64 of 32 random bytes. While a rotation's overlap lasts, a webhook has
more than one live secret (`SigningSecret.until`), and every delivery carries a signature by each: a
receiver holding any one of them verifies.

A subscription made before Retain signed this way keeps, until a rotation's overlap ends, the secret it
had (rewritten to the standard form with the same key bytes: `standard_secret`) and its deliveries carry
the earlier headers too, `Retain-Timestamp` and `Retain-Signature: v1=<hex>` (`legacy_signature`), so its
receiver keeps working while it moves to the library. docs/methods/webhooks.md says how to migrate.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from standardwebhooks import Webhook

EVENT_HEADER = "Retain-Event"
IDEMPOTENCY_HEADER = "Retain-Idempotency-Key"
ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
#: the headers a subscription from before Standard Webhooks still gets (see the module's docstring)
LEGACY_TIMESTAMP_HEADER = "Retain-Timestamp"
LEGACY_SIGNATURE_HEADER = "Retain-Signature"
SECRET_PREFIX = "whsec_"
#: random bytes in a secret (the spec asks for 24 to 64)
SECRET_BYTES = 32


@dataclass(frozen=True)
class SigningSecret:
    """A secret a webhook's deliveries are signed with."""

    secret: str = field(repr=False)
    #: when a rotation drops it; None for the webhook's current secret
    until: datetime | None = None
    #: a secret from before Standard Webhooks: its deliveries also carry `Retain-Signature`
    legacy: bool = False

    def live(self, now: datetime) -> bool:
        return self.until is None or now < self.until


def new_secret() -> str:
    """A signing secret, shown once when a webhook is subscribed or its secret rotated."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def standard_secret(legacy: str) -> str:
    """The Standard Webhooks form of a secret from before it: its key bytes are the whole legacy string's
    UTF-8 bytes, the key the legacy `Retain-Signature` was made with, so a receiver can derive it too."""
    return SECRET_PREFIX + base64.b64encode(legacy.encode()).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key a secret stands for, as every Standard Webhooks library decodes it."""
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def legacy_signature(secret: str, timestamp: int, body: bytes) -> str:
    """The `Retain-Signature` of `body` at `timestamp`: `v1=` and the hex HMAC-SHA256 of
    `f"{timestamp}.{body}"`, keyed as before Standard Webhooks."""
    digest = hmac.new(secret_key(secret), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"v1={digest}"


def signed_headers(
    signing: Sequence[SigningSecret], event_id: str, event_type: str, body: bytes, timestamp: int
) -> dict[str, str]:
    """The headers of one delivery of the event `event_id`, signed at `timestamp` (unix seconds) with each
    of `signing`, its webhook's live secrets: the id is the same on every attempt and to every webhook."""
    if not signing:
        raise ValueError("a delivery needs at least one live secret to sign it")
    at, data = datetime.fromtimestamp(timestamp, UTC), body.decode()
    signatures = " ".join(Webhook(s.secret).sign(event_id, at, data) for s in signing)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Retain-Webhooks/1",
        EVENT_HEADER: event_type,
        IDEMPOTENCY_HEADER: event_id,
        ID_HEADER: event_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signatures,
    }
    legacy = next((s for s in signing if s.legacy), None)
    if legacy is not None:
        headers[LEGACY_TIMESTAMP_HEADER] = str(timestamp)
        headers[LEGACY_SIGNATURE_HEADER] = legacy_signature(legacy.secret, timestamp, body)
    return headers
