"""What every HTTP request passes through before any route: an id, a cap on its body, a count and a time.

Pure ASGI middleware, cheaper than Starlette's BaseHTTPMiddleware on every request.
"""

from __future__ import annotations

import re
import time
import uuid

from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.errors import error_response
from serving.metrics import Metrics

#: a caller's `X-Request-ID` is echoed when it looks like an id; otherwise a new one is made
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")


def request_id(request: Request) -> str:
    """The request's id, as `RequestMiddleware` set it (and sends back as `X-Request-ID`)."""
    return str(request.scope["state"]["request_id"])


class _BodyTooLarge(Exception):
    pass


class RequestMiddleware:
    """A request id in and out (`X-Request-ID`), a 413 for a body over `max_body` bytes (declared or
    streamed), and per-route request counts and latency in the metrics."""

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
        status = 500
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            await self._too_large(rid)(scope, receive, send)
            self._observe(scope, 413, started)
            return
        seen = 0

        async def capped_receive() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_body:
                raise _BodyTooLarge
            return message

        async def tagged_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, capped_receive, tagged_send)
        except _BodyTooLarge:
            await self._too_large(rid)(scope, receive, send)
            status = 413
        finally:
            self._observe(scope, status, started)

    def _too_large(self, rid: str) -> ASGIApp:
        return error_response(413, "body_too_large", f"the body exceeds {self.max_body} bytes", rid)

    def _observe(self, scope: Scope, status: int, started: float) -> None:
        """Counted under the route's template (`/v1/accounts/{account_id}/risk`), never the raw path."""
        route = getattr(scope.get("route"), "path", "unmatched")
        method = scope["method"]
        self.metrics.requests.labels(route=route, method=method, status=str(status)).inc()
        self.metrics.latency.labels(route=route, method=method).observe(time.perf_counter() - started)
