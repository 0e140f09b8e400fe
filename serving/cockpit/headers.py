"""Security headers on every cockpit answer (`/ui`): pages, redirects and errors alike.

The pages run no script, load one stylesheet from `/ui/static/cockpit.css`, draw charts as inline SVG
styled by that sheet and post forms only to `/ui`; the Content-Security-Policy allows exactly that, so
injected markup can load nothing, and no other site can frame a page (clickjacking). Pages show accounts
and sessions' form tokens, so they are never stored by a cache; an answer that names its own
Cache-Control (the stylesheet) keeps it. `Referrer-Policy: same-origin` keeps `/ui` paths from other
sites while leaving the `Origin` of the cockpit's own posts intact (`no-referrer` would send
`Origin: null`, which the cockpit refuses: `serving/cockpit/access.py`).

Pure ASGI middleware, as `serving/middleware.py`, cheaper than Starlette's BaseHTTPMiddleware.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
#: set on every cockpit answer, replacing any value a route gave
SECURITY_HEADERS = {
    b"content-security-policy": CONTENT_SECURITY_POLICY.encode(),
    b"x-frame-options": b"DENY",
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"same-origin",
}
CACHE_CONTROL = b"cache-control"


class CockpitHeaders:
    """Adds `SECURITY_HEADERS` and `Cache-Control: no-store` (unless the answer sets its own) to every
    HTTP answer under `prefix`; other paths (the API) pass untouched."""

    def __init__(self, app: ASGIApp, prefix: str = "/ui") -> None:
        self.app, self.prefix = app, prefix.rstrip("/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._covers(scope["path"]):
            await self.app(scope, receive, send)
            return

        async def secured_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = secured(message.get("headers", []))
            await send(message)

        await self.app(scope, receive, secured_send)

    def _covers(self, path: str) -> bool:
        return path == self.prefix or path.startswith(f"{self.prefix}/")


def secured(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The answer's headers with the security headers set once each (applying twice changes nothing)."""
    kept = [(name, value) for name, value in headers if name.lower() not in SECURITY_HEADERS]
    if not any(name.lower() == CACHE_CONTROL for name, _ in kept):
        kept.append((CACHE_CONTROL, b"no-store"))
    return [*kept, *SECURITY_HEADERS.items()]
