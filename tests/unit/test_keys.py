"""API keys: hashed at rest, checked in microseconds, revoked across processes without a restart."""

from __future__ import annotations

import json
import secrets
import stat
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.errors import RetainError
from retain.cli import app, main
from serving.keys import SCOPES, KeyFile, parse_scopes
from store.delta import Store


@pytest.fixture
def ring(tmp_path: Path) -> KeyFile:
    return KeyFile.for_store(Store(tmp_path / "store"))


def test_a_created_key_authenticates_with_its_scopes_until_revoked(ring: KeyFile) -> None:
    key, text = ring.create({"scores:read", "actions:read"}, name="crm sync")
    found = ring.authenticate(text)
    assert found == key
    assert found.scopes == {"scores:read", "actions:read"} and found.name == "crm sync"
    assert found.created_at.utcoffset() is not None and found.revoked_at is None

    revoked = ring.revoke(key.key_id)
    assert revoked.revoked_at is not None
    assert ring.authenticate(text) is None
    assert ring.revoke(key.key_id).revoked_at == revoked.revoked_at
    assert ring.list() == [revoked]


def test_wrong_malformed_and_unknown_keys_are_refused(ring: KeyFile) -> None:
    key, text = ring.create({"admin"})
    other = KeyFile(ring.path.with_name("other.json")).create({"admin"})[1]
    wrong_secret = f"rk_{key.key_id}_{secrets.token_urlsafe(32)}"
    for presented in (
        wrong_secret,
        other,
        "",
        "rk_",
        text[:-1],
        text + "x",
        text + "\n",
        f"Bearer {text}",
        # the id is case-sensitive (an id of digits only has no other case: one in about 280)
        *([text.replace(key.key_id, key.key_id.upper())] if key.key_id.upper() != key.key_id else []),
        "rk_" + "0" * 12 + "_" + "a" * 43,
    ):
        assert ring.authenticate(presented) is None, presented
    assert ring.authenticate(text) == key


def test_no_file_means_no_keys(ring: KeyFile) -> None:
    assert ring.list() == [] and ring.authenticate("rk_" + "0" * 12 + "_" + "a" * 43) is None
    with pytest.raises(RetainError, match="no API key with id 'abc'"):
        ring.revoke("abc")


def test_scopes_parse_and_admin_allows_everything() -> None:
    assert parse_scopes("scores:read, actions:read,") == {"scores:read", "actions:read"}
    with pytest.raises(RetainError, match=r"unknown scope 'scores:write'; scopes are scores:read, "):
        parse_scopes("scores:read,scores:write")
    with pytest.raises(RetainError, match="no scopes given"):
        parse_scopes(" , ")


def test_allows(ring: KeyFile) -> None:
    admin, _ = ring.create({"admin"})
    reader, _ = ring.create(["scores:read"])
    assert all(admin.allows(scope) for scope in SCOPES)
    assert reader.allows("scores:read")
    assert not reader.allows("actions:write") and not reader.allows("admin")
    with pytest.raises(RetainError, match="no scopes given"):
        ring.create([])


def test_the_file_holds_only_a_hash_and_is_private(ring: KeyFile) -> None:
    key, text = ring.create({"scores:read"})
    secret = text.removeprefix(f"rk_{key.key_id}_")
    assert len(secret) == 43
    for path in ring.path.parent.iterdir():
        content = path.read_text()
        assert text not in content and secret not in content
    assert stat.S_IMODE(ring.path.stat().st_mode) == 0o600
    assert "sha256" not in json.dumps(key.as_dict())


def test_a_revoke_by_another_process_reaches_a_running_ring(ring: KeyFile) -> None:
    key, text = ring.create({"scores:read"})
    assert ring.authenticate(text) == key  # parsed and cached
    elsewhere = KeyFile(ring.path)
    new_key, new_text = elsewhere.create({"actions:read"})
    assert ring.authenticate(new_text) == new_key
    elsewhere.revoke(key.key_id)
    assert ring.authenticate(text) is None


def test_a_key_is_found_live_by_its_id_until_another_process_revokes_it(ring: KeyFile) -> None:
    key, _ = ring.create({"scores:read"}, name="csm")
    assert ring.live(key.key_id) == key
    assert ring.live("000000000000") is None
    KeyFile(ring.path).revoke(key.key_id)  # another process: only the file changes
    assert ring.live(key.key_id) is None


def test_the_file_is_parsed_once_while_it_does_not_change(
    ring: KeyFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, text = ring.create({"scores:read"})
    parses = 0
    parse = KeyFile._parse

    def counted(self: KeyFile, data: bytes) -> object:
        nonlocal parses
        parses += 1
        return parse(self, data)

    monkeypatch.setattr(KeyFile, "_parse", counted)
    for _ in range(1_000):
        assert ring.authenticate(text) is not None
    assert parses == 1


def test_concurrent_creates_all_survive(ring: KeyFile) -> None:
    def create_some(worker: int) -> list[str]:
        own = KeyFile(ring.path)  # its own lock file handle, as a second CLI call has
        return [own.create({"scores:read"}, name=f"{worker}-{i}")[1] for i in range(5)]

    with ThreadPoolExecutor(8) as pool:
        texts = [text for batch in pool.map(create_some, range(8)) for text in batch]
    assert len(ring.list()) == 40
    assert all(ring.authenticate(text) is not None for text in texts)


def test_cli_create_prints_the_key_last_and_revoke_refuses_it(tmp_path: Path) -> None:
    runner = CliRunner()
    store = ["--store", str(tmp_path)]
    created = runner.invoke(
        app, ["keys", "create", "--scopes", "scores:read,actions:read", "--name", "crm", *store, "--json"]
    )
    assert created.exit_code == 0, created.output
    summary_text, text = created.stdout.rstrip("\n").rsplit("\n", 1)
    summary = json.loads(summary_text)
    assert summary["scopes"] == ["actions:read", "scores:read"] and summary["name"] == "crm"
    assert "once" in summary["note"] and text not in summary_text
    ring = KeyFile.for_store(Store(tmp_path))
    key = ring.authenticate(text)
    assert key is not None and key.key_id == summary["key_id"]

    listed = runner.invoke(app, ["keys", "list", *store, "--json"])
    assert listed.exit_code == 0, listed.output
    assert [k["key_id"] for k in json.loads(listed.stdout)] == [key.key_id]
    assert text.removeprefix(f"rk_{key.key_id}_") not in listed.stdout and "sha256" not in listed.stdout

    revoked = runner.invoke(app, ["keys", "revoke", key.key_id, *store, "--json"])
    assert revoked.exit_code == 0, revoked.output
    assert json.loads(revoked.stdout)["revoked_at"] is not None
    assert ring.authenticate(text) is None


def test_cli_tells_a_person_what_it_did_and_still_prints_the_key_last(tmp_path: Path) -> None:
    runner = CliRunner()
    store = ["--store", str(tmp_path)]
    created = runner.invoke(app, ["keys", "create", "--scopes", "admin", "--name", "demo", *store])
    assert created.exit_code == 0, created.output
    summary, text = created.stdout.rstrip("\n").rsplit("\n", 1)
    key = KeyFile.for_store(Store(tmp_path)).authenticate(text)
    assert key is not None
    assert f"Created API key {key.key_id} (demo) with scopes admin" in summary and "shown once" in summary

    listed = runner.invoke(app, ["keys", "list", *store])
    assert listed.exit_code == 0, listed.output
    assert key.key_id in listed.stdout and "demo" in listed.stdout and not listed.stdout.startswith("[")
    revoked = runner.invoke(app, ["keys", "revoke", key.key_id, *store])
    assert revoked.stdout.startswith(f"Revoked API key {key.key_id}")


def test_cli_unknown_scope_exits_2_with_the_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["keys", "create", "--scopes", "scores:raed", "--store", str(tmp_path)]
    result = CliRunner().invoke(app, args)
    assert isinstance(result.exception, RetainError)
    assert "unknown scope 'scores:raed'" in str(result.exception)

    monkeypatch.setattr(sys, "argv", ["retain", *args])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    assert "unknown scope 'scores:raed'" in capsys.readouterr().err
    assert not KeyFile.for_store(Store(tmp_path)).path.exists()
