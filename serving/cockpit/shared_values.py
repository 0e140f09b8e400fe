"""A value a deployment's processes share through Redis, made by one of them at a time.

Whoever finds the value missing or stale takes the key's lock (SET NX PX with a random token), makes the
value and puts it; the others wait for it or keep what they have. A lock is released only by the token
that took it, so a holder whose lock expired cannot release the next holder's. A put never replaces a
newer value (the wall-clock times they were made at are compared inside Redis, atomically): a lock can
expire under a slow maker, and its value must not land over the one made after it.

The values are bytes; what they mean, and whether to trust them, is its caller's business.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Iterator
from typing import cast

import redis
from redis.exceptions import RedisError

#: a lock's key: the value's, with this after it
LOCK = ":lock"
#: the token's holder deletes the lock; any other caller leaves it to expire
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
#: store (made at, value) unless what is there was made at the same time or later; keep it `ARGV[3]` ms
PUT = """
local held = tonumber(redis.call('HGET', KEYS[1], 'at') or '')
if held and held >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'at', ARGV[1], 'value', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""


class RedisSharedValues:
    """Values under keys in Redis, each with the time it was made at and a lock for whoever makes the
    next one. Every method but `lock`'s release raises `RedisError` when Redis cannot be reached."""

    #: many times a book's scoring (about 2 s for 5,000 accounts); a holder that dies frees it by then
    LOCK_SECONDS = 30.0
    #: a value nobody puts again (one scored by superseded champions) is gone after a day
    KEEP_SECONDS = 86_400.0
    #: how often a waiter looks whether the lock is free again
    POLL_SECONDS = 0.1

    def __init__(self, url: str) -> None:
        # a Redis that does not answer in two seconds is down: the caller goes on without it
        self._client = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self._release = self._client.register_script(RELEASE)
        self._put = self._client.register_script(PUT)

    def get(self, key: str) -> tuple[float, bytes] | None:
        """The value under `key` and when it was made (seconds since the epoch); None when there is none."""
        # redis-py types a reply as maybe awaitable (its asyncio client shares the signatures)
        at, value = cast(list[bytes | None], self._client.hmget(key, ["at", "value"]))
        if at is None or value is None:
            return None
        try:
            return float(at), value
        except ValueError:  # not a time: not a value this class put
            return None

    def put(self, key: str, at: float, value: bytes) -> None:
        """Store `value`, made at `at`, unless the one there was made later."""
        self._put(keys=[key], args=[repr(at), value, int(self.KEEP_SECONDS * 1000)])

    @contextlib.contextmanager
    def lock(self, key: str) -> Iterator[bool]:
        """Whether this caller took `key`'s lock; held until the block ends or `LOCK_SECONDS` pass."""
        token = secrets.token_urlsafe(16)
        taken = bool(self._client.set(key + LOCK, token, nx=True, px=int(self.LOCK_SECONDS * 1000)))
        try:
            yield taken
        finally:
            if taken:
                with contextlib.suppress(RedisError):  # not released, it expires by itself
                    self._release(keys=[key + LOCK], args=[token])

    def wait(self, key: str, deadline: float) -> None:
        """Until `key`'s lock is released or expires, or `deadline` (`time.monotonic()`) passes."""
        while self._client.exists(key + LOCK) and time.monotonic() < deadline:
            time.sleep(self.POLL_SECONDS)
