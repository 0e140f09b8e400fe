"""A real `retain serve` under real faults: its decision log made immutable or deleted, its online store
missing, its MLflow database corrupt; and callers who send what the catalogue cannot hold, a malformed
body without a key, or a body too large to read. Never a crash, never a 500, never a silent loss; every
answer carries `X-Request-ID`, and `/readyz` names what failed, each time it is asked.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from registry.tracking import mlflow_dir
from store.decision_log import DecisionLog
from tests.support.served import Server, World, signed_in, wait_for


@pytest.fixture
def world(served_world: World) -> World:
    return served_world


@pytest.fixture(scope="module")
def healthy(served_world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server, started when the first test asks for it, once the tests that start their own against
    a missing or broken file (above those that ask) have put it back: the faults its tests make, each
    recovered from before the test ends, and the tests that break nothing."""
    server = Server(served_world, tmp_path_factory.mktemp("healthy") / "server.log", served_world.latest)
    yield server
    server.stop()


def readiness(server: Server) -> tuple[int, dict[str, Any]]:
    answer = server.call("GET", "/readyz", key=None)
    assert answer.headers["X-Request-ID"]
    return answer.status_code, answer.json()


@dataclass(frozen=True)
class Served:
    account_id: str
    recommendation_id: str
    request_id: str


def recommendation(server: Server, accounts: list[str], key: str = "admin") -> Served:
    """A next-best action served for the first of `accounts` offered one (earlier tests on the shared
    world put some accounts' actions in cool-down)."""
    for account in accounts:
        served = server.call("GET", f"/v1/accounts/{account}/next-best-actions", key=key)
        assert served.status_code == 200, served.text
        if served.json()["actions"]:
            first = served.json()["actions"][0]["recommendation_id"]
            return Served(account, str(first), str(served.json()["request_id"]))
    raise AssertionError("no account was offered an action")


def feedback(server: Server, recommendation_id: str, status: str = "accepted") -> requests.Response:
    body = {"status": status, "actor": "csm-1"}
    return server.call("POST", f"/v1/recommendations/{recommendation_id}/feedback", json=body)


def decision_log_counts(server: Server) -> dict[str, float]:
    text = server.call("GET", "/metrics", key=None).text
    return {
        line.split()[0].removeprefix("retain_decision_log_").removesuffix("_total"): float(line.split()[1])
        for line in text.splitlines()
        if line.startswith("retain_decision_log_")
    }


def test_a_missing_online_store_is_not_ready_falls_back_and_recovers_without_restart(
    world: World, serve: Any
) -> None:
    """Failure 3: `/readyz` said ready, scoring and the cockpit answered a plain-text 500, and Feast left
    an empty file behind. Now the rules answer, saying why, as for any input that cannot be had."""
    online = world.store.feast_dir / "online.db"
    aside = online.with_name("online.db.aside")
    online.rename(aside)
    try:
        server = serve()
        status, body = readiness(server)
        assert status == 503 and not body["store"] and "online_store" in body["errors"]
        risk = server.call("GET", f"/v1/accounts/{world.active[0]}/risk")
        assert risk.status_code == 200 and risk.headers["X-Request-ID"]
        assert risk.json()["source"] == "rules" and risk.json()["churn_probability"] is None
        assert risk.json()["fallback_reason"]["code"] == "feature_store_unavailable"
        batch = server.call("POST", "/v1/score", json={"accounts": [{"account_id": world.active[0]}]})
        assert batch.json()["results"][0]["fallback_reason"]["code"] == "feature_store_unavailable"
        actions = server.call("GET", f"/v1/accounts/{world.active[0]}/next-best-actions")
        assert actions.status_code == 200 and actions.json()["source"] == "rules", actions.text
        for page in ("/ui", f"/ui/accounts/{world.active[0]}"):  # no book was ever scored: nothing to show
            shown = server.call("GET", page, key="scores:read")
            assert shown.status_code == 503 and "text/html" in shown.headers["content-type"], shown.text
        assert not online.exists()  # nothing made an empty store in its place
    finally:
        aside.rename(online)
    assert wait_for(lambda: readiness(server)[0] == 200)
    assert server.call("GET", f"/v1/accounts/{world.active[0]}/risk").status_code == 200


@pytest.fixture
def mlflow_database(world: World) -> Iterator[Path]:
    """The world's MLflow database, restored after the test corrupts it."""
    path = mlflow_dir(world.store) / "mlflow.db"
    backup = path.with_name("mlflow.db.backup")
    shutil.copyfile(path, backup)
    yield path
    shutil.copyfile(backup, path)
    backup.unlink()


def test_an_unreadable_mlflow_database_neither_stops_the_server_nor_drops_its_champions(
    world: World, serve: Any, mlflow_database: Path
) -> None:
    """Failure 4: `file is not a database` stopped `retain serve` (exit 3); corrupted while running, a
    reload dropped the champions with a misleading 'train one first'."""
    running = serve(RETAIN_SERVE__RELOAD_SECONDS="0.5")
    assert running.call("GET", f"/v1/accounts/{world.active[0]}/risk").json()["source"] == "model"
    mlflow_database.write_bytes(b"this is not a database" * 1000)

    started = serve()  # would exit 3
    status, body = readiness(started)
    assert status == 503 and not body["model"]
    assert "the model registry cannot be read" in body["errors"]["churn"]
    rules = started.call("GET", f"/v1/accounts/{world.active[0]}/risk").json()
    assert rules["source"] == "rules" and rules["fallback_reason"]["code"] == "no_champion"
    # it said "no churn model is registered as champion": an unreadable registry is no missing model
    assert "the model registry cannot be read" in rules["fallback_reason"]["message"], rules

    reloaded = running.call("POST", "/v1/admin/reload").json()
    assert reloaded["models"]["churn"]["version"] == "1"
    assert "the model registry cannot be read" in reloaded["errors"]["churn"]
    assert "still serving churn/1" in reloaded["errors"]["churn"]
    assert running.call("GET", f"/v1/accounts/{world.active[0]}/risk").json()["source"] == "model"


def test_an_unwritable_decision_log_is_no_crash_and_feedback_waits_for_it(
    world: World, healthy: Server
) -> None:
    """Failure 1: SIGBUS on feedback, 404 for a just-served recommendation, a read-only pool after the
    fix, and `/readyz` ready throughout. Now feedback waits in the queue (202) and is written after."""
    server = healthy
    earlier = recommendation(server, world.active)
    assert readiness(server)[0] == 200
    assert wait_for(lambda: decision_log_counts(server)["pending"] == 0)
    files = sorted(world.store.serving_dir.glob("decisions.db*"))
    subprocess.run(["chattr", "+i", *map(str, files)], check=True)
    try:
        served = recommendation(server, world.active[::-1])  # its log entry waits in the queue
        queued = [feedback(server, r.recommendation_id) for r in (served, earlier)]
        for answer in queued:
            assert answer.status_code == 202 and answer.json()["queued"], answer.text
            assert answer.headers["X-Request-ID"] == answer.json()["request_id"]
        done = feedback(server, served.recommendation_id, "done")  # records an intervention: needs the log
        assert done.status_code == 503 and done.json()["error"]["code"] == "decision_log_unavailable"
        status, body = readiness(server)
        assert status == 503 and not body["ready"] and not body["decision_log_writable"]
        assert "decision_log" in body["errors"]
        assert server.process.poll() is None
    finally:
        subprocess.run(["chattr", "-i", *map(str, files)], check=True)
    assert wait_for(lambda: readiness(server)[0] == 200)
    accepted = feedback(server, served.recommendation_id)
    assert accepted.status_code == 201 and not accepted.json()["queued"], accepted.text
    counts = wait_for(lambda: (c := decision_log_counts(server))["pending"] == 0 and c)
    assert counts["written"] >= 1 and counts["failed"] == 0 and counts["dropped"] == 0
    written = DecisionLog(f"sqlite:///{world.store.serving_dir / 'decisions.db'}")
    ids = {f.feedback_id for f in written.feedback(limit=1_000)}
    written.close()
    assert {answer.json()["feedback_id"] for answer in (*queued, accepted)} <= ids


def test_a_deleted_decision_log_is_made_anew_and_counts_tell_the_truth(world: World, healthy: Server) -> None:
    """Failure 2: entries written to the deleted file's inode, counted as written; feedback 503 'no such
    table' until a restart."""
    server = healthy
    recommendation(server, world.active)
    for path in world.store.serving_dir.glob("decisions.db*"):
        path.unlink()
    served = recommendation(server, world.active[::-1]).recommendation_id
    accepted = feedback(server, served)
    assert accepted.status_code == 201, accepted.text
    assert (world.store.serving_dir / "decisions.db").is_file()
    assert readiness(server)[0] == 200


def test_inline_features_the_catalogue_cannot_hold_are_422_naming_the_field(
    world: World, healthy: Server
) -> None:
    """Failure 5: a huge integer was a plain-text 500 without `X-Request-ID`; NaN, Infinity, 1e400,
    "inf", a negative tenure and an unknown tier were scored; `{}` was scored as 'critical'."""
    server = healthy
    account = world.active[0]
    for name, raw in (
        ("errors_7d", "1" + "0" * 400),
        ("errors_7d", "NaN"),
        ("errors_7d", "Infinity"),
        ("errors_7d", "1e400"),
        ("errors_7d", '"inf"'),
        ("tenure_days", "-3"),
        ("tier", '"platinum"'),
        ("nps_last", "50"),
        ("errors_7d", "true"),  # scored as 1 by the model (issue 51)
        ("usage_drop_alert", "false"),
    ):
        body = f'{{"accounts": [{{"account_id": "{account}", "features": {{"{name}": {raw}}}}}]}}'
        answer = server.call("POST", "/v1/score", data=body, headers={"Content-Type": "application/json"})
        assert answer.status_code == 422, (name, raw, answer.status_code, answer.text)
        assert answer.headers["X-Request-ID"]
        fields = [f["field"] for f in answer.json()["error"]["fields"]]
        assert fields == [f"body.accounts[0].features.{name}"], (raw, answer.text)
    empty = server.call("POST", "/v1/score", json={"accounts": [{"account_id": account, "features": {}}]})
    assert empty.status_code == 200, empty.text
    result = empty.json()["results"][0]
    assert result["source"] == "rules" and result["fallback_reason"]["code"] == "no_feature_row"


def test_cockpit_feedback_on_another_account_s_recommendation_is_refused(
    world: World, healthy: Server
) -> None:
    """Feedback for account B's recommendation posted from account A's page was recorded (issue 51)."""
    theirs = recommendation(healthy, world.active[1:])
    mine = next(a for a in world.active if a != theirs.account_id)
    browser = signed_in(healthy, world.keys["admin"])
    page = browser.get(f"{healthy.url}/ui/accounts/{mine}", timeout=30)
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    form = {"recommendation_id": theirs.recommendation_id, "status": "accepted", "csrf": token}
    posted = browser.post(f"{healthy.url}/ui/accounts/{mine}/feedback", data=form, allow_redirects=False)
    assert posted.status_code == 404 and "not one of" in posted.text, posted.text
    log = DecisionLog.for_store(world.store, world.settings)
    assert all(f.recommendation_id != theirs.recommendation_id for f in log.feedback(theirs.account_id))
    own = browser.post(
        f"{healthy.url}/ui/accounts/{theirs.account_id}/feedback", data=form, allow_redirects=False
    )
    assert own.status_code == 303 and "recorded=accepted" in own.headers["location"], own.text
    assert wait_for(
        lambda: any(f.recommendation_id == theirs.recommendation_id for f in log.feedback(theirs.account_id))
    )


def test_a_malformed_body_without_a_key_is_401_and_a_huge_chunked_body_is_413(
    world: World, healthy: Server
) -> None:
    """Failure 6: malformed JSON without a key was 422; a 20 MB chunked body was 400."""
    server = healthy
    malformed = requests.post(
        f"{server.url}/v1/score", data="{not json", headers={"Content-Type": "application/json"}, timeout=30
    )
    assert malformed.status_code == 401, malformed.text
    keyed = server.call("POST", "/v1/score", data="{not json", headers={"Content-Type": "application/json"})
    assert keyed.status_code == 422

    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b" " * 1_000_000

    huge = server.call("POST", "/v1/score", data=chunks(), headers={"Content-Type": "application/json"})
    assert huge.status_code == 413, huge.text
    assert huge.json()["error"]["code"] == "body_too_large" and huge.headers["X-Request-ID"]


def test_every_decision_and_feedback_records_the_key_that_acted(world: World, healthy: Server) -> None:
    """Failure 10: feedback's `actor` was whatever the caller sent, and no entry said which key acted."""
    server = healthy
    reader, writer = world.keys["actions:read"], world.keys["actions:write"]
    served = recommendation(server, world.active, key=reader)
    rec = served.recommendation_id
    body = {"status": "accepted", "actor": "somebody else"}
    given = server.call("POST", f"/v1/recommendations/{rec}/feedback", key=writer, json=body)
    assert given.status_code == 201, given.text
    assert wait_for(lambda: decision_log_counts(server)["pending"] == 0)
    log = DecisionLog.for_store(world.store, world.settings)
    try:
        asked = log.decisions(served.account_id)
        (decision,) = [d for d in asked if d.request_id == served.request_id]
        (stored,) = [f for f in log.feedback(served.account_id) if f.recommendation_id == rec]
    finally:
        log.close()
    assert decision.key_id == key_id(reader) and stored.key_id == key_id(writer)
    assert stored.actor == "somebody else"


def key_id(key: str) -> str:
    """`rk_<key_id>_<secret>` -> key_id."""
    return key.split("_")[1]
