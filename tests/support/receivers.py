"""A webhook receiver on 127.0.0.1 for the tests: what a playbook engine would be. It checks signatures as
any receiver would, with the off-the-shelf Standard Webhooks verifier. Beside it, what the digest and the
alerts are delivered to: a Slack-compatible incoming webhook, and SMTP servers that take or refuse mail."""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope
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


# -- delivery: a Slack-compatible incoming webhook and SMTP servers ------------------------------------


#: the secret part of a SlackReceiver's URL
TOKEN = "xoxSECRETTOKEN42"


class SlackReceiver:
    """A Slack-compatible incoming webhook on 127.0.0.1: it keeps each JSON body POSTed to it and answers
    `status` (with `answer` as its body, as Slack says `no_service`), after holding `hold` seconds."""

    def __init__(self, status: int = 200, answer: str = "ok", hold: float = 0.0) -> None:
        self.status, self.answer, self.hold = status, answer, hold
        self.received: list[dict[str, Any]] = []
        self.content_types: list[str] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        #: shaped like Slack's, with a token in its path: no message may quote it
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/services/T0RETAIN/B0DIGEST/{TOKEN}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append(json.loads(body))
                receiver.content_types.append(self.headers.get("Content-Type", ""))
                time.sleep(receiver.hold)
                answer = receiver.answer.encode()
                try:
                    self.send_response(receiver.status)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except OSError:
                    pass  # the sender gave up waiting

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def free_port() -> int:
    """A port on 127.0.0.1 nothing listens on (free when asked; the tests' own servers take theirs)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Mail:
    """A message an SMTP server took: the envelope, and the message as sent."""

    sender: str
    recipients: list[str]
    content: bytes


class MailServer:
    """An SMTP server on 127.0.0.1 (aiosmtpd): it keeps each message it takes. It refuses the recipients
    in `refuse` at RCPT (550), and with `data_answer` answers DATA with it instead of taking the message."""

    def __init__(self, refuse: tuple[str, ...] = (), data_answer: str | None = None) -> None:
        self.messages: list[Mail] = []
        self.port = free_port()
        self._controller = Controller(
            _Handler(self, refuse, data_answer), hostname="127.0.0.1", port=self.port
        )
        self._controller.start()

    def close(self) -> None:
        self._controller.stop()


class _Handler:
    def __init__(self, server: MailServer, refuse: tuple[str, ...], data_answer: str | None) -> None:
        self.server, self.refuse, self.data_answer = server, refuse, data_answer

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Envelope) -> str:
        if self.data_answer is not None:
            return self.data_answer
        content = envelope.original_content or b""
        self.server.messages.append(Mail(str(envelope.mail_from), list(envelope.rcpt_tos), content))
        return "250 Message accepted for delivery"


class HangUp:
    """A server on 127.0.0.1 that takes each connection and closes it at once, before any greeting."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._socket.getsockname()[1])
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return  # closed
            self.connections += 1
            connection.close()

    def close(self) -> None:
        self._socket.close()
