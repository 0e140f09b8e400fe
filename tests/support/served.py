"""A store built by the real pipeline and a real `retain serve` over it (API, cockpit, uplift tests)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Protocol

import requests

from core.settings import Settings
from features.stored import read_features
from registry.tracking import log_and_register
from serving.keys import KeyFile
from simulate import SimConfig
from store.delta import Store
from tests.support.worlds import published_store
from training.config import TrainConfig
from training.result import TrainResult
from training.run import train_model

SCOPED = ("scores:read", "actions:read", "actions:write", "admin")


@dataclass
class World:
    root: Path
    store: Store
    settings: Settings
    latest: date
    active: list[str]
    churn: TrainResult
    keys: dict[str, str] = field(default_factory=dict)
    #: accounts whose latest feature row predates the latest cutoff: they cancelled or lapsed
    departed: list[str] = field(default_factory=list)


def make_world(root: Path) -> World:
    """400 simulated accounts ingested, built, published online, both models trained and champions, and
    a key per scope (plus a revoked one)."""
    store, settings = published_store(root, SimConfig(accounts=400, days=420, seed=5, start=date(2024, 7, 1)))
    config = TrainConfig(n_trials=2, plots=False, min_train_rows=200, min_window_positives=5)
    results = {kind: train_model(store, settings, kind, config) for kind in ("churn", "expansion")}
    for kind, result in results.items():
        log_and_register(store, settings, result, kind)
    table = read_features(store, columns=["account_id", "cutoff"]).to_pandas()
    latest = table["cutoff"].max()
    active = sorted(table.loc[table["cutoff"] == latest, "account_id"])
    departed = sorted(set(table["account_id"]) - set(active))
    ring = KeyFile.for_store(store)
    keys = {scope: ring.create([scope], name=f"test {scope}")[1] for scope in SCOPED}
    revoked, keys["revoked"] = ring.create(["admin"], name="revoked")
    ring.revoke(revoked.key_id)
    return World(root, store, settings, latest.date(), active, results["churn"], keys, departed)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Keyed(Protocol):
    """What `Server` needs of a world: the store to serve, and API keys by name (a `World`, or a bare
    store with keys for a test that needs no model)."""

    @property
    def store(self) -> Store: ...

    @property
    def keys(self) -> dict[str, str]: ...


class Server:
    """`retain serve` in a subprocess; its log is kept to check what it never prints."""

    def __init__(self, world: Keyed, log: Path, as_of: date, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.world = world
        self.log = log
        self.as_of = as_of
        command = [sys.executable, "-m", "retain", "serve", "--store", str(world.store.root)]
        command += ["--port", str(self.port), "--as-of", as_of.isoformat(), "--access-log"]
        self.process = subprocess.Popen(
            command,
            env={**os.environ, **env},
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {log.read_text()[-3000:]}")
            try:
                if requests.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):  # not listening yet, or busy starting
                time.sleep(0.2)
        self.stop()  # no test holds it to stop it later
        raise RuntimeError("server did not start in 90 s")

    def call(self, method: str, path: str, key: str | None = "admin", **kwargs: Any) -> requests.Response:
        headers = kwargs.pop("headers", {})
        if key is not None:
            headers["Authorization"] = f"Bearer {self.world.keys.get(key, key)}"
        return requests.request(method, f"{self.url}{path}", headers=headers, timeout=30, **kwargs)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def signed_in(server: Server, key: str) -> requests.Session:
    """A browser signed in through the cockpit's form: the page's token and cookie first, then the key."""
    browser = requests.Session()
    page = browser.get(f"{server.url}/ui/login", timeout=30)
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    answer = browser.post(
        f"{server.url}/ui/login", data={"csrf": token, "key": key}, allow_redirects=False, timeout=30
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/ui", answer.text
    return browser


def model_answered(server: Server, world: World) -> list[str]:
    """Active accounts the model scores (a few may fall back for a value outside training)."""
    body = server.call("POST", "/v1/score", json={"accounts": [{"account_id": a} for a in world.active]})
    assert body.status_code == 200, body.text
    return [r["account_id"] for r in body.json()["results"] if r["source"] == "model"]


def wait_for(check: Any, seconds: float = 20.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)
