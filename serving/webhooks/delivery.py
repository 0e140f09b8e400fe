"""The delivery worker: it claims due deliveries under a lease, POSTs each alert signed by the Standard
Webhooks spec with each of its webhook's live secrets, and settles it: delivered on a 2xx; otherwise
tried again after a wait that doubles from `backoff_seconds` up to `backoff_cap_seconds`, and dead after
`max_attempts` failures. A URL that has come to resolve to a refused address is dead at once, with the
reason. `retain serve` runs one in a thread beside the API; `retain webhooks deliver` runs one on its own
or for a cron (`--once`). Several may run against one database: the lease keeps them from sending a
delivery twice at once.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import requests

from core.settings import Settings, WebhookSettings
from serving.outage import Outage
from serving.webhooks.checks import RefusedUrl, UnresolvedHost, check_url
from serving.webhooks.outbox import Claim, Outbox
from serving.webhooks.signing import signed_headers
from store.decision_log import DecisionLog, DecisionLogUnavailable
from store.delta import Store

log = logging.getLogger("retain.webhooks")
#: the largest power of two the backoff takes, so a large `max_attempts` cannot overflow a float
MAX_DOUBLINGS = 60


@dataclass(frozen=True)
class DeliveryRound:
    """What one round did: deliveries taken by their receiver, failed and due again later, failed for good."""

    sent: int = 0
    failed: int = 0
    dead: int = 0


@dataclass(frozen=True)
class _Failure:
    error: str
    #: no later attempt can succeed (a refused URL)
    permanent: bool = False


def retry_delay(failures: int, settings: WebhookSettings) -> float:
    """Seconds from the `failures`-th failed attempt to the next: the base, doubled after each further
    failure, capped."""
    doublings = min(max(failures - 1, 0), MAX_DOUBLINGS)
    return float(min(settings.backoff_cap_seconds, settings.backoff_seconds * 2**doublings))


def claim_size(settings: WebhookSettings) -> int:
    """Deliveries claimed at once: as many as can be sent one after another, each taking up to the
    timeout, with a timeout's time left on the lease, so none is still unsent when its lease runs out."""
    return max(1, int(settings.lease_seconds // settings.timeout_seconds) - 1)


def deliver_once(outbox: Outbox, settings: WebhookSettings) -> DeliveryRound:
    """Send every delivery due now (and any that fall due while this round runs), in claimed batches."""
    done = DeliveryRound()
    while claims := outbox.claim(datetime.now(UTC), settings.lease_seconds, claim_size(settings)):
        for claim in claims:
            done = _attempt(outbox, claim, settings, done)
    return done


def _attempt(outbox: Outbox, claim: Claim, settings: WebhookSettings, done: DeliveryRound) -> DeliveryRound:
    """Send one claimed delivery and settle it; `done` with its outcome counted."""
    failure = _send(claim, settings.timeout_seconds)
    now = datetime.now(UTC)
    if failure is None:
        outbox.delivered(claim, now)
        log.info("webhook %s: alert %s delivered", claim.webhook_id, claim.alert_id)
        return DeliveryRound(done.sent + 1, done.failed, done.dead)
    failures = claim.attempts + 1
    if failure.permanent or failures >= settings.max_attempts:
        outbox.failed_attempt(claim, failure.error, now, None)
        log.warning(
            "webhook %s: alert %s is dead after %d attempt(s) (%s); `retain webhooks retry` sends it again",
            claim.webhook_id,
            claim.alert_id,
            failures,
            failure.error,
        )
        return DeliveryRound(done.sent, done.failed, done.dead + 1)
    delay = retry_delay(failures, settings)
    outbox.failed_attempt(claim, failure.error, now, now + timedelta(seconds=delay))
    log.warning(
        "webhook %s: alert %s not delivered (%s); attempt %d of %d, the next in %.3g s",
        claim.webhook_id,
        claim.alert_id,
        failure.error,
        failures,
        settings.max_attempts,
        delay,
    )
    return DeliveryRound(done.sent, done.failed + 1, done.dead)


def _send(claim: Claim, timeout: float) -> _Failure | None:
    """POST the alert, signed now; None when the receiver answered 2xx. Redirects are not followed: one
    could lead to an address the URL check refuses."""
    try:
        check_url(claim.url)
    except RefusedUrl as e:
        return _Failure(str(e), permanent=True)
    except UnresolvedHost as e:
        return _Failure(str(e))
    body, now = claim.payload.encode(), time.time()
    signing = claim.signing(datetime.fromtimestamp(now, UTC))
    headers = signed_headers(signing, claim.alert_id, claim.type, body, int(now))
    try:
        # stream: the answer's status is all that counts, and its body is never read
        with requests.post(
            claim.url, data=body, headers=headers, timeout=timeout, allow_redirects=False, stream=True
        ) as answer:
            if 200 <= answer.status_code < 300:
                return None
            return _Failure(f"HTTP {answer.status_code} {answer.reason or ''}".strip())
    except requests.Timeout:
        return _Failure(f"no answer within {timeout:g} s")
    except requests.RequestException as e:
        return _Failure(_said(e))


def _said(error: requests.RequestException) -> str:
    """The failure's kind and the system's reason, not requests' text, which quotes the URL's path and
    query (where a receiver may keep a token)."""
    reason = re.search(r"\[Errno -?\d+\][^'\")]*", str(error))
    return f"{type(error).__name__}: {reason.group(0).strip() if reason else 'the request failed'}"


class DeliveryWorker:
    """`deliver_once` every `poll_seconds` until stopped. While the decision log cannot be reached the
    worker says so once a minute and carries on: the deliveries wait in the database."""

    def __init__(self, outbox: Outbox, settings: WebhookSettings) -> None:
        self.outbox = outbox
        self.settings = settings
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._outage = Outage("webhook deliveries: the decision log", "deliveries wait there for it")

    def run(self) -> None:
        """Deliver until `stop`; in the calling thread."""
        while True:
            self.deliver()
            if self._stop.wait(self.settings.poll_seconds):
                return

    def deliver(self) -> DeliveryRound | None:
        """One round; None when it could not run (said in the log)."""
        try:
            done = deliver_once(self.outbox, self.settings)
        except DecisionLogUnavailable as e:
            self._outage.failed(e)
            return None
        except Exception:  # the worker must outlive any one round's failure
            log.exception("delivering webhooks failed; trying again in %g s", self.settings.poll_seconds)
            return None
        self._outage.ended()
        return done

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="webhook-deliveries", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the delivery in flight, if any (it may take up to the timeout)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.settings.timeout_seconds + 1)


@contextlib.contextmanager
def delivering(store: Store, settings: Settings) -> Iterator[DeliveryWorker]:
    """A worker in a daemon thread while the block runs: `retain serve` runs one beside the API, once per
    server however many worker processes answer requests."""
    decision_log = DecisionLog.for_store(store, settings)
    worker = DeliveryWorker(Outbox(decision_log), settings.webhooks)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()
        decision_log.close()
