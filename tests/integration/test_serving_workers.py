"""`retain serve` with several worker processes: cockpit sessions in Redis hold a key's id, never the key,
so a login made in one worker holds in every other, and a revocation ends it at once; a reload reaches
every worker, and every scrape counts every worker's answers."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis
import requests

from core.settings import CockpitSettings
from registry.tracking import client
from serving.cockpit.sessions import COOKIE, RedisSessions
from serving.keys import KeyFile
from tests.support.served import Server, World, free_port, signed_in, wait_for

REDIS_ENV = {"RETAIN_SERVE__WORKERS": "2", "RETAIN_COCKPIT__SESSIONS": "redis"}


@pytest.fixture(scope="module")
def workers(
    served_world: World, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """Two workers with their sessions in Redis, started once: each test signs in with a browser of its
    own, and the one that revokes a key revokes its own."""
    log = tmp_path_factory.mktemp("workers") / "serve.log"
    server = Server(served_world, log, served_world.latest, RETAIN_REDIS_URL=redis_url, **REDIS_ENV)
    yield server
    server.stop()


def page(server: Server, browser: requests.Session, path: str) -> requests.Response:
    """On a new connection each time, so the operating system hands requests to either worker."""
    return browser.get(
        f"{server.url}{path}", headers={"Connection": "close"}, allow_redirects=False, timeout=60
    )


def test_one_sign_in_holds_across_two_workers(workers: Server, served_world: World) -> None:
    browser = signed_in(workers, served_world.keys["scores:read"])
    paths = ["/ui", "/ui?page=2"] + [f"/ui/accounts/{a}" for a in served_world.active[:18]]
    answers = {path: page(workers, browser, path).status_code for path in paths}
    assert answers == dict.fromkeys(paths, 200)
    started = set(re.findall(r"Started server process \[(\d+)\]", workers.log.read_text()))
    assert len(started) == 2, workers.log.read_text()[-2000:]


def test_the_session_in_redis_holds_the_keys_id_and_a_revocation_ends_it(
    workers: Server, served_world: World, redis_url: str
) -> None:
    ring = KeyFile.for_store(served_world.store)
    key, text = ring.create(["scores:read"], name="revoked while signed in")
    browser = signed_in(workers, text)
    stored_as = RedisSessions.PREFIX + hashlib.sha256(browser.cookies[COOKIE].encode()).hexdigest()
    client = redis.Redis.from_url(redis_url)
    held = json.loads(client.get(stored_as))  # type: ignore[arg-type]
    assert set(held) == {"key_id", "name", "csrf"} and held["key_id"] == key.key_id
    assert text not in json.dumps(held)
    ttl = client.pttl(stored_as) / 1000
    assert CockpitSettings().session_hours * 3600 - 60 < ttl <= CockpitSettings().session_hours * 3600
    assert page(workers, browser, "/ui").status_code == 200

    ring.revoke(key.key_id)
    gone = page(workers, browser, "/ui")
    assert gone.status_code == 303 and gone.headers["location"].startswith("/ui/login")
    assert client.exists(stored_as) == 0


def test_several_workers_with_sessions_in_memory_refuse_to_start(served_world: World) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("RETAIN_COCKPIT__")}
    command = [sys.executable, "-m", "retain", "serve", "--store", str(served_world.store.root)]
    command += ["--port", str(free_port()), "--workers", "2"]
    done = subprocess.run(
        command, env={**environment, "COLUMNS": "200"}, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "RETAIN_COCKPIT__SESSIONS" in lines[0]


def test_a_redis_that_is_down_is_a_503_page_not_a_500(
    served_world: World, tmp_path_factory: pytest.TempPathFactory
) -> None:
    log = tmp_path_factory.mktemp("redis_down") / "serve.log"
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    server = Server(
        served_world, log, served_world.latest, RETAIN_COCKPIT__SESSIONS="redis", RETAIN_REDIS_URL=nowhere
    )
    try:
        browser = requests.Session()
        shown = browser.get(f"{server.url}/ui/login", timeout=30)
        assert shown.status_code == 200
        token = re.search(r'name="csrf" value="([^"]+)"', shown.text).group(1)  # type: ignore[union-attr]
        key = served_world.keys["scores:read"]
        posted = browser.post(f"{server.url}/ui/login", data={"csrf": token, "key": key}, timeout=30)
        assert posted.status_code == 503 and "session store is unreachable" in posted.text
        browser.cookies.set(COOKIE, "a-token-from-before")
        assert page(server, browser, "/ui").status_code == 503
    finally:
        server.stop()


def worker_ids(server: Server) -> list[int]:
    """The process ids of the server's workers, from its log."""
    return sorted(
        {int(pid) for pid in re.findall(r"Started server process \[(\d+)\]", server.log.read_text())}
    )


@contextmanager
def answering(server: Server, worker: int) -> Iterator[None]:
    """Only `worker` answers: the others are stopped (SIGSTOP) and take no connection until the block ends,
    so the test, not the operating system, says which worker a request reaches."""
    others = [pid for pid in worker_ids(server) if pid != worker]
    for pid in others:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in others:
            os.kill(pid, signal.SIGCONT)


def churn_version(server: Server, world: World) -> str | None:
    """The churn champion a risk answer came from, on a new connection."""
    answer = server.call("GET", f"/v1/accounts/{world.active[0]}/risk", headers={"Connection": "close"})
    return (answer.json()["models"]["churn"] or {}).get("version")


def test_a_reload_reaches_every_worker(
    served_world: World, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Issue 51, failure 9: `POST /v1/admin/reload` reloaded the worker that took it; 7 of 20 answers after
    it still came from the champion before. No alias poller here: only the reload can move them."""
    log = tmp_path_factory.mktemp("reload_workers") / "serve.log"
    env = {**REDIS_ENV, "RETAIN_REDIS_URL": redis_url, "RETAIN_SERVE__RELOAD_SECONDS": "0"}
    server = Server(served_world, log, served_world.latest, **env)
    mlflow = client(served_world.store, served_world.settings)
    try:
        first, second = worker_ids(server)
        for worker in (first, second):
            with answering(server, worker):
                assert churn_version(server, served_world) == "1"
        mlflow.delete_registered_model_alias("churn", "champion")
        try:
            with answering(server, first):
                assert server.call("POST", "/v1/admin/reload").json()["models"]["churn"] is None
            with answering(server, second):
                assert churn_version(server, served_world) is None
        finally:
            mlflow.set_registered_model_alias("churn", "champion", "1")
        with answering(server, second):
            assert server.call("POST", "/v1/admin/reload").json()["models"]["churn"]["version"] == "1"
        with answering(server, first):
            assert churn_version(server, served_world) == "1"
    finally:
        server.stop()


def counted(server: Server, metric: str, route: str = "") -> float:
    """A counter's total over its series (those of `route`, if given) in one scrape, on a new connection."""
    text = server.call("GET", "/metrics", key=None, headers={"Connection": "close"}).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(f"{metric}{{" if route else f"{metric} ")
        and (not route or f'route="{route}"' in line)
    )


def test_every_scrape_counts_every_workers_answers(workers: Server, served_world: World) -> None:
    """Issue 51, failure 9: each `/metrics` scrape showed one worker's counters, so they jumped back and
    forth between scrapes. Here one worker answers 5 risk requests and the other 15: a scrape of either
    counts 20 more than before, and the same decision log entries written."""
    route = "/v1/accounts/{account_id}/risk"
    first, second = worker_ids(workers)
    before = {}
    for worker in (first, second):
        with answering(workers, worker):
            before[worker] = counted(workers, "retain_requests_total", route)
    assert before[first] == before[second]
    for worker, accounts in ((first, served_world.active[:5]), (second, served_world.active[5:20])):
        with answering(workers, worker):
            for account in accounts:
                path = f"/v1/accounts/{account}/risk"
                assert workers.call("GET", path, headers={"Connection": "close"}).status_code == 200
    # a request is counted just after its answer is sent, so a worker stopped right then counts it on waking
    assert wait_for(lambda: counted(workers, "retain_requests_total", route) == before[first] + 20)
    for worker in (first, second):
        with answering(workers, worker):
            assert counted(workers, "retain_requests_total", route) == before[first] + 20

    def written_alike() -> bool:  # each worker copies its log's counts every second
        written = []
        for worker in (first, second):
            with answering(workers, worker):
                written.append(counted(workers, "retain_decision_log_written_total"))
        return written[0] == written[1] >= 20

    assert wait_for(written_alike)
