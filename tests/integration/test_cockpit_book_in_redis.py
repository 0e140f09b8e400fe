"""The cockpit's book shared through Redis (`RETAIN_COCKPIT__BOOK=redis`): several workers score it once
and show the same one; a worker never shows a book scored from other champions; and without Redis the
cockpit still serves, each worker scoring its own, and shares again once Redis is back."""

from __future__ import annotations

import dataclasses
import logging
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests

from core.settings import CockpitSettings, ServeSettings
from serving.cockpit.book import BookSource, book_from_bytes
from serving.cockpit.keeper import BOOK_KEY, BookKeeper, book_key
from serving.cockpit.shared_values import LOCK, RedisSharedValues
from serving.resources import Resources
from tests.support.served import Server, World, free_port, wait_for
from tests.support.services import unavailable

#: a database of its own, emptied of books before each test: a book left by another test is not scored again
BOOK_DB = 7
SCORED = re.compile(r"cockpit book: (\d+) accounts scored")
READ = re.compile(r"cockpit book: (\d+) accounts read from Redis")
REDIS_DOWN = "cockpit book: Redis cannot be reached"


@pytest.fixture
def book_redis(redis_url: str) -> Iterator[str]:
    url = f"{redis_url.rsplit('/', 1)[0]}/{BOOK_DB}"
    client = redis.Redis.from_url(url)
    for key in client.scan_iter(match=f"{BOOK_KEY}*"):
        client.delete(key)
    yield url
    for key in client.scan_iter(match=f"{BOOK_KEY}*"):
        client.delete(key)


def book_keys(url: str) -> list[bytes]:
    found = redis.Redis.from_url(url).scan_iter(match=f"{BOOK_KEY}*")
    return [k for k in found if not k.endswith(LOCK.encode())]


def book_page(server: Server, world: World, path: str = "/ui") -> requests.Response:
    """A cockpit page with a bearer key, on a new connection each time (either worker may answer it)."""
    headers = {"Authorization": f"Bearer {world.keys['scores:read']}", "Connection": "close"}
    return requests.get(f"{server.url}{path}", headers=headers, timeout=60)


def from_the_book(page: requests.Response) -> str:
    """What an account page shows from the book: its trend charts and its timeline of events."""
    assert page.status_code == 200, page.text[-2000:]
    found = re.findall(r"<svg.*?</svg>|<ol class=\"timeline\">.*?</ol>", page.text, re.S)
    return "".join(found)


def shown(page: requests.Response) -> str:
    """What the page says of its book: how many accounts, features as of when, scored when."""
    assert page.status_code == 200, page.text[-2000:]
    found = re.search(r"(\d+) active accounts.*?Features as of (\S+); scored (\S+)\.", page.text, re.S)
    assert found is not None, page.text[:2000]
    return found.group(0)


def test_two_workers_score_the_book_once_and_show_the_same_one(
    served_world: World, book_redis: str, tmp_path: Path
) -> None:
    env = {"RETAIN_SERVE__WORKERS": "2", "RETAIN_COCKPIT__SESSIONS": "redis", "RETAIN_COCKPIT__BOOK": "redis"}
    env["RETAIN_REDIS_URL"] = book_redis
    server = Server(served_world, tmp_path / "serve.log", served_world.latest, **env)
    try:
        pages = {shown(book_page(server, served_world)) for _ in range(12)}
        assert wait_for(lambda: READ.search(server.log.read_text()), seconds=30), "the other worker read it"
        log = server.log.read_text()
        assert len(set(re.findall(r"Started server process \[(\d+)\]", log))) == 2, log[-3000:]
        assert len(pages) == 1, pages
        assert len(SCORED.findall(log)) == 1 and SCORED.findall(log) == READ.findall(log), log[-3000:]
        [key] = book_keys(book_redis)
        book = book_from_bytes(redis.Redis.from_url(book_redis).hget(key, "value") or b"")
        assert (
            book is not None
            and book.scored_from.churn is not None
            and book.scored_from.replay == served_world.latest
        )
        assert f"{len(book.entries)} active accounts" in pages.pop()
        for account in served_world.active[:6]:  # the events and trends read from Redis show as scored
            path = f"/ui/accounts/{account}"
            seen = {from_the_book(book_page(server, served_world, path)) for _ in range(4)}
            assert len(seen) == 1 and 'class="timeline"' in seen.pop(), account
    finally:
        server.stop()


@pytest.fixture
def resources(served_world: World, book_redis: str) -> Iterator[Resources]:
    """The served world's resources in this process, with the book in Redis."""
    settings = served_world.settings.model_copy(
        update={
            "redis_url": book_redis,
            "cockpit": CockpitSettings(book="redis"),
            "serve": ServeSettings(as_of=served_world.latest, reload_seconds=0),
        }
    )
    loaded = Resources(served_world.store, settings)
    loaded.open()
    yield loaded
    loaded.close()


def test_a_worker_on_other_champions_never_shows_the_book_scored_by_the_old_ones(
    resources: Resources, book_redis: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="retain.serving")
    scored = BookKeeper(resources).get()
    assert BookKeeper(resources).get() == scored, "a second worker reads the book in Redis"
    assert len(SCORED.findall(caplog.text)) == 1 and len(READ.findall(caplog.text)) == 1
    client = redis.Redis.from_url(book_redis)
    old_key = book_key(scored.scored_from)
    kept = client.hgetall(old_key)

    # a reload to other champions (none: the rules answer) swaps `loaded`, as `Resources.reload` does
    resources.loaded = dataclasses.replace(resources.loaded, churn=None)
    new_source = BookSource.of(resources, resources.loaded)
    # the old book planted under the new source's key, as fresh as can be, is not shown either
    client.hset(book_key(new_source), mapping={"at": repr(time.time()), "value": kept[b"value"]})
    rules = BookKeeper(resources).get()
    assert rules.scored_from == new_source and rules.scored_from.churn is None
    assert {e.source for e in rules.entries} == {"rules"} and scored.scored_from.churn is not None
    assert "is from" in caplog.text and len(SCORED.findall(caplog.text)) == 2
    assert client.hgetall(old_key) == kept, "the old champions' book is left as it was"
    stored = book_from_bytes(client.hget(book_key(new_source), "value") or b"")
    assert stored == rules, "the planted book was replaced by the one scored from the new source"


def test_shared_values_keep_the_newest_and_only_a_lock_holder_releases_its_lock(book_redis: str) -> None:
    values, client = RedisSharedValues(book_redis), redis.Redis.from_url(book_redis)
    key = f"{BOOK_KEY}test-{uuid.uuid4().hex}"
    values.put(key, 200.5, b"newer")
    values.put(key, 100.0, b"older, from a scorer whose lock expired")
    assert values.get(key) == (200.5, b"newer")
    assert 0 < client.pttl(key) <= RedisSharedValues.KEEP_SECONDS * 1000
    with values.lock(key) as first:
        with values.lock(key) as second:
            assert first and not second
        assert client.exists(key + LOCK), "the one that did not take it does not release it"
    assert not client.exists(key + LOCK)
    with values.lock(key) as taken:
        assert taken
        client.set(key + LOCK, "another worker's, after this one expired")
    assert client.get(key + LOCK) == b"another worker's, after this one expired"


class OwnRedis:
    """A Redis server of this test's own, to stop and start again."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            unavailable("redis-server is not installed")
        self.command = [str(binary), "--port", str(free_port()), "--bind", "127.0.0.1"]
        self.command += ["--save", "", "--appendonly", "no", "--dir", str(folder)]
        self.url = f"redis://127.0.0.1:{self.command[2]}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert wait_for(self._answers, seconds=10), "redis-server did not start"

    def _answers(self) -> bool:
        try:
            return bool(redis.Redis.from_url(self.url).ping())
        except redis.ConnectionError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


def test_without_redis_the_cockpit_serves_its_own_book_and_shares_again_when_redis_is_back(
    served_world: World, tmp_path: Path
) -> None:
    own = OwnRedis(tmp_path)  # not started: Redis is down as the server starts
    env = {"RETAIN_REDIS_URL": own.url, "RETAIN_COCKPIT__BOOK": "redis", "RETAIN_COCKPIT__BOOK_SECONDS": "1"}
    server = Server(served_world, tmp_path / "serve.log", served_world.latest, **env)
    try:
        for _ in range(3):  # three books scored here, one warning
            shown(book_page(server, served_world))
            time.sleep(1.2)
        assert server.log.read_text().count(REDIS_DOWN) == 1
        assert len(SCORED.findall(server.log.read_text())) >= 2

        own.start()
        assert wait_for(lambda: shown(book_page(server, served_world)) and book_keys(own.url), seconds=20)
        assert "cockpit book: Redis answers again" in server.log.read_text()

        own.stop()
        for _ in range(3):
            shown(book_page(server, served_world))
            time.sleep(0.5)
        assert wait_for(lambda: server.log.read_text().count(REDIS_DOWN) == 2, seconds=10)
    finally:
        own.stop()
        server.stop()
