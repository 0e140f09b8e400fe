"""Who is looking at a cockpit page: an API key, sent as a bearer token or held by a signed-in session.

Viewing needs `scores:read`, the actions need `actions:read`, feedback needs `actions:write`. A browser
without usable credentials goes to the sign-in page and comes back (`SignIn`). A post another site's
page sent is refused before any of that (`posted_here`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlencode, urlsplit

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse, Response

from core.errors import RetainError
from serving.auth import bearer, check_key
from serving.cockpit.keeper import BookKeeper
from serving.cockpit.sessions import COOKIE, Session, SessionStore
from serving.deps import ServiceDep
from serving.errors import ApiError
from serving.keys import ApiKey
from serving.service import Service


class SignIn(Exception):
    """No usable credentials: the browser goes to the sign-in page and comes back to `back`."""

    def __init__(self, back: str) -> None:
        self.back = back


async def sign_in_redirect(request: Request, exc: SignIn) -> Response:
    """The app's handler for `SignIn`."""
    return RedirectResponse(f"/ui/login?{urlencode({'next': exc.back})}", status_code=303)


@dataclass(frozen=True)
class Viewer:
    key: ApiKey
    #: None when the key came as a bearer token
    session: Session | None

    @property
    def name(self) -> str:
        return self.key.name or self.key.key_id

    @property
    def csrf(self) -> str:
        return self.session.csrf if self.session else ""


async def _sessions(request: Request) -> SessionStore:
    sessions: SessionStore = request.app.state.sessions
    return sessions


async def _book_keeper(request: Request) -> BookKeeper:
    keeper: BookKeeper = request.app.state.book
    return keeper


SessionsDep = Annotated[SessionStore, Depends(_sessions)]
BookKeeperDep = Annotated[BookKeeper, Depends(_book_keeper)]


def this_page(request: Request) -> str:
    """The path and query asked for, to come back to after signing in."""
    query = f"?{request.url.query}" if request.url.query else ""
    return f"{request.url.path}{query}"


def cockpit_page(wanted: str) -> str:
    """Only back into the cockpit: `next` must not send a signed-in CSM to another site."""
    return wanted if wanted.startswith("/ui") and not wanted.startswith("//") else "/ui"


def same_host(origin: str, host: str) -> bool:
    """Whether an `Origin` (`https://retain.example`) names the `Host` the request came to; a port left
    out is the scheme's default. `Origin: null` (an opaque or privacy-hidden origin) names no host."""
    sent, here = urlsplit(origin), urlsplit(f"//{host}")
    default = {"http": 80, "https": 443}.get(sent.scheme)
    try:
        ports = (sent.port or default, here.port or default)
    except ValueError:
        return False
    return sent.hostname is not None and sent.hostname == here.hostname and ports[0] == ports[1]


async def posted_here(request: Request) -> None:
    """Every cockpit route's guard (on the router): a post whose `Origin` names another host is refused,
    whatever cookies and tokens it carries: defence in depth behind SameSite cookies and form tokens. A
    post without `Origin` (an old browser, a script) relies on those."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    origin = request.headers.get("origin")
    if origin is not None and not same_host(origin, request.headers.get("host", "")):
        raise ApiError(403, "cross_site_post", f"a cockpit form was posted from another site ({origin})")


def viewer(scope: str) -> Callable[[Request, Service, SessionStore], Awaitable[Viewer]]:
    """A dependency: the viewer, whose key must carry `scope`. Without a bearer token or a live session:
    sign in; a session whose key was revoked: sign in again; a bearer token that fails: the API's 401/403."""

    async def signed_in(request: Request, service: ServiceDep, sessions: SessionsDep) -> Viewer:
        token = bearer(request)
        if token:
            return Viewer(check_key(service, token, scope), None)
        cookie = request.cookies.get(COOKIE, "")
        session = await sessions.get(cookie)
        if session is None:
            raise SignIn(this_page(request))
        key = live_key(service, session.key_id)
        if key is None:
            await sessions.close(cookie)
            raise SignIn(this_page(request))
        if not key.allows(scope):
            raise ApiError(403, "forbidden", f"this key lacks the scope {scope!r}")
        return Viewer(key, session)

    return signed_in


def live_key(service: Service, key_id: str) -> ApiKey | None:
    """The session's key if it is still live: looked up on every request, so a revocation counts at once."""
    try:
        return service.resources.keys.live(key_id)
    except RetainError as e:
        raise ApiError(503, "keys_unavailable", f"API keys cannot be read: {e}") from e


Reader = Annotated[Viewer, Depends(viewer("scores:read"))]
Actor = Annotated[Viewer, Depends(viewer("actions:write"))]
