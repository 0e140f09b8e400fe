"""A webhook receiver on 127.0.0.1 for the tests: what a playbook engine would be. It checks signatures as
any receiver would, with the off-the-shelf Standard Webhooks verifier."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError


@dataclass(frozen=True)
class Received:
    #: `webhook-id`: the event's id, the idempotency key
    key: str
    event: str
    content_type: str
    #: every header as sent, names as the sender spelt them
    headers: dict[str, str]
    body: bytes
    #: `time.time()` when it arrived
    at: float

    def header(self, name: str) -> str | None:
        """A header by its name in any case; None when it was not sent."""
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)

    def verifies(self, secret: str) -> bool:
        """Whether `standardwebhooks.Webhook(secret).verify` takes it: signed with `secret`, the body and
        the headers as received, the timestamp within five minutes of now."""
        try:
            Webhook(secret).verify(self.body, self.headers)
        except WebhookVerificationError:
            return False
        return True


class Receiver:
    """A playbook engine on 127.0.0.1: it answers 500 to its first `failures` requests (to every one while
    `down`), holds its first request `hold` seconds before answering, and applies each key once. With a
    `secret` it answers 401 to a request that does not verify with it, and applies nothing."""

    def __init__(self, failures: int = 0, hold: float = 0.0, secret: str | None = None) -> None:
        self.failures, self.hold, self.down, self.secret = failures, hold, False, secret
        self.received: list[Received] = []
        self.applied: list[str] = []
        self.first = threading.Event()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def _answer(self, request: Received) -> tuple[int, float]:
        """The status to answer with, and how long to hold the answer."""
        with self._lock:
            self.received.append(request)
            if self.down or len(self.received) <= self.failures:
                return 500, 0.0
            if self.secret is not None and not request.verifies(self.secret):
                return 401, 0.0
            if request.key not in self.applied:
                self.applied.append(request.key)
            return 200, self.hold if len(self.received) == 1 else 0.0

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body, headers = (
                    self.rfile.read(int(self.headers["Content-Length"])),
                    dict(self.headers.items()),
                )
                h = {k.lower(): v for k, v in headers.items()}
                request = Received(
                    h["webhook-id"], h["retain-event"], h["content-type"], headers, body, time.time()
                )
                status, hold = receiver._answer(request)
                receiver.first.set()
                time.sleep(hold)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the sender is gone: killed while the answer was held

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
