"""API keys in the decision log's database (`serve.keys = database`), for hosts that share the database but
not the store's folder: on SQLite and a real PostgreSQL, through the CLI, and against a real `retain serve`.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.errors import RetainError
from core.settings import ServeSettings, Settings
from serving.keys import KeyFile, KeyTable, key_ring
from store.decision_log import DecisionLog, DecisionLogUnavailable
from store.delta import Store
from tests.support.served import Server, World, wait_for


@pytest.fixture
def hosts(database_url: str) -> Iterator[tuple[KeyTable, KeyTable]]:
    """Two hosts' views of one table, each with its own connections and copy."""
    logs = [DecisionLog(database_url), DecisionLog(database_url)]
    yield KeyTable(logs[0], refresh_seconds=0.2), KeyTable(logs[1], refresh_seconds=0.2)
    for log in logs:
        log.close()


def test_a_key_made_on_one_host_works_on_another_until_revoked_there(
    hosts: tuple[KeyTable, KeyTable],
) -> None:
    here, there = hosts
    assert there.list() == []  # read once: its copy is now empty
    key, text = here.create(["scores:read"], name="crm")
    assert here.authenticate(text) == key and here.live(key.key_id) == key
    assert wait_for(lambda: there.authenticate(text) == key, 5)
    assert there.authenticate(text.replace(text[-4:], "AAAA")) is None

    revoked = there.revoke(key.key_id)
    assert revoked.revoked_at is not None and there.authenticate(text) is None  # its own write: at once
    assert wait_for(lambda: here.authenticate(text) is None and here.live(key.key_id) is None, 5)
    assert [k.key_id for k in here.list()] == [key.key_id] and here.list()[0].revoked_at == revoked.revoked_at
    with pytest.raises(RetainError, match="no API key with id 'nope' in the api_keys table"):
        here.revoke("nope")


def test_while_the_database_is_away_the_last_keys_read_stay_in_use(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An outage of the log's database must not refuse every caller; a host that never read the keys
    cannot know them, and says so."""
    folder = tmp_path / "logs"
    folder.mkdir()
    log = DecisionLog(f"sqlite:///{folder}/decisions.db")
    ring = KeyTable(log, refresh_seconds=0.05)
    _, text = ring.create(["admin"])
    assert ring.authenticate(text) is not None
    folder.rename(tmp_path / "away")
    try:
        time.sleep(0.1)
        with caplog.at_level(logging.WARNING, logger="retain.serving"):
            assert ring.authenticate(text) is not None
        assert "stay in use" in caplog.text
        with pytest.raises(DecisionLogUnavailable):
            KeyTable(DecisionLog(f"sqlite:///{folder}/decisions.db")).authenticate(text)
    finally:
        (tmp_path / "away").rename(folder)
    log.close()


def test_the_key_file_is_adopted_once_with_its_digests_and_revocations(
    tmp_path: Path, database_url: str
) -> None:
    file = KeyFile(tmp_path / "api_keys.json")
    live, live_text = file.create(["scores:read"], name="live")
    gone, gone_text = file.create(["admin"], name="gone")
    file.revoke(gone.key_id)
    log = DecisionLog(database_url)
    table = KeyTable(log)
    assert [k.key_id for k in table.adopt(file)] == [live.key_id, gone.key_id]
    assert table.authenticate(live_text) == live and table.authenticate(gone_text) is None
    assert table.adopt(file) == []
    log.close()


def test_key_ring_follows_the_setting(tmp_path: Path) -> None:
    store = Store(tmp_path)
    assert isinstance(key_ring(store, Settings()), KeyFile)
    in_database = Settings(serve=ServeSettings(keys="database"))
    ring = key_ring(store, in_database)
    assert isinstance(ring, KeyTable) and ring.where.endswith("serving/decisions.db")


def retain(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "retain", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.service
def test_a_server_takes_its_keys_from_the_database_the_cli_writes(
    served_world: World, postgres_database: str, tmp_path: Path
) -> None:
    env = {"RETAIN_SERVE__KEYS": "database", "RETAIN_SERVE__DECISION_LOG_URL": postgres_database}
    store = ["--store", str(served_world.store.root)]
    server = Server(served_world, tmp_path / "serve.log", served_world.latest, **env)
    try:
        account = served_world.active[0]
        assert server.call("GET", f"/v1/accounts/{account}/risk").status_code == 401  # the file's keys
        created = retain("keys", "create", "--scopes", "scores:read", *store, **env)
        assert created.returncode == 0, created.stderr
        text = created.stdout.rstrip("\n").rsplit("\n", 1)[1]
        risk = f"/v1/accounts/{account}/risk"  # each host reads the table again within a second
        assert wait_for(lambda: server.call("GET", risk, key=text).status_code == 200, 5)

        imported = retain("keys", "import", *store, "--json", **env)
        assert imported.returncode == 0, imported.stderr
        assert len(json.loads(imported.stdout)) == len(KeyFile.for_store(served_world.store).list())
        assert wait_for(lambda: server.call("GET", risk).status_code == 200, 5)
        assert server.call("GET", risk, key="revoked").status_code == 401

        key_id = text.split("_")[1]
        assert retain("keys", "revoke", key_id, *store, **env).returncode == 0
        assert wait_for(lambda: server.call("GET", risk, key=text).status_code == 401, 5)
    finally:
        server.stop()
    refused = retain("keys", "import", *store)
    assert refused.returncode == 2 and "RETAIN_SERVE__KEYS=database" in refused.stderr
