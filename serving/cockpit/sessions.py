"""Cockpit logins: a CSM signs in once with an API key and the browser keeps an opaque session cookie.

The key stays on the server, in memory, and is checked again on every request, so revoking it ends the
session at once; a restart signs everybody out. Each session has its own token that every form must echo
(the cookie is also SameSite=Strict): a page on another site cannot post feedback in a CSM's name.

Before a session, the sign-in form carries a token of its own, also set in a cookie (`LOGIN_COOKIE`, a
double submit): another site can post a key to `/ui/login` but cannot read or set that cookie, so it
cannot sign a browser in under the attacker's key (login CSRF).
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field

COOKIE = "retain_session"
#: the sign-in form's token, random for each sign-in page shown
LOGIN_COOKIE = "retain_login"


def new_token() -> str:
    return secrets.token_urlsafe(24)


def same_token(expected: str, given: str) -> bool:
    """In constant time; bytes, because `compare_digest` refuses a non-ASCII str (a forged field)."""
    return bool(expected) and hmac.compare_digest(expected.encode(), given.encode())


@dataclass
class Session:
    key: str
    name: str
    csrf: str = field(default_factory=new_token)
    seen: float = field(default_factory=time.monotonic)

    def echoed(self, token: str) -> bool:
        return same_token(self.csrf, token)


class Sessions:
    def __init__(self, hours: float) -> None:
        self.idle = hours * 3600.0
        self._by_token: dict[str, Session] = {}
        self._lock = threading.Lock()

    def open(self, key: str, name: str) -> tuple[str, Session]:
        token = secrets.token_urlsafe(32)
        with self._lock:
            now = time.monotonic()
            self._by_token = {t: s for t, s in self._by_token.items() if now - s.seen <= self.idle}
            self._by_token[token] = session = Session(key, name)
        return token, session

    def get(self, token: str) -> Session | None:
        with self._lock:
            session = self._by_token.get(token)
            if session is None:
                return None
            now = time.monotonic()
            if now - session.seen > self.idle:
                del self._by_token[token]
                return None
            session.seen = now
            return session

    def close(self, token: str) -> None:
        with self._lock:
            self._by_token.pop(token, None)
