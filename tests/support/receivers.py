"""A webhook receiver on 127.0.0.1 for the tests: what a playbook engine would be."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    key: str
    event: str
    content_type: str
    timestamp: str
    signature: str
    body: bytes
    #: `time.time()` when it arrived
    at: float


class Receiver:
    """A playbook engine on 127.0.0.1: it answers 500 to its first `failures` requests (to every one while
    `down`), holds its first request `hold` seconds before answering, and applies each key once."""

    def __init__(self, failures: int = 0, hold: float = 0.0) -> None:
        self.failures, self.hold, self.down = failures, hold, False
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
            if request.key not in self.applied:
                self.applied.append(request.key)
            return 200, self.hold if len(self.received) == 1 else 0.0

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body, h = self.rfile.read(int(self.headers["Content-Length"])), self.headers
                keys = ("Retain-Idempotency-Key", "Retain-Event", "Content-Type")
                signed = (h["Retain-Timestamp"], h["Retain-Signature"])
                status, hold = receiver._answer(Received(*(h[k] for k in keys), *signed, body, time.time()))
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
