"""The pure parts of webhooks: signatures, the retry schedule, the URL check on literal addresses (and on
names through a resolver given in), event types, and the alert as the JSON body every attempt sends."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from features.alerts import ALERT_TYPES, Alert, Evidence, alert_id
from retain.core.settings import WebhookSettings
from serving.webhooks.checks import RefusedUrl, UnresolvedHost, WebhookInputError, check_url, parse_events
from serving.webhooks.delivery import claim_size, retry_delay
from serving.webhooks.outbox import alert_payload
from serving.webhooks.signing import new_secret, sign, signed_headers, verify_signature

SECRET = "whsec_test-secret"
NOW = 1_760_000_000
BODY = b'{"schema_version":1,"id":"al_1"}'


def test_a_signature_verifies_and_fails_for_another_body_secret_or_time() -> None:
    signature = sign(SECRET, NOW, BODY)
    assert re.fullmatch(r"v1=[0-9a-f]{64}", signature)
    assert verify_signature(SECRET, str(NOW), BODY, signature, now=NOW + 10)
    assert not verify_signature(SECRET, NOW, BODY.replace(b"al_1", b"al_2"), signature, now=NOW)
    assert not verify_signature("whsec_other", NOW, BODY, signature, now=NOW)
    assert not verify_signature(SECRET, NOW + 1, BODY, signature, now=NOW)  # the time is signed too
    assert not verify_signature(SECRET, NOW, BODY, signature, now=NOW + 301)  # a replay, too late
    assert not verify_signature(SECRET, NOW, BODY, signature, now=NOW - 301)  # a clock far ahead
    assert verify_signature(SECRET, NOW, BODY, signature, tolerance_seconds=600, now=NOW + 301)
    assert not verify_signature(SECRET, "soon", BODY, signature, now=NOW)
    assert not verify_signature(SECRET, NOW, BODY, "v1=é", now=NOW)  # not ASCII: refused, no TypeError


def test_the_readmes_receiver_snippet_verifies_what_retain_signs() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme[readme.index("## Connecting a playbook engine") :]
    snippet = section[section.index("```python\n") + 10 : section.index("```\n", section.index("```python"))]
    scope: dict[str, Any] = {}
    exec(snippet, scope)
    verify = scope["verify"]
    now = int(time.time())
    signature = sign(SECRET, now, BODY)
    assert verify(SECRET, str(now), BODY, signature)
    assert not verify(SECRET, str(now), BODY + b" ", signature)
    assert not verify(SECRET, str(now - 301), BODY, sign(SECRET, now - 301, BODY))


def test_headers_carry_the_alert_id_as_idempotency_key_and_sign_the_exact_body() -> None:
    headers = signed_headers(SECRET, "al_1", "usage_drop", BODY, NOW)
    assert headers["Retain-Idempotency-Key"] == "al_1" and headers["Retain-Event"] == "usage_drop"
    assert headers["Content-Type"] == "application/json" and headers["Retain-Timestamp"] == str(NOW)
    assert verify_signature(SECRET, headers["Retain-Timestamp"], BODY, headers["Retain-Signature"], now=NOW)
    assert SECRET not in json.dumps(headers)
    assert new_secret().startswith("whsec_") and len(new_secret()) == len("whsec_") + 43
    assert new_secret() != new_secret()


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
