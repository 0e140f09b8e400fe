"""A real `retain serve` whose data goes missing under it: Delta data files removed from the events,
accounts and interventions tables, pages of the online store's SQLite file overwritten. Ready means ready:
`/readyz` answers 503 naming what cannot be read, a reload keeps what was loaded, the cockpit keeps its
last good book and says it is stale, and nothing answers 500.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pytest
import requests

from core.contract import INTERVENTION_SCHEMA
from experiments.faults import pages_overwritten
from tests.support.served import Server, World, wait_for

#: cockpit pages and the API's book, each of which must answer while a table cannot be read
COCKPIT = ("/ui", "/ui/book.csv", "/v1/accounts")


@pytest.fixture
def world(served_world: World) -> World:
    return served_world


@contextmanager
def moved_aside(paths: list[Path], aside: Path) -> Iterator[None]:
    """The files or folders gone from where the table's log names them, and put back after."""
    aside.mkdir()
    moves = [(path, aside / f"{i}-{path.name}") for i, path in enumerate(paths)]
    for path, to in moves:
        shutil.move(path, to)
    try:
        yield
    finally:
        for path, to in moves:
            shutil.move(to, path)


def table_folder(world: World, table: str) -> Path:
    return Path(world.store.uri(table))


def readiness(server: Server) -> tuple[int, dict[str, Any]]:
    answer = server.call("GET", "/readyz", key=None)
    return answer.status_code, answer.json()


def ready(server: Server) -> bool:
    return readiness(server)[0] == 200


def book_page(server: Server) -> requests.Response:
    return server.call("GET", "/ui", key="scores:read")


def book_total(server: Server) -> int:
    answer = server.call("GET", "/v1/accounts", key="scores:read")
    assert answer.status_code == 200, answer.text
    return int(answer.json()["total"])


def cooling(server: Server, account_id: str) -> set[str]:
    """The account's actions held back by a cool-down."""
    path = f"/v1/accounts/{account_id}/next-best-actions?include_ineligible=true"
    answer = server.call("GET", path, key="actions:read")
    assert answer.status_code == 200, answer.text
    ineligible = answer.json()["ineligible"]
    return {i["action"] for i in ineligible if any("cool-down" in r for r in i["reasons"])}


def test_missing_event_files_keep_the_last_book_marked_stale_and_readyz_names_the_table(
    world: World, serve: Any, tmp_path: Path
) -> None:
    """Issue 51, failure 1: the book's refresh thread died (`Exception in thread retain-book`) and the old
    book showed without a warning; after a reload the cockpit and `/v1/accounts` answered 500, and
    `/readyz` 200."""
    server = serve(RETAIN_COCKPIT__BOOK_SECONDS="1")
    assert ready(server), readiness(server)
    total = book_total(server)
    days = sorted(table_folder(world, "events").glob("event_date=*"))[-14:]
    with moved_aside(days, tmp_path / "events-aside"):
        time.sleep(1.5)
        book_page(server)  # the book is old: scored again in the background
        shown = wait_for(lambda: "stale-book" in (p := book_page(server)).text and p)
        assert shown and shown.status_code == 200 and "the events table cannot be read" in shown.text

        reloaded = server.call("POST", "/v1/admin/reload")
        assert reloaded.status_code == 200, reloaded.text
        assert "the events table cannot be read" in reloaded.json()["errors"]["events"]
        for path in (*COCKPIT, f"/ui/accounts/{world.active[0]}"):
            answer = server.call("GET", path, key="scores:read")
            assert answer.status_code == 200, (path, answer.status_code, answer.text[-500:])
        assert "stale-book" in book_page(server).text
        assert book_total(server) == total
        status, body = readiness(server)
        assert status == 503 and not body["ready"] and not body["tables"]
        assert "the events table cannot be read" in body["errors"]["events"]
    assert ready(server), readiness(server)
    time.sleep(1.5)
    book_page(server)
    assert wait_for(lambda: "stale-book" not in book_page(server).text)
    assert "Traceback" not in server.log.read_text()


def test_a_missing_accounts_file_keeps_the_accounts_loaded_until_it_reads_again(
    world: World, serve: Any, tmp_path: Path
) -> None:
    """Issue 51, failure 2: a reload answered 200 and replaced the accounts with none: an empty book, every
    unknown id answered by the rules (was 404), and `/readyz` ready."""
    server = serve(RETAIN_SERVE__RELOAD_SECONDS="0.5")
    total = book_total(server)
    files = sorted(table_folder(world, "accounts").glob("*.parquet"))
    with moved_aside(files, tmp_path / "accounts-aside"):
        reloaded = server.call("POST", "/v1/admin/reload")
        assert reloaded.status_code == 200, reloaded.text
        assert book_total(server) == total
        unknown = server.call("GET", "/v1/accounts/no-such-account/risk")
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "account_not_found"
        said = reloaded.json()["errors"]["accounts"]
        assert "the accounts table cannot be read" in said and "still serving the" in said
        for path in (*COCKPIT, f"/ui/accounts/{world.active[0]}"):
            answer = server.call("GET", path, key="scores:read")
            assert answer.status_code == 200, (path, answer.status_code, answer.text[-500:])
        time.sleep(1)  # the poller sees the table still unreadable, and keeps the service not ready
        status, body = readiness(server)
        assert status == 503 and not body["tables"] and "accounts" in body["errors"]
    assert wait_for(lambda: ready(server)), readiness(server)  # the poller loaded it again
    assert book_total(server) == total


def recently_taken(world: World) -> str:
    """An account with an action taken in the week before the serving day: it is cooling down."""
    since = world.latest - timedelta(days=7)
    taken = world.store.read(
        "interventions", INTERVENTION_SCHEMA, ["account_id", "ts"], scan=ds.field("ts") >= since
    )
    accounts = set(taken.column("account_id").to_pylist()) & set(world.active)
    assert accounts, "no action taken in the last week"
    return sorted(accounts)[0]


def test_a_missing_interventions_file_keeps_the_cool_downs_and_the_account_page_answers(
    world: World, serve: Any, tmp_path: Path
) -> None:
    """Issue 51, failure 2: the account page answered 500, and a reload emptied the cool-downs."""
    server = serve()
    account = recently_taken(world)
    held = cooling(server, account)
    assert held
    files = sorted(table_folder(world, "interventions").glob("*.parquet"))
    with moved_aside(files, tmp_path / "interventions-aside"):
        reloaded = server.call("POST", "/v1/admin/reload")
        assert reloaded.status_code == 200, reloaded.text
        assert cooling(server, account) == held
        page = server.call("GET", f"/ui/accounts/{account}", key="scores:read")
        assert page.status_code == 503 and "the interventions table cannot be read" in page.text
        assert "the interventions table cannot be read" in reloaded.json()["errors"]["interventions"]
        status, body = readiness(server)
        assert status == 503 and "interventions" in body["errors"]
    assert "interventions" not in server.call("POST", "/v1/admin/reload").json()["errors"]
    assert ready(server), readiness(server)
    assert server.call("GET", f"/ui/accounts/{account}", key="scores:read").status_code == 200


def test_nothing_answers_500_while_tables_are_missing(world: World, serve: Any, tmp_path: Path) -> None:
    """Every table the service reads gone at once, from start: 503s and rules answers, never a 500."""
    folders = [table_folder(world, t) for t in ("accounts", "interventions", "features")]
    files = [f for folder in folders for f in folder.glob("*.parquet")]
    files += sorted(table_folder(world, "events").glob("event_date=*"))[-3:]
    with moved_aside(files, tmp_path / "all-aside"):
        server = serve()
        status, body = readiness(server)
        assert status == 503 and {"accounts", "interventions", "events", "features"} <= set(body["errors"])
        paths = [*COCKPIT, f"/ui/accounts/{world.active[0]}", f"/v1/accounts/{world.active[0]}/risk"]
        answers = {path: server.call("GET", path, key="admin").status_code for path in paths}
        assert 500 not in answers.values(), answers
    assert server.call("POST", "/v1/admin/reload").json()["errors"].keys() <= {"uplift"}
    assert ready(server)


def test_an_online_store_with_damaged_pages_is_not_ready(world: World, serve: Any) -> None:
    """Issue 51, failure 3: `/readyz` said ready while every account got rules answers ('database disk
    image is malformed'): it read a key no row holds, which never touched the damaged pages."""
    with pages_overwritten(world.store.feast_dir / "online.db"):
        server = serve()
        status, body = readiness(server)
        assert status == 503 and not body["store"], body
        assert "database disk image is malformed" in body["errors"]["online_store"]
        risk = server.call("GET", f"/v1/accounts/{world.active[0]}/risk")
        assert risk.status_code == 200 and risk.json()["source"] == "rules"
        assert risk.json()["fallback_reason"]["code"] == "feature_store_unavailable"


def test_readyz_is_fast_enough_to_poll(world: World, serve: Any) -> None:
    server = serve()
    started = time.perf_counter()
    for _ in range(5):
        assert requests.get(f"{server.url}/readyz", timeout=10).status_code == 200
    assert (time.perf_counter() - started) / 5 < 0.5
