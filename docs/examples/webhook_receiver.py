"""A receiver of Retain's webhooks: copy it and put your playbook in `apply`.

Retain signs by the Standard Webhooks spec, so the check is the spec's own library
(`pip install standardwebhooks`): `Webhook(secret).verify(body, headers)` checks the `webhook-signature`
over the id, the timestamp and the raw body with the subscription's secret, and refuses a timestamp more
than five minutes away from this clock (a captured request replayed later). The receiver then applies
each alert once by its `webhook-id`, the idempotency key: Retain delivers at least once, so an alert can
arrive again (after a timeout, a crash or a retry); a repeat is answered 200 and not applied.

    WEBHOOK_SECRET=whsec_... python docs/examples/webhook_receiver.py --port 9000

The secret comes from the environment, not the command line, where other users could read it. While a
secret is rotated, Retain signs with the old and the new one, so the receiver may switch from one to the
other at any time in the overlap. The keys applied are kept in memory here: a real receiver keeps them
where it applies the alert (a unique key written in the same transaction), so a restart does not forget
them. It prints one JSON line per request, after a first line with the address it listens on. See
docs/methods/webhooks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError


def apply(alert: dict[str, Any]) -> None:
    """Act on the alert: open a task, start a playbook, update the CRM. Here, nothing."""


class Receiver(ThreadingHTTPServer):
    def __init__(self, address: tuple[str, int], secret: str) -> None:
        super().__init__(address, Handler)
        self.webhook = Webhook(secret)
        self.applied: set[str] = set()
        self.lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = dict(self.headers.items())
        key = self.headers.get("webhook-id", "")
        try:
            alert = self.server.webhook.verify(body, headers)  # before anything reads the body
        except WebhookVerificationError as e:
            self.answer(401, key, f"refused: {e}")
            return
        with self.server.lock:  # one at a time, so two copies arriving together apply once
            fresh = key not in self.server.applied
            if fresh:
                apply(alert)
                self.server.applied.add(key)
        self.answer(200, key, "applied" if fresh else "duplicate")

    def answer(self, status: int, key: str, outcome: str) -> None:
        print(json.dumps({"key": key, "status": status, "outcome": outcome}), flush=True)
        text = json.dumps({"outcome": outcome}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: `answer` prints one line per request instead."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000, help="0 picks a free port")
    options = parser.parse_args()
    receiver = Receiver((options.host, options.port), os.environ["WEBHOOK_SECRET"])
    print(json.dumps({"listening": f"http://{options.host}:{receiver.server_address[1]}"}), flush=True)
    receiver.serve_forever()


if __name__ == "__main__":
    main()
