"""API keys for the serving API: created and revoked by the CLI, checked by the API on every request.

A key reads `rk_<key_id>_<secret>`: the public id finds its record without a scan, the secret is
`secrets.token_urlsafe(32)`. Only a SHA-256 digest of the whole key is stored. A slow password hash
(bcrypt, scrypt) exists to make guessing a low-entropy password expensive; a 256-bit random secret
cannot be guessed at any hashing speed, so a fast hash loses nothing and keeps a check in microseconds.

Keys live where `serve.keys` says. `file` (`KeyFile`, the default): JSON under the store, mode 0600,
replaced atomically under an exclusive lock, so two CLI calls cannot lose each other's keys; readers
never lock, and re-read the file only when it changed. `database` (`KeyTable`): the `api_keys` table in
the decision log's database, for several hosts that do not share the store's folder; each process reads
the table again every `TABLE_REFRESH_SECONDS`. Either way a `retain keys revoke` in another process
reaches every running server without a restart.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from core.errors import RetainError
from core.settings import Settings
from serving.outage import Outage
from store.decision_log import API_KEYS, DecisionLog, DecisionLogUnavailable
from store.delta import Store

SCOPES: tuple[str, ...] = ("scores:read", "actions:read", "actions:write", "admin")

_KEY = re.compile(r"rk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
#: how old a process's copy of the `api_keys` table may grow: a new key or a revocation reaches every
#: host within this
TABLE_REFRESH_SECONDS = 1.0


@dataclass(frozen=True)
class ApiKey:
    """What is known about a key, safe to print: neither the key nor its hash."""

    key_id: str
    name: str | None
    scopes: frozenset[str]
    created_at: datetime
    revoked_at: datetime | None

    def allows(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes

    def as_dict(self) -> dict[str, str | list[str] | None]:
        return {
            "key_id": self.key_id,
            "name": self.name,
            "scopes": sorted(self.scopes),
            "created_at": self.created_at.isoformat(),
            "revoked_at": None if self.revoked_at is None else self.revoked_at.isoformat(),
        }


# key_id -> (key, SHA-256 hex digest of the whole key text)
_Keys = dict[str, tuple[ApiKey, str]]
# inode, mtime and size: a replaced file differs in at least one
_Stamp = tuple[int, int, int]


def parse_scopes(text: str) -> frozenset[str]:
    """`"scores:read, actions:read"` as a set of scopes."""
    return _checked(part.strip() for part in text.split(","))


def _checked(scopes: Iterable[str]) -> frozenset[str]:
    chosen = frozenset(s for s in scopes if s)
    for scope in sorted(chosen):
        if scope not in SCOPES:
            raise RetainError(f"unknown scope {scope!r}; scopes are {', '.join(SCOPES)}")
    if not chosen:
        raise RetainError(f"no scopes given; scopes are {', '.join(SCOPES)}")
    return chosen


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyRing(ABC):
    """Where the keys live, and what is done with them, the same over each kind of place. Safe to share
    between threads and with other processes."""

    #: where the keys are, for messages: a path, or a database URL without its password
    where: str

    def create(self, scopes: Iterable[str], name: str | None = None) -> tuple[ApiKey, str]:
        """A new key and its text; the text is returned here once and never stored."""
        chosen = _checked(scopes)
        with self._writing() as keys:
            key_id = secrets.token_hex(6)
            while key_id in keys:
                key_id = secrets.token_hex(6)
            text = f"rk_{key_id}_{secrets.token_urlsafe(32)}"
            key = ApiKey(key_id, name, chosen, datetime.now(UTC), None)
            keys[key_id] = (key, _digest(text))
        return key, text

    def revoke(self, key_id: str) -> ApiKey:
        """Refuse the key from now on; revoking it again keeps the first revocation time."""
        with self._writing() as keys:
            if key_id not in keys:
                raise RetainError(f"no API key with id {key_id!r} in {self.where}")
            key, digest = keys[key_id]
            if key.revoked_at is None:
                key = replace(key, revoked_at=datetime.now(UTC))
                keys[key_id] = (key, digest)
        return key

    def list(self) -> list[ApiKey]:
        """Every key, revoked ones included, oldest first."""
        return sorted((key for key, _ in self._current().values()), key=lambda k: k.created_at)

    def authenticate(self, presented: str) -> ApiKey | None:
        """The live key `presented` is, else None; the digest comparison takes constant time.

        The key_id is not secret (the CLI prints it), so its lookup need not be constant-time.
        """
        match = _KEY.fullmatch(presented)
        if match is None:
            return None
        found = self._current().get(match.group(1))
        if found is None:
            return None
        key, digest = found
        if not hmac.compare_digest(_digest(presented), digest) or key.revoked_at is not None:
            return None
        return key

    def live(self, key_id: str) -> ApiKey | None:
        """The key with this public id if it is still live, else None: how a cockpit session, which holds
        only the id, sees a revocation on its next request."""
        found = self._current().get(key_id)
        if found is None or found[0].revoked_at is not None:
            return None
        return found[0]

    @abstractmethod
    def _current(self) -> _Keys:
        """The keys as they are now (or were at most a moment ago)."""

    @abstractmethod
    def _writing(self) -> AbstractContextManager[_Keys]:
        """The keys to change, stored when the block ends, as one step against other writers."""


class KeyFile(KeyRing):
    """The keys in one JSON file under the store: enough when the hosts that serve share its folder."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = str(path)
        self._lock = threading.Lock()
        self._cache: tuple[_Stamp, _Keys] | None = None

    @classmethod
    def for_store(cls, store: Store) -> KeyFile:
        return cls(store.serving_dir / "api_keys.json")

    def _current(self) -> _Keys:
        """The keys as the file holds them now; parsed again only when the file was replaced."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return {}
        cache = self._cache
        if cache is not None and cache[0] == (st.st_ino, st.st_mtime_ns, st.st_size):
            return cache[1]
        with self._lock:
            try:
                with open(self.path, "rb") as f:
                    # the stamp of the file actually read, so the cache never pairs old keys with a new stamp
                    st = os.fstat(f.fileno())
                    keys = self._parse(f.read())
            except FileNotFoundError:
                return {}
            self._cache = ((st.st_ino, st.st_mtime_ns, st.st_size), keys)
            return keys

    @contextlib.contextmanager
    def _writing(self) -> Iterator[_Keys]:
        """Read, change and replace the file as one step against other writers, in any process."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            keys = self._parse(self.path.read_bytes()) if self.path.exists() else {}
            yield keys
            self._write(keys)

    def _write(self, keys: _Keys) -> None:
        records = {key_id: {**key.as_dict(), "sha256": digest} for key_id, (key, digest) in keys.items()}
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            os.fchmod(fd, 0o600)  # a file left by a crash keeps its old mode through O_CREAT
            f.write(json.dumps({"keys": records}, indent=1))
            f.flush()
            os.fsync(fd)
        os.replace(tmp, self.path)
        folder = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)

    def _parse(self, data: bytes) -> _Keys:
        try:
            records = json.loads(data)["keys"]
            return {
                key_id: (
                    ApiKey(
                        key_id,
                        r["name"],
                        frozenset(r["scopes"]),
                        datetime.fromisoformat(r["created_at"]),
                        None if r["revoked_at"] is None else datetime.fromisoformat(r["revoked_at"]),
                    ),
                    r["sha256"],
                )
                for key_id, r in records.items()
            }
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise RetainError(f"API key file {self.path} is damaged ({type(e).__name__})") from e


class KeyTable(KeyRing):
    """The keys in the `api_keys` table of the decision log's database, for hosts that share that
    database but not the store's folder.

    Each process keeps a copy, read again when older than `refresh_seconds`, by one thread while the
    others go on with the copy. While the database cannot be read the last copy stays in use (a warning
    says so): an outage of the log's database must not refuse every caller, and what it delays is a
    revocation, by as long as the outage lasts. With no copy yet, `DecisionLogUnavailable` (the API
    answers 503 `keys_unavailable`).
    """

    def __init__(self, log: DecisionLog, refresh_seconds: float = TABLE_REFRESH_SECONDS) -> None:
        self.log = log
        self.where = f"the api_keys table of {log.url}"
        self._refresh_seconds = refresh_seconds
        self._lock = threading.Lock()
        #: `time.monotonic()` when read, and the keys
        self._copy: tuple[float, _Keys] | None = None
        self._outage = Outage("API keys: the api_keys table", "the keys last read stay in use")

    def _current(self) -> _Keys:
        copy = self._copy
        if copy is not None and time.monotonic() - copy[0] < self._refresh_seconds:
            return copy[1]
        if not self._lock.acquire(blocking=copy is None):
            assert copy is not None
            return copy[1]  # another thread is reading the table now
        try:
            copy = self._copy
            if copy is not None and time.monotonic() - copy[0] < self._refresh_seconds:
                return copy[1]
            try:
                with self.log.connect() as conn:
                    keys = _from_rows(conn.execute(sa.select(API_KEYS)).mappings())
                self._outage.ended()
            except DecisionLogUnavailable as e:
                if copy is None:
                    raise
                self._outage.failed(e)
                keys = copy[1]
            self._copy = (time.monotonic(), keys)
            return keys
        finally:
            self._lock.release()

    @contextlib.contextmanager
    def _writing(self) -> Iterator[_Keys]:
        """Read the table, let the block change the keys, write what changed: one transaction."""
        with self.log.connect(write=True) as conn:
            before = _from_rows(conn.execute(sa.select(API_KEYS)).mappings())
            keys = dict(before)
            yield keys
            for key_id, (key, digest) in keys.items():
                if key_id not in before:
                    conn.execute(API_KEYS.insert(), _row(key, digest))
                elif before[key_id] != (key, digest):
                    conn.execute(API_KEYS.update().where(API_KEYS.c.key_id == key_id), _row(key, digest))
        self._copy = None

    def adopt(self, other: KeyRing) -> list[ApiKey]:
        """Copy in the keys of `other` (the store's key file, when a deployment moves to the database)
        that this table lacks, digests and revocations included; the ones copied."""
        theirs = other._current()
        with self._writing() as keys:
            added = [key for key_id, (key, _) in theirs.items() if key_id not in keys]
            keys.update({key.key_id: theirs[key.key_id] for key in added})
        return sorted(added, key=lambda k: k.created_at)


def _row(key: ApiKey, digest: str) -> dict[str, Any]:
    return {
        "key_id": key.key_id,
        "name": key.name,
        "scopes": ",".join(sorted(key.scopes)),
        "sha256": digest,
        "created_at": key.created_at,
        "revoked_at": key.revoked_at,
    }


def _from_rows(rows: Iterable[sa.RowMapping]) -> _Keys:
    return {
        r["key_id"]: (
            ApiKey(
                r["key_id"], r["name"], frozenset(r["scopes"].split(",")), r["created_at"], r["revoked_at"]
            ),
            r["sha256"],
        )
        for r in rows
    }


def key_ring(store: Store, settings: Settings, log: DecisionLog | None = None) -> KeyRing:
    """The keys where `serve.keys` says: the store's file, or the decision log's database (`log`, else
    the one the settings name)."""
    if settings.serve.keys == "database":
        return KeyTable(log if log is not None else DecisionLog.for_store(store, settings))
    return KeyFile.for_store(store)
