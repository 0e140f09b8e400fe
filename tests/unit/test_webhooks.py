"""The pure parts of webhooks: Standard Webhooks signatures (checked by the off-the-shelf verifier), secrets
and their rotation and migration, the retry schedule, the URL check on literal addresses (and on
names through a resolver given in), event types, and the alert as the JSON body every attempt sends."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from standardwebhooks import Webhook, WebhookVerificationError

from core.settings import WebhookSettings
from features.alerts import ALERT_TYPES, Alert, Evidence, alert_id
from serving.webhooks.checks import RefusedUrl, UnresolvedHost, WebhookInputError, check_url, parse_events
from serving.webhooks.delivery import claim_size, retry_delay
from serving.webhooks.outbox import alert_payload
from serving.webhooks.signing import SigningSecret, new_secret, signed_headers, standard_secret

#: a Standard Webhooks secret: `whsec_` and base64 (of 32 bytes)
SECRET = "whsec_" + base64.b64encode(b"retain-unit-test-secret-32-bytes").decode()
OTHER = "whsec_" + base64.b64encode(b"another-unit-test-secret-32bytes").decode()
BODY = b'{"schema_version":1,"id":"al_1"}'
SIGNATURE = re.compile(r"v1,[A-Za-z0-9+/]{43}=")


def _headers(*signing: SigningSecret, event_id: str = "al_1", at: int | None = None) -> dict[str, str]:
    return signed_headers(signing, event_id, "usage_drop", BODY, int(time.time()) if at is None else at)


def test_a_delivery_is_signed_by_the_standard_webhooks_spec_and_the_library_verifies_it() -> None:
    headers = _headers(SigningSecret(SECRET))
    assert SIGNATURE.fullmatch(headers["webhook-signature"])
    assert Webhook(SECRET).verify(BODY, headers) == json.loads(BODY)
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(SECRET).verify(BODY.replace(b"al_1", b"al_2"), headers)
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(OTHER).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError, match="No matching signature"):  # the id is signed
        Webhook(SECRET).verify(BODY, {**headers, "webhook-id": "al_2"})
    with pytest.raises(WebhookVerificationError, match="No matching signature"):  # so is the time
        Webhook(SECRET).verify(BODY, {**headers, "webhook-timestamp": str(int(time.time()) - 1)})
    stale = _headers(SigningSecret(SECRET), at=int(time.time()) - 301)
    with pytest.raises(WebhookVerificationError, match="too old"):  # a replay, too late
        Webhook(SECRET).verify(BODY, stale)
    with pytest.raises(WebhookVerificationError, match="too new"):  # a clock far ahead
        Webhook(SECRET).verify(BODY, _headers(SigningSecret(SECRET), at=int(time.time()) + 301))


def test_the_webhook_id_is_the_events_id_the_idempotency_key_and_the_secret_is_never_sent() -> None:
    headers = _headers(SigningSecret(SECRET), at=1_760_000_000)
    assert headers["webhook-id"] == headers["Retain-Idempotency-Key"] == "al_1"
    assert headers["Retain-Event"] == "usage_drop" and headers["Content-Type"] == "application/json"
    assert headers["webhook-timestamp"] == "1760000000"
    assert headers == _headers(SigningSecret(SECRET), at=1_760_000_000), "an attempt again signs the same"
    assert "Retain-Signature" not in headers and "Retain-Timestamp" not in headers
    assert SECRET not in json.dumps(headers) and SECRET.removeprefix("whsec_") not in json.dumps(headers)
    with pytest.raises(ValueError, match="at least one live secret"):
        _headers()


def test_a_new_secret_is_whsec_and_the_base64_of_32_random_bytes() -> None:
    made = new_secret()
    assert (
        made.startswith("whsec_") and len(base64.b64decode(made.removeprefix("whsec_"), validate=True)) == 32
    )
    assert made != new_secret()
    assert Webhook(made).verify(BODY, _headers(SigningSecret(made))) == json.loads(BODY)


def test_during_a_rotation_each_live_secret_signs_and_either_alone_verifies() -> None:
    now = datetime.now(UTC)
    retiring = SigningSecret(OTHER, until=now + timedelta(hours=1))
    headers = _headers(SigningSecret(SECRET), retiring)
    signatures = headers["webhook-signature"].split(" ")
    assert len(signatures) == 2 and all(SIGNATURE.fullmatch(s) for s in signatures)
    assert Webhook(SECRET).verify(BODY, headers) == Webhook(OTHER).verify(BODY, headers) == json.loads(BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(BODY, headers)
    assert retiring.live(now) and not retiring.live(now + timedelta(hours=1))
    assert SigningSecret(SECRET).live(now + timedelta(days=10_000)), "the current secret has no end"


def test_a_secret_from_before_keeps_its_key_and_its_retain_signature() -> None:
    """A subscription made before Standard Webhooks: its secret keyed an HMAC of `timestamp.body` with the
    whole string; in the standard form it keeps that key, and `Retain-Signature` is made as before."""
    legacy = "whsec_" + secrets.token_urlsafe(32)
    converted = standard_secret(legacy)
    assert base64.b64decode(converted.removeprefix("whsec_"), validate=True) == legacy.encode()
    at = int(time.time())
    headers = _headers(SigningSecret(converted, legacy=True), at=at)
    before = hmac.new(legacy.encode(), f"{at}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert headers["Retain-Signature"] == f"v1={before}" and headers["Retain-Timestamp"] == str(at)
    assert Webhook(converted).verify(BODY, headers) == json.loads(BODY)


def test_the_readmes_receiver_snippet_verifies_what_retain_signs() -> None:
    """README.md's snippet runs as it is, given the request's `secret`, raw `body` and `headers`: it passes
    a delivery Retain signed and raises on a forged or stale one."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme[readme.index("## Connecting a playbook engine") :]
    snippet = section[section.index("```python\n") + 10 : section.index("```\n", section.index("```python"))]
    assert "Webhook(secret).verify(body, headers)" in snippet
    genuine = {"secret": SECRET, "body": BODY, "headers": _headers(SigningSecret(SECRET))}
    exec(snippet, dict(genuine))
    stale = {**genuine, "headers": _headers(SigningSecret(SECRET), at=int(time.time()) - 301)}
    for forged in ({**genuine, "body": BODY + b" "}, {**genuine, "secret": OTHER}, stale):
        with pytest.raises(WebhookVerificationError):
            exec(snippet, forged)


def test_the_backoff_doubles_from_the_base_up_to_the_cap() -> None:
    settings = WebhookSettings(backoff_seconds=5, backoff_cap_seconds=60)
    assert [retry_delay(n, settings) for n in range(1, 7)] == [5, 10, 20, 40, 60, 60]
    assert retry_delay(10_000, WebhookSettings()) == WebhookSettings().backoff_cap_seconds  # no overflow


def test_a_claim_is_no_larger_than_the_lease_can_send() -> None:
    assert claim_size(WebhookSettings(lease_seconds=60, timeout_seconds=10)) == 5
    assert claim_size(WebhookSettings(lease_seconds=2, timeout_seconds=1)) == 1
    with pytest.raises(ValidationError, match=r"lease_seconds .* must exceed timeout_seconds"):
        WebhookSettings(lease_seconds=5, timeout_seconds=10)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/hook", "only http and https URLs can be subscribed, not 'ftp'"),
        ("file:///etc/passwd", "only http and https URLs can be subscribed, not 'file'"),
        ("example.com/hook", "not 'no scheme'"),
        ("http://169.254.169.254/latest/meta-data", "169.254.169.254, a cloud metadata address"),
        ("http://169.254.10.1/", "169.254.10.1, a link-local address"),
        ("http://[fe80::1]/", "fe80::1, a link-local address"),
        ("http://[::ffff:169.254.169.254]/", "a cloud metadata address"),
        # IPv4 inside IPv6 (issue 51): compatible, NAT64, translated, 6to4 and local-use NAT64 spellings
        ("http://[::a9fe:a9fe]/", "::a9fe:a9fe, a cloud metadata address"),
        ("http://[64:ff9b::a9fe:a9fe]/", "64:ff9b::a9fe:a9fe, a cloud metadata address"),
        ("http://[::ffff:0:a9fe:a9fe]/", "a cloud metadata address"),
        ("http://[2002:a9fe:a9fe::1]/", "a cloud metadata address"),
        ("http://[64:ff9b:1::a9fe:a9fe]/", "a cloud metadata address"),
        ("http://[64:ff9b::a9fe:a01]/", "64:ff9b::a9fe:a01, a link-local address"),
        ("http://[fd00:ec2::254]/", "fd00:ec2::254, a cloud metadata address"),
        ("http://100.100.100.200/", "100.100.100.200, a cloud metadata address"),
        (
            "http://metadata.google.internal/computeMetadata/v1/",
            "metadata.google.internal is a cloud metadata",
        ),
        ("http://METADATA.google.internal./", "metadata.google.internal is a cloud metadata"),
        ("http:///hook", "no host"),
        ("http://[::1/hook", "not a URL"),
        ("http://127.0.0.1/a b", "whitespace or control characters"),
    ],
)
def test_urls_outside_http_or_at_link_local_and_metadata_addresses_are_refused(url: str, reason: str) -> None:
    with pytest.raises(RefusedUrl, match=re.escape(reason)) as refused:
        check_url(url, resolver=_no_lookup)
    assert str(refused.value).startswith("url: ") and refused.value.code == "refused_url"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "https://10.1.2.3/hook",
        "http://192.168.0.7/",
        "http://[::1]:9000/",
        "http://[64:ff9b::a00:102]/",
    ],
)
def test_loopback_and_private_addresses_are_allowed(url: str) -> None:
    check_url(url, resolver=_no_lookup)


def test_a_name_is_judged_by_every_address_it_resolves_to() -> None:
    check_url("https://engine.internal/hook", resolver=lambda host, port: ["10.0.0.5"])
    with pytest.raises(RefusedUrl, match=r"engine\.internal resolves to 169\.254\.169\.254"):
        check_url("https://engine.internal/hook", resolver=lambda host, port: ["10.0.0.5", "169.254.169.254"])


def test_a_password_in_a_refused_url_is_never_shown() -> None:
    with pytest.raises(RefusedUrl) as refused:
        check_url("http://user:hunter2@169.254.169.254/", resolver=_no_lookup)
    assert "hunter2" not in str(refused.value) and "user:***@" in str(refused.value)


def test_a_name_that_does_not_resolve_is_an_unresolved_host() -> None:
    with pytest.raises(UnresolvedHost, match="does not resolve"):
        check_url("http://no-such-host.invalid/hook")


def test_event_types_are_known_ones_or_all() -> None:
    assert parse_events(["risk_band_changed", " usage_drop", "usage_drop"]) == (
        "usage_drop",
        "risk_band_changed",
    )
    assert parse_events(["*", "usage_drop"]) == ("*",)
    with pytest.raises(WebhookInputError, match="events: unknown event type 'usage_dorp'") as unknown:
        parse_events(["usage_dorp", "usage_drop"])
    assert unknown.value.code == "unknown_event_type" and ", ".join(ALERT_TYPES) in str(unknown.value)
    with pytest.raises(WebhookInputError, match="events: no event types given"):
        parse_events([" ", ""])


def test_the_body_is_versioned_compact_json_in_a_fixed_order() -> None:
    at = datetime(2025, 11, 30, tzinfo=UTC)
    alert = Alert(
        alert_id("usage_drop", "acc-1", at),
        "usage_drop",
        "acc-1",
        at,
        "Active users fell 48% against the previous 30 days",
        (Evidence("active_users_30v30", -0.48, "Active users -48%"), Evidence("nps", float("nan"), "No NPS")),
        ("health_check_call", "in_app_nudge"),
    )
    body = alert_payload(alert, datetime(2025, 12, 1, 6, 0, tzinfo=UTC))
    document = json.loads(body)
    assert body == json.dumps(document, separators=(",", ":"))  # compact, in the order it was built
    assert list(document) == [
        "schema_version",
        "id",
        "type",
        "account_id",
        "at",
        "summary",
        "evidence",
        "actions",
        "recorded_at",
    ]
    assert document["schema_version"] == 1 and document["id"] == alert.id
    assert document["at"] == "2025-11-30T00:00:00+00:00"
    assert document["recorded_at"] == "2025-12-01T06:00:00+00:00"
    assert document["evidence"][1] == {"name": "nps", "value": None, "text": "No NPS"}  # NaN is not JSON
    assert document["actions"] == ["health_check_call", "in_app_nudge"]


def _no_lookup(host: str, port: int) -> list[str]:
    raise AssertionError(f"a literal address or a refused name needs no lookup, yet {host} was looked up")
