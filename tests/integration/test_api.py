"""The API over HTTP: a real `retain serve` (uvicorn) on a free port, on a store built by the real pipeline.

One small simulation is ingested, built, published to Feast and trained once per session (`served_world`);
servers run as subprocesses and are called with `requests`, as a playbook engine would.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from core.contract import INTERVENTION_SCHEMA
from features.stored import read_features
from ingest.run import ingest_path
from products.upkeep.run import merge_taken
from registry.promotion import promote, rollback
from registry.tracking import log_and_register
from serving.batch import score_store
from store.decision_log import DecisionLog
from tests.support.served import SCOPED, Server, World, model_answered, wait_for


@pytest.fixture(scope="module")
def world(served_world: World) -> World:
    return served_world


@pytest.fixture(scope="module")
def server(world: World) -> Iterator[Server]:
    running = Server(world, world.root / "server.log", world.latest, RETAIN_SERVE__RELOAD_SECONDS="0.5")
    yield running
    running.stop()


def test_risk_is_explained_in_words_with_health_models_and_freshness(server: Server, world: World) -> None:
    account = model_answered(server, world)[0]
    response = server.call("GET", f"/v1/accounts/{account}/risk", params={"actions": 3})
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] == response.json()["request_id"]
    risk = response.json()
    assert risk["api_version"] == "v1" and risk["source"] == "model" and risk["fallback_reason"] is None
    assert 0 < risk["churn_probability"] < 1 and 0 < risk["expansion_probability"] < 1
    assert risk["horizon_days"] == 90 and risk["risk_band"] in ("low", "medium", "high", "critical")
    assert risk["models"] == {
        "churn": {"name": "churn", "version": "1"},
        "expansion": {"name": "expansion", "version": "1"},
    }
    assert risk["features"]["fresh"] and risk["features"]["cutoff"].startswith(world.latest.isoformat())
    health = risk["health"]
    assert set(health["components"]) == {"usage", "engagement", "satisfaction", "payment"}
    assert health["band"] in ("healthy", "neutral", "at_risk", "critical") and 0 <= health["score"] <= 100
    assert 1 <= len(risk["reasons"]) <= 3
    for reason in risk["reasons"]:
        assert reason["direction"] in ("raises", "lowers") and isinstance(reason["points"], float)
        assert "_" not in reason["text"] and " " in reason["text"]  # a sentence, not a column name
    for rank, action in enumerate(risk["next_best_actions"], 1):
        assert action["rank"] == rank and action["rationale"] and action["eligibility"]
        assert action["recommendation_id"].startswith("rec_")


def test_served_scores_and_reasons_equal_batch_scoring(server: Server, world: World, tmp_path: Path) -> None:
    accounts = model_answered(server, world)[:25]
    score_store(world.store, world.settings, world.latest, tmp_path / "scores.parquet")
    batch = pd.read_parquet(tmp_path / "scores.parquet").set_index("account_id")
    served = server.call("POST", "/v1/score", json={"accounts": [{"account_id": a} for a in accounts]}).json()
    assert [r["account_id"] for r in served["results"]] == accounts and served["errors"] == []
    for risk in served["results"]:
        row = batch.loc[risk["account_id"]]
        assert risk["churn_probability"] == pytest.approx(row["churn_probability"], abs=1e-12)
        assert risk["expansion_probability"] == pytest.approx(row["expansion_probability"], abs=1e-12)
        assert risk["reasons"] == json.loads(row["reasons"])
        assert risk["health"]["score"] == pytest.approx(row["health_score"])


def test_inline_features_score_like_the_store_and_far_out_of_range_falls_back(
    server: Server, world: World
) -> None:
    account = model_answered(server, world)[0]
    table = read_features(world.store).to_pandas()
    row = table[(table["account_id"] == account) & (table["cutoff"].dt.date == world.latest)].iloc[0]
    features = {k: (None if pd.isna(v) else v) for k, v in row.items() if k not in ("account_id", "cutoff")}
    features = {k: (v.item() if hasattr(v, "item") else v) for k, v in features.items()}
    broken = {**features, "errors_7d": 1e9}
    body = {
        "accounts": [{"account_id": account, "features": features}, {"account_id": "x", "features": broken}]
    }
    results = server.call("POST", "/v1/score", json=body).json()["results"]
    by_id = server.call("GET", f"/v1/accounts/{account}/risk").json()
    assert results[0]["source"] == "model", results[0]["fallback_reason"]
    assert results[0]["churn_probability"] == pytest.approx(by_id["churn_probability"], abs=1e-12)
    assert results[0]["health"]["score"] == pytest.approx(by_id["health"]["score"])
    assert results[1]["source"] == "rules" and results[1]["churn_probability"] is None
    assert results[1]["fallback_reason"]["code"] == "out_of_range"
    assert "errors_7d" in results[1]["fallback_reason"]["message"]


def test_unknown_accounts_are_404_or_item_errors(server: Server, world: World) -> None:
    missing = server.call("GET", "/v1/accounts/acc-nope/risk")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "account_not_found"
    body = {"accounts": [{"account_id": world.active[0]}, {"account_id": "acc-nope"}]}
    batch = server.call("POST", "/v1/score", json=body).json()
    assert [r["account_id"] for r in batch["results"]] == [world.active[0]]
    assert batch["errors"] == [
        {
            "index": 1,
            "account_id": "acc-nope",
            "code": "account_not_found",
            "message": "no account 'acc-nope' in the store",
        }
    ]


@pytest.mark.parametrize(
    ("method", "path", "scope", "body"),
    [
        ("GET", "/v1/accounts/{a}/risk", "scores:read", None),
        ("POST", "/v1/score", "scores:read", {"accounts": [{"account_id": "{a}"}]}),
        ("GET", "/v1/accounts/{a}/next-best-actions", "actions:read", None),
        ("POST", "/v1/accounts/{a}/next-best-actions", "actions:read", {"limit": 2}),
        ("POST", "/v1/interventions", "actions:write", {"account_id": "{a}", "action": "nope"}),
        ("POST", "/v1/admin/reload", "admin", None),
    ],
)
def test_auth_matrix(server: Server, world: World, method: str, path: str, scope: str, body: Any) -> None:
    account = world.active[1]
    path = path.format(a=account)
    payload = json.loads(json.dumps(body).replace("{a}", account)) if body is not None else None
    for key in (None, "rk_000000000000_" + "x" * 43, "not-a-key", "revoked"):
        denied = server.call(method, path, key=key, json=payload)
        assert denied.status_code == 401, (key, denied.text)
        assert (
            denied.headers["www-authenticate"] == "Bearer"
            and denied.json()["error"]["code"] == "unauthorized"
        )
    for key in SCOPED:
        answer = server.call(method, path, key=key, json=payload)
        allowed = key in (scope, "admin")
        if allowed:
            assert answer.status_code not in (401, 403), (key, answer.text)
        else:
            assert answer.status_code == 403 and answer.json()["error"]["code"] == "forbidden", (
                key,
                answer.text,
            )
    risk_with_actions = server.call("GET", f"/v1/accounts/{account}/risk?actions=2", key="scores:read")
    assert risk_with_actions.status_code == 403


def test_bad_input_is_a_4xx_naming_the_field(server: Server, world: World) -> None:
    cases = [
        (server.call("POST", "/v1/score", json={"accounts": [{}]}), 422, "body.accounts[0].account_id"),
        (server.call("POST", "/v1/score", json={"accounts": [], "x": 1}), 422, "body.accounts"),
        (server.call("POST", "/v1/score", json={"accounts": [{"account_id": "a"}], "x": 1}), 422, "body.x"),
        (server.call("GET", f"/v1/accounts/{world.active[0]}/risk?actions=99"), 422, "query.actions"),
        (
            server.call("POST", "/v1/score", data="{not json", headers={"content-type": "application/json"}),
            422,
            "body",
        ),
        (server.call("POST", "/v1/recommendations/r/feedback", json={"status": "maybe"}), 422, "body.status"),
    ]
    for response, status, field_name in cases:
        assert response.status_code == status, response.text
        error = response.json()["error"]
        assert error["code"] == "invalid_request" and any(
            f["field"].startswith(field_name) for f in error["fields"]
        )
    too_many = server.call("POST", "/v1/score", json={"accounts": [{"account_id": "a"}] * 1_001})
    assert too_many.status_code == 422 and too_many.json()["error"]["code"] == "batch_too_large"
    huge = server.call(
        "POST", "/v1/score", data=b"x" * 2_100_000, headers={"content-type": "application/json"}
    )
    assert huge.status_code == 413 and huge.json()["error"]["code"] == "body_too_large"
    unknown = server.call(
        "POST", "/v1/score", json={"accounts": [{"account_id": "a", "features": {"nope": 1}}]}
    )
    assert unknown.status_code == 422 and "nope" in unknown.json()["error"]["message"]
    naive = server.call(
        "POST",
        "/v1/interventions",
        json={"account_id": world.active[0], "action": "in_app_nudge", "ts": "2025-01-01T00:00:00"},
    )
    assert naive.status_code == 422 and naive.json()["error"]["message"].startswith("ts:")


def test_next_actions_feedback_and_interventions_feed_the_store_and_cool_downs(
    server: Server, world: World
) -> None:
    account, ranked = next(
        (a, body)
        for a in world.active
        if (body := server.call("GET", f"/v1/accounts/{a}/next-best-actions").json())["actions"]
    )
    assert ranked["ranking"] == "rules" and ranked["play"] and ranked["ineligible"] is None
    first = ranked["actions"][0]
    assert first["expected_value"] is None and first["cost_hours"] >= 0 and first["cooldown_days"] > 0
    assert first["churn_change"] is None and first["effect_evidence"] is None  # no uplift model, no effect

    filtered = server.call(
        "POST", f"/v1/accounts/{account}/next-best-actions", json={"exclude": [first["action"]], "limit": 12}
    ).json()
    assert first["action"] not in [a["action"] for a in filtered["actions"]]
    bad = server.call("POST", f"/v1/accounts/{account}/next-best-actions", json={"exclude": ["teleport"]})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "unknown_action"

    rec = first["recommendation_id"]
    no_reason = server.call("POST", f"/v1/recommendations/{rec}/feedback", json={"status": "rejected"})
    assert no_reason.status_code == 422 and no_reason.json()["error"]["code"] == "reason_required"
    rejected = server.call(
        "POST",
        f"/v1/recommendations/{rec}/feedback",
        json={"status": "rejected", "reason": "on holiday", "actor": "csm-1"},
    )
    assert rejected.status_code == 201 and rejected.json()["intervention_id"] is None
    done = server.call(
        "POST", f"/v1/recommendations/{rec}/feedback", json={"status": "done", "actor": "csm-1"}
    )
    assert done.status_code == 201, done.text
    intervention_id = done.json()["intervention_id"]
    missing = server.call("POST", "/v1/recommendations/rec_nope/feedback", json={"status": "accepted"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "recommendation_not_found"

    _assert_folded_once(world, intervention_id, (account, first["action"], "csm-1"))
    after = server.call(
        "GET", f"/v1/accounts/{account}/next-best-actions", params={"include_ineligible": True}
    ).json()
    assert first["action"] not in [a["action"] for a in after["actions"]]
    cooling = next(i for i in after["ineligible"] if i["action"] == first["action"])
    assert cooling["reasons"][0].startswith("Taken today")

    body = {
        "account_id": account,
        "action": "in_app_nudge",
        "owner": "automation",
        "intervention_id": "ext-1",
    }
    assert server.call("POST", "/v1/interventions", json=body).json()["recorded"] is True
    again = server.call("POST", "/v1/interventions", json=body)
    assert again.status_code == 201 and again.json()["recorded"] is False
    unknown = server.call("POST", "/v1/interventions", json={**body, "action": "teleport"})
    assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "unknown_action"

    log = DecisionLog.for_store(world.store, world.settings)
    feedback = wait_for(lambda: log.feedback(account_id=account))
    assert sorted((f.status, f.reason, f.action) for f in feedback) == [
        ("done", None, first["action"]),
        ("rejected", "on holiday", first["action"]),
    ]
    logged = log.recommendation(rec)
    assert logged is not None and (logged.account_id, logged.action) == (account, first["action"])
    assert "recommendation" in {d.kind for d in log.decisions(account_id=account)}
    log.close()


def _assert_folded_once(world: World, intervention_id: str, expected: tuple[str, str, str]) -> None:
    """A recorded action waits in the decision log, not in the store, until a merge moves it there once."""
    log = DecisionLog.for_store(world.store, world.settings)
    try:
        pending = {t.intervention_id: t for t in log.taken(pending_only=True)}
    finally:
        log.close()
    assert (pending[intervention_id].account_id, pending[intervention_id].action) == expected[:2]
    stored = world.store.read("interventions", INTERVENTION_SCHEMA, ["intervention_id"])
    assert intervention_id not in stored.column("intervention_id").to_pylist()
    before = stored.num_rows

    merged = merge_taken(world.store, world.settings)
    assert merged.pending == merged.added == len(pending) and merged.version is not None
    again = merge_taken(world.store, world.settings)
    assert (again.pending, again.added, again.version) == (0, 0, None)
    live = world.store.read("interventions", INTERVENTION_SCHEMA).to_pandas()
    assert len(live) == before + len(pending) and live["intervention_id"].is_unique
    row = live.set_index("intervention_id").loc[intervention_id]
    assert (row["account_id"], row["action"], row["owner"]) == expected


def test_interventions_answer_503_while_the_decision_log_is_down(world: World, tmp_path: Path) -> None:
    down = Server(
        world,
        tmp_path / "down.log",
        world.latest,
        RETAIN_SERVE__DECISION_LOG_URL="postgresql://postgres@127.0.0.1:9/retain",
        RETAIN_SERVE__RELOAD_SECONDS="0",
    )
    try:
        body = {"account_id": world.active[0], "action": "in_app_nudge", "intervention_id": "ext-down"}
        refused = down.call("POST", "/v1/interventions", json=body)
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["code"] == "decision_log_unavailable"
        assert down.call("GET", f"/v1/accounts/{world.active[0]}/risk").status_code == 200
    finally:
        down.stop()
    stored = world.store.read("interventions", INTERVENTION_SCHEMA, ["intervention_id"])
    assert "ext-down" not in stored.column("intervention_id").to_pylist()


def test_champion_changes_without_restart_and_changes_are_reported(server: Server, world: World) -> None:
    account = model_answered(server, world)[-1]
    first = server.call("GET", f"/v1/accounts/{account}/risk").json()
    assert first["models"]["churn"]["version"] == "1"

    log_and_register(world.store, world.settings, world.churn, "churn")
    promote(world.store, world.settings, "churn", force=True, reason="test: a new champion")
    moved = wait_for(
        lambda: (
            (r := server.call("GET", f"/v1/accounts/{account}/risk").json())["models"]["churn"]["version"]
            == "2"
            and r
        )
    )
    assert moved, "the poller did not pick up churn@champion = 2"
    changes = moved["changes"]
    assert changes["previous_churn_probability"] == pytest.approx(first["churn_probability"])
    assert changes["churn_points"] == pytest.approx(0.0, abs=1e-9)  # the same model, registered again

    rollback(world.store, world.settings, "churn")
    reloaded = server.call("POST", "/v1/admin/reload").json()
    assert reloaded["models"]["churn"]["version"] == "1" and reloaded["changed"] == ["churn"]


def test_no_champion_and_no_feature_row_answer_with_the_rules(
    server: Server, world: World, tmp_path: Path
) -> None:
    (tmp_path / "accounts.csv").write_text(
        "account_id,name,tier,segment,seats_purchased,arr,contract_start,renewal_date,csm_id\n"
        "acc-new,New Co,small_business,smb,10,12000,2025-08-01T00:00:00Z,2026-08-01T00:00:00Z,csm-1\n"
    )
    ingest_path(world.store, tmp_path / "accounts.csv")
    server.call("POST", "/v1/admin/reload")
    fresh = server.call("GET", "/v1/accounts/acc-new/risk")
    assert fresh.status_code == 200, fresh.text
    assert fresh.json()["source"] == "rules" and fresh.json()["fallback_reason"]["code"] == "no_feature_row"
    assert fresh.json()["health"]["score"] is None

    from registry.tracking import client

    mlflow_client = client(world.store, world.settings)
    mlflow_client.delete_registered_model_alias("churn", "champion")
    try:
        assert server.call("POST", "/v1/admin/reload").json()["models"]["churn"] is None
        risk = server.call("GET", f"/v1/accounts/{world.active[0]}/risk").json()
        assert risk["source"] == "rules" and risk["fallback_reason"]["code"] == "no_champion"
        assert risk["churn_probability"] is None and risk["risk_band"] is not None
        assert all(r["points"] is None for r in risk["reasons"])
        assert server.call("GET", "/readyz").status_code == 503
        actions = server.call("GET", f"/v1/accounts/{world.active[0]}/next-best-actions")
        assert actions.status_code == 200 and actions.json()["source"] == "rules"
    finally:
        mlflow_client.set_registered_model_alias("churn", "champion", "1")
    assert wait_for(lambda: server.call("GET", "/readyz").status_code == 200)


def test_an_account_that_has_left_is_scored_by_the_rules_and_offered_no_action(
    server: Server, world: World
) -> None:
    gone = world.departed[0]
    actions = server.call("GET", f"/v1/accounts/{gone}/next-best-actions")
    assert actions.status_code == 409, actions.text
    error = actions.json()["error"]
    assert error["code"] == "account_inactive"
    assert f"no row at the newest feature build ({world.latest:%Y-%m-%d})" in error["message"]
    risk = server.call("GET", f"/v1/accounts/{gone}/risk", params={"actions": 3}).json()
    assert risk["source"] == "rules" and risk["fallback_reason"]["code"] == "inactive_account"
    assert risk["features"]["cutoff"] < world.latest.isoformat() and risk["risk_band"] is not None
    assert risk["next_best_actions"] == []
    assert server.call("GET", f"/v1/accounts/{world.active[0]}/next-best-actions").status_code == 200


def test_metrics_count_routes_fallbacks_and_model_versions(server: Server, world: World) -> None:
    server.call("GET", f"/v1/accounts/{world.active[0]}/risk")
    text = server.call("GET", "/metrics", key=None).text
    assert 'retain_requests_total{method="GET",route="/v1/accounts/{account_id}/risk",status="200"}' in text
    assert (
        'retain_request_seconds_bucket{le="0.01",method="GET",route="/v1/accounts/{account_id}/risk"}' in text
    )
    assert 'retain_model_info{model="churn",version="1"} 1.0' in text
    assert "retain_fallbacks_total{" in text and "retain_decision_log_written_total" in text
    assert world.active[0] not in text


def test_stale_features_fall_back_and_the_decision_log_goes_to_postgresql(
    world: World, postgres_database: str, tmp_path: Path
) -> None:
    secret = "s3cret-not-in-logs"
    dsn = postgres_database.replace("postgres@", f"postgres:{secret}@")
    stale = Server(
        world,
        tmp_path / "stale.log",
        world.latest + timedelta(days=60),
        RETAIN_SERVE__DECISION_LOG_URL=dsn,
        RETAIN_SERVE__RELOAD_SECONDS="0",
    )
    try:
        risk = stale.call("GET", f"/v1/accounts/{world.active[0]}/risk", params={"actions": 2})
        assert risk.status_code == 200, risk.text
        body = risk.json()
        assert body["source"] == "rules" and body["fallback_reason"]["code"] == "stale_features"
        assert not body["features"]["fresh"] and body["features"]["age_days"] > 60
        assert secret not in stale.call("GET", "/readyz").text
    finally:
        stale.stop()
    log = DecisionLog(postgres_database)
    logged = log.decisions(account_id=world.active[0])
    log.close()
    assert [(d.kind, d.source, d.request_id) for d in logged] == [("score", "rules", body["request_id"])]
    assert logged[0].output["fallback_reason"]["code"] == "stale_features"
    printed = (tmp_path / "stale.log").read_text()
    assert secret not in printed and world.keys["admin"] not in printed
    assert "Application startup complete" in printed


def test_schemathesis_finds_no_server_error(server: Server, world: World, tmp_path: Path) -> None:
    st = Path(sys.executable).with_name("st")
    done = subprocess.run(
        [
            str(st),
            "run",
            f"{server.url}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--header",
            f"Authorization: Bearer {world.keys['admin']}",
            "--max-examples",
            "25",
            "--seed",
            "7",
            "--phases",
            "examples,coverage,fuzzing",
            "--request-timeout",
            "20",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=tmp_path,  # its example cache goes there, not into the work tree
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "No issues found" in done.stdout or "passed" in done.stdout


def test_server_log_never_holds_a_key(server: Server, world: World) -> None:
    server.call("GET", f"/v1/accounts/{world.active[0]}/risk")
    server.call("GET", f"/v1/accounts/{world.active[0]}/risk", key="rk_000000000000_" + "y" * 43)
    printed = server.log.read_text()
    assert "GET /v1/accounts/" in printed  # the access log is on in these tests, so this checks it
    for key in world.keys.values():
        assert key not in printed and key.split("_", 2)[2] not in printed  # rk_<id>_<secret>
