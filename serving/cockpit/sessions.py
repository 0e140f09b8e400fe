"""Cockpit logins: a CSM signs in once with an API key and the browser keeps an opaque session cookie.

A session holds the key's public id and name, never the key: every request checks that the key is still
live and carries the scope (`KeyRing.live`), so revoking it ends the session at once. Sessions live in
one process's memory (`MemorySessions`: a restart signs everybody out, and each worker would have its
own) or in Redis (`RedisSessions`: shared by every worker and host). Each session has its own token that
every form must echo (the cookie is also SameSite=Strict): a page on another site cannot post feedback
in a CSM's name.

Before a session, the sign-in form carries a token of its own, also set in a cookie (`LOGIN_COOKIE`, a
double submit): another site can post a key to `/ui/login` but cannot read or set that cookie, so it
cannot sign a browser in under the attacker's key (login CSRF).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Protocol

import redis.asyncio
from redis.exceptions import RedisError

from core.settings import Settings

COOKIE = "retain_session"
#: the sign-in form's token, random for each sign-in page shown
LOGIN_COOKIE = "retain_login"


def new_token() -> str:
    return secrets.token_urlsafe(24)


def same_token(expected: str, given: str) -> bool:
    """In constant time; bytes, because `compare_digest` refuses a non-ASCII str (a forged field)."""
    return bool(expected) and hmac.compare_digest(expected.encode(), given.encode())


class SessionsUnavailable(Exception):
    """The session store cannot be reached (Redis is down): the cockpit answers 503 and says so."""


@dataclass(frozen=True)
class Session:
    key_id: str
    name: str
    csrf: str = field(default_factory=new_token)

    def echoed(self, token: str) -> bool:
        return same_token(self.csrf, token)


class SessionStore(Protocol):
    """Where logins live; `idle` is the seconds a login lasts without use."""

    idle: float

    async def open(self, key_id: str, name: str) -> tuple[str, Session]: ...

    async def get(self, token: str) -> Session | None: ...

    async def close(self, token: str) -> None: ...

    async def shut(self) -> None: ...


class MemorySessions:
    """This process's logins: enough for one worker. No lock: only the event loop's thread touches them,
    and no method awaits between reading and writing."""

    def __init__(self, hours: float) -> None:
        self.idle = hours * 3600.0
        # token -> (session, when it was last used)
        self._by_token: dict[str, tuple[Session, float]] = {}

    async def open(self, key_id: str, name: str) -> tuple[str, Session]:
        token, session, now = secrets.token_urlsafe(32), Session(key_id, name), time.monotonic()
        self._by_token = {t: s for t, s in self._by_token.items() if now - s[1] <= self.idle}
        self._by_token[token] = (session, now)
        return token, session

    async def get(self, token: str) -> Session | None:
        found, now = self._by_token.get(token), time.monotonic()
        if found is None:
            return None
        if now - found[1] > self.idle:
            del self._by_token[token]
            return None
        self._by_token[token] = (found[0], now)
        return found[0]

    async def close(self, token: str) -> None:
        self._by_token.pop(token, None)

    async def shut(self) -> None:
        self._by_token.clear()


class RedisSessions:
    """Logins in Redis, one JSON value per token that expires after `idle` seconds unused (each use
    restarts the clock). The Redis key is a digest of the token, so reading Redis does not yield a cookie."""

    PREFIX = "retain:cockpit:session:"

    def __init__(self, url: str, hours: float) -> None:
        self.idle = hours * 3600.0
        # a Redis that does not answer in two seconds is down: the page says so rather than hanging
        self._client = redis.asyncio.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self._ttl_ms = max(1, int(self.idle * 1000))

    def _name(self, token: str) -> str:
        return self.PREFIX + hashlib.sha256(token.encode()).hexdigest()

    async def open(self, key_id: str, name: str) -> tuple[str, Session]:
        token, session = secrets.token_urlsafe(32), Session(key_id, name)
        with _reaching_redis():
            await self._client.set(self._name(token), json.dumps(asdict(session)), px=self._ttl_ms)
        return token, session

    async def get(self, token: str) -> Session | None:
        if not token:
            return None
        with _reaching_redis():
            value = await self._client.getex(self._name(token), px=self._ttl_ms)
        if value is None:
            return None
        try:
            return Session(**json.loads(value))
        except (ValueError, TypeError):  # a value this version did not write: sign in again
            return None

    async def close(self, token: str) -> None:
        with _reaching_redis():
            await self._client.delete(self._name(token))

    async def shut(self) -> None:
        await self._client.aclose()


@contextlib.contextmanager
def _reaching_redis() -> Iterator[None]:
    """Redis's errors as `SessionsUnavailable`, which the cockpit answers with a 503 page."""
    try:
        yield
    except RedisError as e:
        raise SessionsUnavailable(f"Redis cannot be reached ({type(e).__name__})") from e


def session_store(settings: Settings) -> SessionStore:
    """The store `cockpit.sessions` names."""
    if settings.cockpit.sessions == "redis":
        return RedisSessions(settings.redis_url, settings.cockpit.session_hours)
    return MemorySessions(settings.cockpit.session_hours)
