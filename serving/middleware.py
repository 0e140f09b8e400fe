"""What every HTTP request passes through before any route: an id, a cap on its body, a count and a time;
and what every answer carries: its id and the security headers a page needs (`/docs` is one).

Pure ASGI middleware, cheaper than Starlette's BaseHTTPMiddleware on every request.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.errors import error_response
from serving.metrics import Metrics

log = logging.getLogger("retain.serving")

#: a caller's `X-Request-ID` is echoed when it looks like an id; otherwise a new one is made
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")
#: on every answer: no other site may frame it (`/docs` is a page whose buttons a framing site could get
#: clicked), no browser may sniff a JSON answer into a page, no referrer leaks a path; the cockpit (`/ui`)
#: replaces them with its stricter set (serving/cockpit/headers.py)
SECURITY_HEADERS = (
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
)
_SECURITY_NAMES = frozenset(name for name, _ in SECURITY_HEADERS)


def request_id(request: Request) -> str:
    """The request's id, as `RequestMiddleware` set it (and sends back as `X-Request-ID`)."""
    return str(request.scope["state"]["request_id"])


class _BodyTooLarge(Exception):
    pass


class RequestMiddleware:
    """A request id in and out (`X-Request-ID`), a 413 for a body over `max_body` bytes (declared or
    streamed), per-route request counts and latency in the metrics, and a JSON 500 with the id for an
    error nothing else caught (logged with its traceback), rather than Starlette's plain-text one."""

    def __init__(self, app: ASGIApp, metrics: Metrics, max_body: int) -> None:
        self.app, self.metrics, self.max_body = app, metrics, max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = dict(scope["headers"])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        rid = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        identified = _with_id(send, rid)
        status = 500
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            await self._too_large(rid)(scope, receive, identified)
            self._observe(scope, 413, started)
            return
        seen = 0
        too_large = responded = False

        async def capped_receive() -> Message:
            nonlocal seen, too_large
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_body:
                too_large = True  # the app may catch this and answer 400: its answer is replaced by a 413
                raise _BodyTooLarge
            return message

        async def tagged_send(message: Message) -> None:
            nonlocal status, responded
            if too_large:
                return
            if message["type"] == "http.response.start":
                status, responded = message["status"], True
            await identified(message)

        try:
            await self.app(scope, capped_receive, tagged_send)
        except _BodyTooLarge:
            pass
        except Exception:
            log.exception("request %s %s failed", scope["method"], scope["path"])
            if responded:
                raise
            await error_response(500, "internal_error", "the server failed; the request id is logged", rid)(
                scope, receive, tagged_send
            )
        finally:
            if too_large:
                await self._too_large(rid)(scope, receive, identified)
                status = 413
            self._observe(scope, status, started)

    def _too_large(self, rid: str) -> ASGIApp:
        return error_response(413, "body_too_large", f"the body exceeds {self.max_body} bytes", rid)

    def _observe(self, scope: Scope, status: int, started: float) -> None:
        """Counted under the route's template (`/v1/accounts/{account_id}/risk`), never the raw path."""
        route = getattr(scope.get("route"), "path", "unmatched")
        method = scope["method"]
        self.metrics.requests.labels(route=route, method=method, status=str(status)).inc()
        self.metrics.latency.labels(route=route, method=method).observe(time.perf_counter() - started)


def _with_id(send: Send, rid: str) -> Send:
    """`send`, adding `X-Request-ID` and the security headers to the response's headers."""

    async def identified(message: Message) -> None:
        if message["type"] == "http.response.start":
            given = [(k, v) for k, v in message.get("headers", []) if k.lower() not in _SECURITY_NAMES]
            message["headers"] = [*given, *SECURITY_HEADERS, (b"x-request-id", rid.encode())]
        await send(message)

    return identified
