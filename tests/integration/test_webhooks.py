"""Webhooks end to end: a real receiver on 127.0.0.1 (an `http.server` thread, or the example receiver
docs/examples/webhook_receiver.py as a process) that verifies with the off-the-shelf Standard Webhooks
library, the outbox on SQLite and a real PostgreSQL, secret rotation and the migration of a subscription
from before, the CLI, a `retain webhooks deliver` killed mid-delivery, and a real `retain serve` that
manages subscriptions over its API and delivers by itself."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from standardwebhooks import Webhook

from core.settings import Settings, WebhookSettings
from core.urls import sqlalchemy_url
from features.alerts import Alert, Evidence, alert_id
from retain.cli import main
from serving.keys import KeyFile
from serving.webhooks.checks import WebhookInputError
from serving.webhooks.delivery import DeliveryRound, DeliveryWorker, deliver_once
from serving.webhooks.outbox import (
    FailedDelivery,
    Outbox,
    RecordedAlerts,
    Retried,
    UnknownWebhook,
    alert_payload,
)
from serving.webhooks.signing import SigningSecret, new_secret, signed_headers, standard_secret
from store import log_migrations
from store.decision_log import ALERTS, DELIVERIES, WEBHOOKS, DecisionLog
from store.delta import Store
from tests.support.receivers import Received, Receiver
from tests.support.served import Server, free_port, wait_for

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "webhook_receiver.py"
AT = datetime(2025, 11, 30, tzinfo=UTC)
#: retries in tenths of a second, so a test waits for nothing
QUICK = WebhookSettings(
    max_attempts=5,
    backoff_seconds=0.05,
    backoff_cap_seconds=1,
    lease_seconds=2,
    timeout_seconds=1,
    poll_seconds=0.02,
)
#: the same pace for a `retain` process; a lease long enough that a held request is killed inside it
QUICK_ENV = {
    "RETAIN_WEBHOOKS__POLL_SECONDS": "0.1",
    "RETAIN_WEBHOOKS__BACKOFF_SECONDS": "0.1",
    "RETAIN_WEBHOOKS__LEASE_SECONDS": "4",
    "RETAIN_WEBHOOKS__TIMEOUT_SECONDS": "3",
}
REFUSED = [
    ("ftp://example.com/hook", "only http and https URLs can be subscribed, not 'ftp'"),
    ("file:///etc/passwd", "only http and https URLs can be subscribed, not 'file'"),
    ("http://169.254.169.254/latest/meta-data", "169.254.169.254, a cloud metadata address"),
    ("http://[fe80::1]/", "fe80::1, a link-local address"),
    ("http://metadata.google.internal/computeMetadata/v1/", "metadata.google.internal is a cloud metadata"),
]


def alerts(n: int, type_: str = "usage_drop") -> list[Alert]:
    return [
        Alert(
            alert_id(type_, f"acc-{i}", AT),
            type_,
            f"acc-{i}",
            AT,
            f"Active users at acc-{i} fell 40% against the previous 30 days",
            (Evidence("active_users_30v30", -0.4, "Active users -40%"),),
            ("health_check_call",),
        )
        for i in range(n)
    ]


def deliveries(outbox: Outbox) -> dict[str, tuple[str, int]]:
    """Each alert's delivery status and attempts, as the outbox table holds them (one subscription)."""
    d = DELIVERIES.c
    with outbox.log.connect() as conn:
        rows = conn.execute(sa.select(d.alert_id, d.status, d.attempts)).all()
    return {alert: (status, attempts) for alert, status, attempts in rows}


class ExampleReceiver:
    """docs/examples/webhook_receiver.py as a process; the JSON lines it prints are what it did."""

    def __init__(self, secret: str, out: Path, port: int = 0) -> None:
        self.out = out
        self.process = subprocess.Popen(
            [sys.executable, str(EXAMPLE), "--port", str(port)],
            env={**os.environ, "WEBHOOK_SECRET": secret},
            stdout=out.open("w"),
            stderr=subprocess.STDOUT,
        )
        listening = wait_for(lambda: self.lines() and self.lines()[0].get("listening"), 20)
        assert listening, out.read_text()
        self.url = f"{listening}/hook"

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.out.read_text().splitlines() if line.startswith("{")]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture
def receivers() -> Iterator[Callable[..., Receiver]]:
    made: list[Receiver] = []

    def receiver(**behaviour: Any) -> Receiver:
        made.append(Receiver(**behaviour))
        return made[-1]

    yield receiver
    for each in made:
        each.close()


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    log = DecisionLog(f"sqlite:///{tmp_path}/decisions.db")
    yield Outbox(log)
    log.close()


@pytest.fixture
def outbox_on(database_url: str) -> Iterator[Outbox]:
    """The outbox on SQLite, and on a real PostgreSQL."""
    log = DecisionLog(database_url)
    yield Outbox(log)
    log.close()


# -- delivery -------------------------------------------------------------------------------------------


def test_deliveries_are_signed_and_a_tampered_body_or_an_old_timestamp_fails(
    outbox: Outbox, receivers: Callable[..., Receiver]
) -> None:
    receiver = receivers()
    added = outbox.add(receiver.url, ["usage_drop"])
    (alert,) = alerts(1)
    outbox.record([alert])
    assert deliver_once(outbox, QUICK) == DeliveryRound(sent=1)

    (got,) = receiver.received
    assert (got.key, got.event, got.content_type) == (alert.id, "usage_drop", "application/json")
    assert got.header("Retain-Idempotency-Key") == alert.id, "webhook-id is the idempotency key"
    body = json.loads(got.body)
    assert body["schema_version"] == 1 and body["id"] == alert.id and body["account_id"] == "acc-0"
    assert abs(int(got.header("webhook-timestamp") or 0) - time.time()) < 60
    assert Webhook(added.secret).verify(got.body, got.headers) == body
    assert got.verifies(added.secret)
    assert not got.verifies(outbox.add(receiver.url, ["usage_drop"]).secret)
    tampered = dataclasses.replace(got, body=got.body.replace(b"acc-0", b"acc-1"))
    assert not tampered.verifies(added.secret)
    late = {**got.headers, "webhook-timestamp": str(int(time.time()) - 301)}
    assert not dataclasses.replace(got, headers=late).verifies(added.secret)
    assert got.header("Retain-Signature") is None and got.header("Retain-Timestamp") is None


def test_a_receiver_failing_three_times_gets_the_alert_once_with_one_idempotency_key(
    outbox: Outbox, receivers: Callable[..., Receiver]
) -> None:
    receiver = receivers(failures=3)
    added = outbox.add(receiver.url, ["*"])
    (alert,) = alerts(1)
    outbox.record([alert])
    worker = DeliveryWorker(outbox, QUICK)
    worker.start()
    try:
        assert wait_for(lambda: deliveries(outbox) == {alert.id: ("delivered", 4)}, 20), deliveries(outbox)
    finally:
        worker.stop()

    assert [r.key for r in receiver.received] == [alert.id] * 4 and receiver.applied == [alert.id]
    assert all(r.verifies(added.secret) for r in receiver.received)
    assert len({r.body for r in receiver.received}) == 1, "every attempt sends the same bytes"
    waits = [later.at - earlier.at for earlier, later in pairwise(receiver.received)]
    assert all(w >= 0.9 * delay for w, delay in zip(waits, (0.05, 0.1, 0.2), strict=True)), waits


def test_a_receiver_that_always_fails_ends_in_the_dead_letters_and_retry_sends_it_again(
    outbox_on: Outbox, receivers: Callable[..., Receiver]
) -> None:
    receiver = receivers()
    receiver.down = True
    added = outbox_on.add(receiver.url, ["usage_drop"])
    (alert,) = alerts(1)
    outbox_on.record([alert])
    settings = QUICK.model_copy(update={"backoff_seconds": 0, "max_attempts": 3})
    assert deliver_once(outbox_on, settings) == DeliveryRound(failed=2, dead=1)
    webhook_id = added.webhook.webhook_id
    dead = FailedDelivery(
        alert.id, "usage_drop", "acc-0", webhook_id, receiver.url, 3, "HTTP 500 Internal Server Error"
    )
    assert outbox_on.failed() == [dead] and len(receiver.received) == 3
    assert [(w.pending, w.dead) for w in outbox_on.webhooks()] == [(0, 1)]
    assert deliver_once(outbox_on, settings) == DeliveryRound(), "a dead delivery waits for a retry"

    receiver.down = False
    assert outbox_on.retry(alert_id=alert.id) == Retried(1)
    assert deliver_once(outbox_on, settings) == DeliveryRound(sent=1)
    assert outbox_on.failed() == [] and receiver.applied == [alert.id]
    assert deliveries(outbox_on) == {alert.id: ("delivered", 1)}
    assert outbox_on.retry(every=True) == Retried(0)


def test_a_url_refused_when_delivering_makes_its_delivery_dead_at_once_with_the_reason(
    outbox: Outbox, receivers: Callable[..., Receiver]
) -> None:
    """The URL is checked again before each delivery: DNS may have come to point it at a metadata
    address since it was subscribed (here the stored URL is changed to one, as DNS would change it)."""
    receiver = receivers()
    added = outbox.add(receiver.url, ["usage_drop"])
    with outbox.log.connect(write=True) as conn:
        moved = WEBHOOKS.update().where(WEBHOOKS.c.webhook_id == added.webhook.webhook_id)
        conn.execute(moved.values(url="http://169.254.169.254/latest/meta-data"))
    (alert,) = alerts(1)
    outbox.record([alert])
    assert deliver_once(outbox, QUICK) == DeliveryRound(dead=1)
    (dead,) = outbox.failed()
    assert dead.attempts == 1 and dead.last_error is not None
    assert "169.254.169.254, a cloud metadata address" in dead.last_error
    assert receiver.received == []


# -- rotating a secret, and a subscription from before Standard Webhooks -------------------------------


def _wait_past(moment: datetime | None) -> None:
    assert moment is not None
    time.sleep(max(0.0, (moment - datetime.now(UTC)).total_seconds()) + 0.05)


def test_during_a_rotations_overlap_the_old_and_the_new_secret_each_verify_and_after_it_only_the_new(
    outbox_on: Outbox, receivers: Callable[..., Receiver]
) -> None:
    receiver = receivers()
    added = outbox_on.add(receiver.url, ["usage_drop"])
    old, webhook_id = added.secret, added.webhook.webhook_id
    first, second, third = alerts(3)
    rotated = outbox_on.rotate(webhook_id, overlap_seconds=2.0)
    new = rotated.secret
    assert new != old and rotated.webhook.webhook_id == webhook_id
    assert rotated.previous_until is not None
    assert abs((rotated.previous_until - datetime.now(UTC)).total_seconds() - 2.0) < 1.0

    receiver.secret = old  # a receiver that holds only the old secret takes it
    outbox_on.record([first])
    assert deliver_once(outbox_on, QUICK) == DeliveryRound(sent=1)
    during = receiver.received[-1]
    assert len(during.header("webhook-signature").split(" ")) == 2  # type: ignore[union-attr]
    assert during.verifies(old) and during.verifies(new), "a receiver holding either secret verifies"
    assert not during.verifies(new_secret())

    _wait_past(rotated.previous_until)
    outbox_on.record([second])
    assert deliver_once(outbox_on, QUICK) == DeliveryRound(failed=1), "the old secret signs no more"
    after = receiver.received[-1]
    assert after.key == second.id and after.verifies(new) and not after.verifies(old)
    assert len(after.header("webhook-signature").split(" ")) == 1  # type: ignore[union-attr]

    receiver.secret = new  # the receiver moves to the new secret: the same delivery, retried, is taken
    outbox_on.record([third])
    time.sleep(QUICK.backoff_seconds * 2)  # the refused delivery is due again
    assert deliver_once(outbox_on, QUICK) == DeliveryRound(sent=2)
    assert sorted(receiver.applied) == sorted([first.id, second.id, third.id])


def test_a_rotation_with_no_overlap_drops_the_old_secret_at_once_and_ends_earlier_overlaps(
    outbox: Outbox, receivers: Callable[..., Receiver]
) -> None:
    receiver = receivers()
    added = outbox.add(receiver.url, ["usage_drop"])
    webhook_id = added.webhook.webhook_id
    second = outbox.rotate(webhook_id, overlap_seconds=3600)
    leaked = outbox.rotate(webhook_id, overlap_seconds=0)  # the second secret leaked: drop every other
    assert leaked.previous_until is None
    outbox.record(alerts(1))
    assert deliver_once(outbox, QUICK) == DeliveryRound(sent=1)
    (got,) = receiver.received
    assert got.verifies(leaked.secret)
    assert not got.verifies(second.secret) and not got.verifies(added.secret)
    assert got.header("webhook-signature").count("v1,") == 1  # type: ignore[union-attr]

    with pytest.raises(UnknownWebhook, match="no webhook with id 'wh_000000000000'"):
        outbox.rotate("wh_000000000000", 60)
    with pytest.raises(WebhookInputError, match="overlap_seconds: the overlap is 0 to") as refused:
        outbox.rotate(webhook_id, -1)
    assert refused.value.code == "invalid_overlap"
    outbox.remove(webhook_id)
    with pytest.raises(UnknownWebhook):
        outbox.rotate(webhook_id, 60)


def test_a_subscription_from_before_keeps_its_secret_and_retain_signature_until_rotated(
    tmp_path: Path, receivers: Callable[..., Receiver]
) -> None:
    """A decision log at revision 0007 with a subscription and its secret of the earlier kind: after the
    upgrade its receiver still verifies `Retain-Signature` as before, and the Standard Webhooks library
    verifies with the secret's standard form, which the receiver derives itself; a rotation ends both."""
    receiver = receivers()
    url = f"sqlite:///{tmp_path}/decisions.db"
    legacy = "whsec_" + secrets.token_urlsafe(32)  # a secret as the earlier release made them
    engine = sa.create_engine(sqlalchemy_url(url))
    with engine.begin() as conn:
        log_migrations.upgrade_to(conn, "0007")
        row = {"webhook_id": "wh_0ld0ld0ld0ld", "url": receiver.url, "events": "*", "secret": legacy}
        columns = ", ".join(row)
        conn.execute(
            sa.text(f"INSERT INTO webhooks ({columns}, created_at) VALUES (:{', :'.join(row)}, :at)"),
            {**row, "at": datetime(2025, 1, 1, tzinfo=UTC)},
        )
    engine.dispose()
    log = DecisionLog(url)
    outbox = Outbox(log)
    first, second, third = alerts(3)
    outbox.record([first])
    assert deliver_once(outbox, QUICK) == DeliveryRound(sent=1)
    (got,) = receiver.received
    assert _verifies_as_before(legacy, got) and got.verifies(standard_secret(legacy))
    assert standard_secret(legacy) == "whsec_" + base64.b64encode(legacy.encode()).decode()

    rotated = outbox.rotate("wh_0ld0ld0ld0ld", overlap_seconds=2.0)
    outbox.record([second])
    assert deliver_once(outbox, QUICK) == DeliveryRound(sent=1)
    during = receiver.received[-1]
    assert _verifies_as_before(legacy, during), "the old receiver keeps working through the overlap"
    assert during.verifies(rotated.secret) and during.verifies(standard_secret(legacy))

    _wait_past(rotated.previous_until)
    outbox.record([third])
    assert deliver_once(outbox, QUICK) == DeliveryRound(sent=1)
    after = receiver.received[-1]
    assert after.header("Retain-Signature") is None and after.header("Retain-Timestamp") is None
    assert after.verifies(rotated.secret) and not after.verifies(standard_secret(legacy))
    log.close()


def _verifies_as_before(secret: str, got: Received) -> bool:
    """The check a receiver of the earlier release made: `Retain-Signature` is `v1=` and the hex HMAC-SHA256,
    keyed with the whole secret, of `Retain-Timestamp`, a dot and the body."""
    timestamp, signature = got.header("Retain-Timestamp"), got.header("Retain-Signature")
    if timestamp is None or signature is None:
        return False
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + got.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(f"v1={digest}", signature) and abs(time.time() - int(timestamp)) <= 300


def test_a_worker_killed_mid_delivery_resends_after_its_lease_and_the_receiver_applies_once(
    tmp_path: Path, receivers: Callable[..., Receiver]
) -> None:
    store = tmp_path / "store"
    log = DecisionLog.for_store(Store(store), Settings(home=store))
    outbox = Outbox(log)
    receiver = receivers(hold=5.0)
    added = outbox.add(receiver.url, ["*"])
    sent = alerts(2)
    outbox.record(sent)
    command = [sys.executable, "-m", "retain", "webhooks", "deliver", "--store", str(store)]
    printed = tmp_path / "worker.log"
    with printed.open("w") as out:
        first = subprocess.Popen(
            command, env={**os.environ, **QUICK_ENV}, stdout=out, stderr=subprocess.STDOUT
        )
        assert receiver.first.wait(60), printed.read_text()
        first.kill()  # SIGKILL while the receiver holds the request: no cleanup, the claim stays
        first.wait()
        held = receiver.received[0].key
        with log.connect() as conn:
            lease = conn.execute(
                sa.select(DELIVERIES.c.claimed_until).where(DELIVERIES.c.alert_id == held)
            ).scalar()
        assert lease is not None and lease > datetime.now(UTC), "the killed worker's lease still holds"

        second = subprocess.Popen(
            command, env={**os.environ, **QUICK_ENV}, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            everything = {a.id: "delivered" for a in sent}
            done = wait_for(lambda: {k: s for k, (s, _) in deliveries(outbox).items()} == everything, 60)
            assert done, deliveries(outbox)
        finally:
            second.terminate()
            second.wait(timeout=30)
    log.close()

    keys = [r.key for r in receiver.received]
    assert keys.count(held) == 2 and sorted(set(keys)) == sorted(everything), keys
    assert sorted(receiver.applied) == sorted(everything), "each alert applied once"
    again = [r for r in receiver.received if r.key == held][1]
    assert again.at >= lease.timestamp() - 0.5, "not sent again while the lease held"
    assert added.secret not in printed.read_text()


def test_recording_twice_records_nothing_twice_and_what_was_recorded_before_any_worker_ran_is_delivered(
    database_url: str, receivers: Callable[..., Receiver]
) -> None:
    receiver = receivers()
    recorder = DecisionLog(database_url)
    outbox = Outbox(recorder)
    outbox.add(receiver.url, ["usage_drop"])
    outbox.add(receiver.url, ["error_spike"])
    made = [*alerts(3), *alerts(1, "champion_changed")]
    assert outbox.record(made) == RecordedAlerts(new=4, known=0, deliveries=3)
    assert outbox.record([*made, made[0]]) == RecordedAlerts(new=0, known=4, deliveries=0)
    recorder.close()  # the recording process ends before any worker ran: the deliveries are in the table

    worker = DecisionLog(database_url)
    later = Outbox(worker)
    assert deliver_once(later, QUICK) == DeliveryRound(sent=3)
    assert sorted(receiver.applied) == sorted(a.id for a in made[:3])
    assert later.record(made) == RecordedAlerts(new=0, known=4, deliveries=0)
    assert deliver_once(later, QUICK) == DeliveryRound()
    with worker.connect() as conn:
        counts = [
            conn.execute(sa.select(sa.func.count()).select_from(t)).scalar() for t in (ALERTS, DELIVERIES)
        ]
    assert counts == [4, 3] and len(receiver.received) == 3
    worker.close()


# -- the CLI ---------------------------------------------------------------------------------------------


@pytest.fixture
def retain(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., tuple[int, str, str]]:
    """`retain ARGS` through its entry point: the exit code, stdout and stderr."""

    def run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["retain", *args])
        with pytest.raises(SystemExit) as exit_:
            main()
        captured = capsys.readouterr()
        return int(exit_.value.code or 0), captured.out, captured.err

    return run


def test_the_cli_refuses_bad_urls_and_types_with_exit_2_and_never_lists_the_secret(
    tmp_path: Path, retain: Callable[..., tuple[int, str, str]]
) -> None:
    store = ["--store", str(tmp_path / "store")]
    for url, reason in REFUSED:
        code, out, err = retain("webhooks", "add", url, "--events", "usage_drop", *store)
        assert code == 2 and out == "" and "error: url: " in err and reason in err, (url, err)
    code, _, err = retain("webhooks", "add", "http://127.0.0.1:9/hook", "--events", "usage_dorp", *store)
    assert code == 2 and "events: unknown event type 'usage_dorp'" in err

    code, out, _ = retain(
        "webhooks", "add", "http://127.0.0.1:9/hook", "--events", "risk_band_changed,usage_drop", *store
    )
    *summary, secret = out.strip().splitlines()
    assert code == 0 and secret.startswith("whsec_") and "will not be shown again" in " ".join(summary)
    webhook_id = re.search(r"webhook (wh_[0-9a-f]{12})", summary[0]).group(1)  # type: ignore[union-attr]
    for command in (["list"], ["list", "--json"], ["failed"], ["retry", "--all"], ["deliver", "--once"]):
        code, out, err = retain("webhooks", *command, *store)
        assert code == 0 and secret not in out + err, command
    (listed,) = json.loads(retain("webhooks", "list", "--json", *store)[1])
    assert {k: v for k, v in listed.items() if k != "created_at"} == {
        "webhook_id": webhook_id,
        "url": "http://127.0.0.1:9/hook",
        "events": ["usage_drop", "risk_band_changed"],
        "pending": 0,
        "dead": 0,
    }
    code, _, err = retain("webhooks", "retry", *store)
    assert code == 2 and "say which dead deliveries to retry" in err

    code, out, _ = retain("webhooks", "rotate", webhook_id, "--overlap", "60", *store)
    *summary, rotated = out.strip().splitlines()
    assert code == 0 and rotated.startswith("whsec_") and rotated != secret
    assert "still signs beside it until" in " ".join(summary) and "will not be shown again" in " ".join(
        summary
    )
    code, out, _ = retain("webhooks", "rotate", webhook_id, "--overlap", "0", "--json", *store)
    *shown, last = out.strip().splitlines()
    assert (
        code == 0 and json.loads("\n".join(shown))["previous_until"] is None and last not in (secret, rotated)
    )
    listed_now = retain("webhooks", "list", "--json", *store)[1]
    assert not {secret, rotated, last} & set(re.findall(r"whsec_\S+", listed_now))
    code, _, err = retain("webhooks", "rotate", "wh_000000000000", *store)
    assert code == 2 and "no webhook with id 'wh_000000000000'" in err
    assert retain("webhooks", "remove", webhook_id, *store)[0] == 0
    code, _, err = retain("webhooks", "remove", webhook_id, *store)
    assert code == 2 and f"no webhook with id '{webhook_id}'" in err


# -- the example receiver --------------------------------------------------------------------------------


def test_the_example_receiver_verifies_signatures_refuses_replays_and_applies_each_key_once(
    tmp_path: Path,
) -> None:
    secret = new_secret()
    receiver = ExampleReceiver(secret, tmp_path / "receiver.out")
    body = alert_payload(alerts(1)[0], datetime.now(UTC)).encode()
    now = int(time.time())

    def post(key: str, sent: bytes, *signed_with: str, at: int = now) -> int:
        signing = [SigningSecret(s) for s in signed_with or (secret,)]
        headers = signed_headers(signing, key, "usage_drop", body, at)
        return requests.post(receiver.url, data=sent, headers=headers, timeout=10).status_code

    try:
        answers = [
            post("al_1", body),
            post("al_1", body),
            post("al_2", body.replace(b"acc-0", b"acc-1")),
            post("al_3", body, at=now - 301),
            post("al_4", body, new_secret()),
            post("al_5", body, new_secret(), secret),  # during a rotation: signed with two secrets
        ]
    finally:
        receiver.stop()
    assert answers == [200, 200, 401, 401, 401, 200]
    assert [(line["key"], line["outcome"]) for line in receiver.lines()[1:]] == [
        ("al_1", "applied"),
        ("al_1", "duplicate"),
        ("al_2", "refused: No matching signature found"),
        ("al_3", "refused: Message timestamp too old"),
        ("al_4", "refused: No matching signature found"),
        ("al_5", "applied"),
    ]


# -- the API, over a real `retain serve` -----------------------------------------------------------------


@dataclass(frozen=True)
class BareStore:
    """A store with API keys and nothing else: webhooks need no model."""

    store: Store
    keys: dict[str, str]


@pytest.fixture(scope="module")
def served_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("webhooks-served")
    (root / "logs").mkdir()
    return root


@pytest.fixture(scope="module")
def served(served_root: Path) -> Iterator[Server]:
    """`retain serve` over a store without models, its decision log in a folder a test may take away."""
    store = Store(served_root / "store")
    ring = KeyFile.for_store(store)
    keys = {scope: ring.create([scope], name=scope)[1] for scope in ("admin", "scores:read")}
    log_url = {"RETAIN_SERVE__DECISION_LOG_URL": f"sqlite:///{served_root}/logs/decisions.db"}
    server = Server(BareStore(store, keys), served_root / "serve.log", date.today(), **log_url, **QUICK_ENV)
    yield server
    server.stop()


ENDPOINTS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/v1/webhooks", None),
    ("POST", "/v1/webhooks", {"url": "http://127.0.0.1:9/hook", "events": ["usage_drop"]}),
    ("DELETE", "/v1/webhooks/wh_000000000000", None),
    ("POST", "/v1/webhooks/wh_000000000000/rotate", {"overlap_seconds": 60}),
    ("GET", "/v1/webhooks/failed", None),
    ("POST", "/v1/webhooks/retry", {"all": True}),
]


def test_the_webhook_api_needs_an_admin_key(served: Server) -> None:
    for method, path, body in ENDPOINTS:
        assert served.call(method, path, key=None, json=body).status_code == 401, path
        denied = served.call(method, path, key="scores:read", json=body)
        assert denied.status_code == 403 and denied.json()["error"]["code"] == "forbidden", path


def test_webhooks_are_created_listed_and_deleted_over_the_api_and_the_secret_is_shown_once(
    served: Server,
) -> None:
    created = served.call(
        "POST", "/v1/webhooks", json={"url": "http://127.0.0.1:9/a", "events": ["usage_drop"]}
    )
    assert created.status_code == 201, created.text
    body = created.json()
    webhook_id, secret = body["webhook_id"], body["secret"]
    assert secret.startswith("whsec_") and body["events"] == ["usage_drop"] and body["api_version"] == "v1"

    listed = served.call("GET", "/v1/webhooks")
    assert listed.status_code == 200 and secret not in listed.text
    (mine,) = [w for w in listed.json()["webhooks"] if w["webhook_id"] == webhook_id]
    assert mine == {k: body[k] for k in ("webhook_id", "url", "events", "created_at", "pending", "dead")}
    assert served.call("GET", "/v1/webhooks/failed").json()["deliveries"] == []

    deleted = served.call("DELETE", f"/v1/webhooks/{webhook_id}")
    assert deleted.status_code == 200 and deleted.json()["webhook_id"] == webhook_id
    assert webhook_id not in served.call("GET", "/v1/webhooks").text
    again = served.call("DELETE", f"/v1/webhooks/{webhook_id}")
    assert again.status_code == 404 and again.json()["error"]["code"] == "webhook_not_found"
    assert secret not in served.log.read_text()


def test_a_secret_is_rotated_over_the_api_and_the_new_one_is_shown_once(served: Server) -> None:
    created = served.call(
        "POST", "/v1/webhooks", json={"url": "http://127.0.0.1:9/r", "events": ["usage_drop"]}
    ).json()
    path = f"/v1/webhooks/{created['webhook_id']}/rotate"
    rotated = served.call("POST", path, json={"overlap_seconds": 600})
    assert rotated.status_code == 200, rotated.text
    body = rotated.json()
    assert body["webhook_id"] == created["webhook_id"] and body["secret"].startswith("whsec_")
    assert body["secret"] != created["secret"]
    until = datetime.fromisoformat(body["previous_until"]) - datetime.now(UTC)
    assert timedelta(seconds=590) < until <= timedelta(seconds=600)
    default = served.call("POST", path).json()  # no body: the configured overlap, a day
    assert datetime.fromisoformat(default["previous_until"]) - datetime.now(UTC) > timedelta(hours=23)
    dropped = served.call("POST", path, json={"overlap_seconds": 0}).json()
    assert dropped["previous_until"] is None
    shown = {created["secret"], body["secret"], default["secret"], dropped["secret"]}
    assert len(shown) == 4 and not any(s in served.call("GET", "/v1/webhooks").text for s in shown)
    assert not any(s in served.log.read_text() for s in shown)

    refused = served.call("POST", path, json={"overlap_seconds": -1})
    assert (
        refused.status_code == 422 and refused.json()["error"]["fields"][0]["field"] == "body.overlap_seconds"
    )
    served.call("DELETE", f"/v1/webhooks/{created['webhook_id']}")
    gone = served.call("POST", path, json={})
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "webhook_not_found"


@pytest.mark.parametrize(
    ("path", "body", "field", "code"),
    [
        *[
            ("/v1/webhooks", {"url": url, "events": ["usage_drop"]}, "body.url", "refused_url")
            for url, _ in REFUSED
        ],
        (
            "/v1/webhooks",
            {"url": "http://127.0.0.1:9/", "events": ["usage_dorp"]},
            "body.events",
            "unknown_event_type",
        ),
        ("/v1/webhooks", {"url": "http://127.0.0.1:9/", "events": []}, "body.events", "invalid_request"),
        ("/v1/webhooks/retry", {}, "body.all", "invalid_retry"),
    ],
)
def test_the_api_refuses_a_bad_url_or_event_type_naming_the_field(
    served: Server, path: str, body: dict[str, Any], field: str, code: str
) -> None:
    answer = served.call("POST", path, json=body)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == code and error["fields"][0]["field"] == field, error


def test_retain_serve_delivers_a_recorded_alert_to_the_example_receiver_by_itself(
    served: Server, served_root: Path, tmp_path: Path
) -> None:
    port = free_port()
    body = {"url": f"http://127.0.0.1:{port}/hook", "events": ["risk_band_changed"]}
    created = served.call("POST", "/v1/webhooks", json=body).json()
    receiver = ExampleReceiver(created["secret"], tmp_path / "receiver.out", port)
    try:
        log = DecisionLog(f"sqlite:///{served_root}/logs/decisions.db")
        (alert,) = alerts(1, "risk_band_changed")
        assert Outbox(log).record([alert]) == RecordedAlerts(new=1, known=0, deliveries=1)
        log.close()
        applied = wait_for(lambda: [line for line in receiver.lines() if line.get("key") == alert.id], 30)
    finally:
        receiver.stop()
    assert applied == [{"key": alert.id, "status": 200, "outcome": "applied"}]
    printed = served.log.read_text()
    assert f"webhook {created['webhook_id']}: alert {alert.id} delivered" in printed
    assert created["secret"] not in printed
    served.call("DELETE", f"/v1/webhooks/{created['webhook_id']}")


def test_a_decision_log_outage_is_a_503_with_the_reason_never_a_500(
    served: Server, served_root: Path
) -> None:
    logs = served_root / "logs"
    logs.rename(served_root / "away")
    try:
        for method, path, body in ENDPOINTS:
            answer = served.call(method, path, json=body)
            assert answer.status_code == 503, (path, answer.text)
            assert answer.json()["error"]["code"] == "decision_log_unavailable"
    finally:
        (served_root / "away").rename(logs)
    assert wait_for(lambda: served.call("GET", "/v1/webhooks").status_code == 200, 10)
