"""The autopilot end to end: a hand-built store whose accounts are all eligible for two autonomous actions,
weekly plans recorded as `retain plan` records them, a real receiver on 127.0.0.1 as the playbook engine,
the decision log on SQLite and a real PostgreSQL, a harmful action paused within the quarter, and
`retain serve` running the autopilot killed mid-delivery and restarted."""

from __future__ import annotations

import contextlib
import json
import random
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from core.contract import ACCOUNT_SCHEMA, EVENT_SCHEMA, INTERVENTION_SCHEMA
from core.settings import AutopilotSettings, Settings, WebhookSettings
from features.cutoffs import cutoff_instant
from ingest.run import ingest_path
from products.autopilot.run import AutopilotRun
from retain import api
from retain.cli import main
from serving.autopilot_log import PAUSED, AutopilotLog, Execution
from serving.keys import KeyFile
from serving.webhooks.delivery import DeliveryRound, deliver_once
from serving.webhooks.outbox import Outbox
from store.decision_log import DELIVERIES, DecisionLog
from store.delta import Store
from store.plan_table import CHOSEN, EXPLORE, HELD_OUT, PLANS, PLANS_SCHEMA
from tests.support.events import account, arrow_table, event
from tests.support.receivers import Receiver
from tests.support.served import Server, wait_for

BILLING, OFFICE_HOURS = "billing_outreach", "office_hours_invite"
MONDAY = date(2025, 6, 2)
#: a run on the plan's Monday morning
AT = cutoff_instant(MONDAY) + timedelta(hours=9)
#: each arm's propensity as the plan logs it
PROPENSITY = {CHOSEN: 0.9, EXPLORE: 0.05, HELD_OUT: 0.1}
QUICK = WebhookSettings(
    max_attempts=5,
    backoff_seconds=0.05,
    backoff_cap_seconds=1,
    lease_seconds=2,
    timeout_seconds=1,
    poll_seconds=0.02,
)


def ids(n: int, first: int = 0) -> list[str]:
    return [f"acc-{i:03d}" for i in range(first, first + n)]


def _write(path: Path, schema: pa.Schema, rows: Sequence[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(arrow_table(schema, rows), path)


def make_store(root: Path, today: date, n: int, interventions: Sequence[dict[str, Any]] = ()) -> Store:
    """`n` accounts active since 200 days before `today`, each with an overdue invoice and an open P1
    ticket: eligible for billing_outreach and office_hours_invite."""
    start, seen = cutoff_instant(today) - timedelta(days=200), cutoff_instant(today) - timedelta(days=3)
    folder = root / "input"
    accounts = [
        account(a, contract_start=start, renewal_date=start + timedelta(days=500), csm_id="csm-1")
        for a in ids(n)
    ]
    events = [
        {"event_id": f"ev-{a}-{kind}", **e}
        for a in ids(n)
        for kind, e in (
            ("session", event(a, "user.session", seen, user_id=f"{a}-u", duration_min=12.0)),
            (
                "invoice",
                event(a, "billing.invoice", seen, invoice_id=f"inv-{a}", status="overdue", amount=900.0),
            ),
            ("ticket", event(a, "ticket.created", seen, ticket_id=f"t-{a}", priority="P1")),
        )
    ]
    _write(folder / "accounts.parquet", ACCOUNT_SCHEMA, accounts)
    _write(folder / "events.parquet", EVENT_SCHEMA, events)
    if interventions:
        _write(folder / "interventions.parquet", INTERVENTION_SCHEMA, interventions)
    store = Store(root / "store")
    ingest_path(store, folder)
    return store


def record_week(store: Store, week: date, arms: dict[str, tuple[str, str | None]]) -> None:
    """The week's plan as `retain plan` records it: per account its arm and action, the arm's propensity,
    and values falling in account order (the first account is the most valuable)."""
    rows = [
        {
            "week": cutoff_instant(week),
            "account_id": a,
            "arm": arm,
            "action": action,
            "csm_id": "csm-1",
            "expected_value": None if action is None else 1_000.0 - i,
            "arr": 50_000.0,
            "model_version": "3",
            "propensity": PROPENSITY[arm],
        }
        for i, (a, (arm, action)) in enumerate(sorted(arms.items()))
    ]
    table = pa.Table.from_pylist(rows, schema=PLANS_SCHEMA)
    store.write(PLANS, table, "append", json.dumps({"step": "plan", "week": week.isoformat()}))


def arms(accounts: Sequence[str], arm: str, action: str | None) -> dict[str, tuple[str, str | None]]:
    return {a: (arm, action) for a in accounts}


@dataclass
class Deployment:
    store: Store
    settings: Settings
    log: DecisionLog

    @property
    def pilot(self) -> AutopilotLog:
        return AutopilotLog(self.log)

    def run(self, at: datetime = AT, dry_run: bool = False) -> AutopilotRun:
        return api.autopilot_run(store=self.store, settings=self.settings, at=at, dry_run=dry_run)

    def executions(self) -> list[Execution]:
        return self.pilot.executions(datetime(2000, 1, 1, tzinfo=UTC))


@pytest.fixture
def deployment(tmp_path: Path, database_url: str) -> Callable[..., Deployment]:
    """A store of `n` accounts (and its interventions) with the decision log at `database_url`."""
    logs: list[DecisionLog] = []

    def make(n: int, interventions: Sequence[dict[str, Any]] = (), **autopilot: Any) -> Deployment:
        store = make_store(tmp_path, MONDAY, n, interventions)
        serve = Settings().serve.model_copy(update={"decision_log_url": database_url})
        settings = Settings(home=store.root, serve=serve, autopilot=AutopilotSettings(**autopilot))
        logs.append(DecisionLog(database_url))
        return Deployment(store, settings, logs[-1])

    yield make
    for log in logs:
        log.close()


@pytest.fixture
def receivers() -> Iterator[Callable[..., Receiver]]:
    made: list[Receiver] = []

    def receiver(**behaviour: Any) -> Receiver:
        made.append(Receiver(**behaviour))
        return made[-1]

    yield receiver
    for each in made:
        each.close()


# -- executing -------------------------------------------------------------------------------------------


def test_each_autonomous_row_is_executed_once_through_the_outbox_and_logged_with_its_actor_and_propensity(
    deployment: Callable[..., Deployment], receivers: Callable[..., Receiver]
) -> None:
    d = deployment(30)
    plan = {
        **arms(ids(20), CHOSEN, BILLING),
        **arms(ids(4, 20), EXPLORE, OFFICE_HOURS),
        **arms(ids(2, 24), CHOSEN, "health_check_call"),  # a call: never the autopilot's
        **arms(ids(4, 26), HELD_OUT, None),
    }
    record_week(d.store, MONDAY, plan)
    engine, alerts_only = receivers(), receivers()
    outbox = Outbox(d.log)
    outbox.add(engine.url, ["action.execute"])
    outbox.add(alerts_only.url, ["*"])  # every alert type, but never a command it did not name

    first = d.run()
    assert (first.week, first.candidates, first.executed) == (MONDAY, 24, {BILLING: 20, OFFICE_HOURS: 4})
    assert first.skipped == {} and first.compared == 4 * 2  # held-out accounts x autonomous actions eligible
    assert deliver_once(outbox, QUICK) == DeliveryRound(sent=24)

    executions = {e.execution_id: e for e in d.executions()}
    assert sorted(r.key for r in engine.received) == sorted(executions) and alerts_only.received == []
    for received in engine.received:
        body, execution = json.loads(received.body), executions[received.key]
        arm, action = plan[body["account_id"]]
        assert received.event == "action.execute" and body["id"] == received.key
        assert (body["action"], body["propensity"], body["actor"]) == (action, PROPENSITY[arm], "autopilot")
        assert (execution.arm, execution.propensity, execution.actor) == (arm, PROPENSITY[arm], "autopilot")
        assert execution.policy_version == "uplift/3" and execution.run_id == first.run_id
    taken = {t.intervention_id: t for t in d.log.taken(pending_only=True)}
    assert taken.keys() == executions.keys(), "every execution counts as an action taken at once"
    assert {(t.owner, t.assignment) for t in taken.values()} == {("autopilot", "targeted")}

    again = d.run(AT + timedelta(hours=3))
    assert again.executed == {} and again.skipped == {"executed before": 24} and again.compared == 0
    assert deliver_once(outbox, QUICK) == DeliveryRound() and len(engine.received) == 24


def test_the_caps_hold_across_the_day_s_runs_most_valuable_first_and_the_next_day_takes_more(
    deployment: Callable[..., Deployment],
) -> None:
    d = deployment(24, max_per_action_per_day=5, max_per_day=7)
    record_week(
        d.store, MONDAY, {**arms(ids(20), CHOSEN, BILLING), **arms(ids(4, 20), EXPLORE, OFFICE_HOURS)}
    )
    first = d.run()
    assert first.executed == {BILLING: 5, OFFICE_HOURS: 2}
    assert first.skipped == {"the action's daily cap": 15, "the daily cap": 2}
    assert sorted(e.account_id for e in d.executions() if e.action == BILLING) == ids(5), (
        "most valuable first"
    )
    later = d.run(AT + timedelta(hours=8))
    assert later.executed == {} and later.skipped == {
        "executed before": 7,
        "the action's daily cap": 15,
        "the daily cap": 2,
    }
    tomorrow = d.run(AT + timedelta(days=1))
    assert tomorrow.executed == {BILLING: 5, OFFICE_HOURS: 2}
    assert len(d.executions()) == 14


def test_cool_downs_the_holdout_a_pending_approval_and_a_csm_s_stop_each_keep_an_account_out(
    deployment: Callable[..., Deployment],
) -> None:
    taken_before = {
        "intervention_id": "iv-1",
        "account_id": "acc-001",
        "ts": cutoff_instant(MONDAY) - timedelta(days=5),
        "action": BILLING,
        "owner": "csm-1",
        "channel": "email",
        "assignment": "targeted",
    }
    held = {**taken_before, "intervention_id": "iv-2", "account_id": "acc-002", "action": "holdout"}
    d = deployment(10, [taken_before, {**held, "assignment": "holdout", "propensity": 0.1}])
    record_week(d.store, MONDAY - timedelta(days=7), {"acc-003": (CHOSEN, "save_offer")})  # needs approval
    record_week(d.store, MONDAY, arms(ids(10), CHOSEN, BILLING))
    d.pilot.set_stop("acc-005", True, "csm-7", None)

    week = d.run()
    assert week.executed == {BILLING: 6}
    assert week.skipped == {
        "approval pending": 1,
        "cooling down": 1,
        "in the holdout": 1,
        "stopped by CSM": 1,
    }
    executed = {e.account_id for e in d.executions()}
    assert executed == {"acc-000", "acc-004", "acc-006", "acc-007", "acc-008", "acc-009"}

    record_week(d.store, MONDAY + timedelta(days=7), arms(ids(10), CHOSEN, BILLING))
    next_week = d.run(AT + timedelta(days=7))  # last week's executions cool down (14 days) from the log
    assert next_week.executed == {BILLING: 1} and next_week.skipped["cooling down"] == 7
    assert {e.account_id for e in d.executions()} == executed | {"acc-003"}  # its approval no longer pends
    d.pilot.set_stop("acc-005", False, "csm-7", None)
    assert d.run(AT + timedelta(days=7, hours=1)).executed == {BILLING: 1}  # acc-005, let go


def test_the_kill_switch_and_a_dry_run_execute_nothing_and_a_pause_holds_even_for_a_run_under_way(
    deployment: Callable[..., Deployment], receivers: Callable[..., Receiver]
) -> None:
    d = deployment(12)
    record_week(d.store, MONDAY, {**arms(ids(8), CHOSEN, BILLING), **arms(ids(4, 8), EXPLORE, OFFICE_HOURS)})
    outbox = Outbox(d.log)
    outbox.add(receivers().url, ["action.execute"])

    api.autopilot_pause(reason="incident review", store=d.store, settings=d.settings)
    assert d.run().skipped == {PAUSED: 12} and d.executions() == []
    dry = d.run(dry_run=True)
    assert dry.executed == {} and dry.skipped == {PAUSED: 12}

    api.autopilot_resume(store=d.store, settings=d.settings)
    switch = api.autopilot_pause(BILLING, "complaints", actor="cs-ops", store=d.store, settings=d.settings)
    assert (switch.scope, switch.paused, switch.actor, switch.reason) == (
        BILLING,
        True,
        "cs-ops",
        "complaints",
    )
    dry = d.run(dry_run=True)
    assert dry.executed == {OFFICE_HOURS: 4} and dry.skipped == {"action paused": 8}
    with d.log.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(DELIVERIES)).scalar() == 0
    assert d.executions() == [] and d.pilot.comparisons(AT - timedelta(days=30)) == [], (
        "a dry run records nothing"
    )
    assert d.run().executed == {OFFICE_HOURS: 4}
    with pytest.raises(api.RetainError, match="'save_offer' is not an action the autopilot takes"):
        api.autopilot_pause("save_offer", store=d.store, settings=d.settings)

    api.autopilot_resume(BILLING, store=d.store, settings=d.settings)
    api.autopilot_pause(
        store=d.store, settings=d.settings
    )  # after a run read the switches, before it executes
    late = Execution(
        "ex_late",
        cutoff_instant(MONDAY),
        "acc-000",
        BILLING,
        "email",
        CHOSEN,
        AT,
        "autopilot",
        None,
        "uplift/3",
        0.9,
        "ap_x",
    )
    assert d.pilot.execute(late, "targeted") == PAUSED and d.pilot.recorded(["ex_late"]) == set()
    scopes = {s.scope: s.paused for s in api.autopilot_switches(store=d.store, settings=d.settings)}
    assert scopes == {"*": True, BILLING: False}


# -- harm ------------------------------------------------------------------------------------------------


def test_an_action_made_harmful_is_paused_automatically_within_the_quarter(tmp_path: Path) -> None:
    """Weekly plans over 240 accounts; after each run, 15% of the accounts billing_outreach reached cancel
    and 4% of the others (office_hours_invite's and the held-out ones): billing_outreach raises churn."""
    store = make_store(tmp_path, MONDAY, 240)
    settings = Settings(home=store.root)
    rng, gone = random.Random(3), set[str]()
    for n in range(13):
        week = MONDAY + timedelta(days=7 * n)
        live = [a for a in ids(240) if a not in gone]
        rng.shuffle(live)
        held, billing = live[: len(live) * 3 // 10], live[len(live) * 3 // 10 :][::3]
        planned = {
            **arms(live, EXPLORE, OFFICE_HOURS),
            **arms(billing, CHOSEN, BILLING),
            **arms(held, HELD_OUT, None),
        }
        record_week(store, week, planned)
        at = cutoff_instant(week) + timedelta(hours=9)
        run = api.autopilot_run(store=store, settings=settings, at=at)
        if run.paused:
            break
        with contextlib.closing(DecisionLog.for_store(store, settings)) as log:
            reached = {e.account_id for e in AutopilotLog(log).executions(at) if e.action == BILLING}
        cancelled = [a for a in live if rng.random() < (0.15 if a in reached else 0.04)]
        gone |= set(cancelled)
        rows = [
            {"event_id": f"ev-{a}-cancel", **event(a, "subscription.cancelled", at + timedelta(days=1))}
            for a in cancelled
        ]
        _write(tmp_path / f"week-{n}" / "events.parquet", EVENT_SCHEMA, rows)
        ingest_path(store, tmp_path / f"week-{n}")
    assert run.paused == [BILLING], f"not paused after {n + 1} weeks"
    (check,) = [c for c in run.harm if c.action == BILLING]
    assert check.harmful and check.added_churns is not None and check.added_churns.low > 0
    assert check.churn_rate_executed is not None and check.churn_rate_compared is not None
    assert check.churn_rate_executed > check.churn_rate_compared
    assert not [c for c in run.harm if c.action == OFFICE_HOURS and c.harmful], "a harmless action runs on"
    switch = {s.scope: s for s in api.autopilot_switches(store=store, settings=settings)}[BILLING]
    assert (
        switch.paused
        and switch.actor == "autopilot"
        and switch.reason
        and "paused automatically" in switch.reason
    )
    assert switch.evidence is not None and switch.evidence["executed"] == check.executed
    assert run.executed.get(BILLING) is None and run.skipped["action paused"] > 0, "paused before executing"


# -- the worker in `retain serve`, killed mid-delivery --------------------------------------------------

#: the webhook worker's pace in a `retain serve`; a lease long enough that a held request is killed inside it
QUICK_ENV = {
    "RETAIN_WEBHOOKS__POLL_SECONDS": "0.1",
    "RETAIN_WEBHOOKS__BACKOFF_SECONDS": "0.1",
    "RETAIN_WEBHOOKS__LEASE_SECONDS": "4",
    "RETAIN_WEBHOOKS__TIMEOUT_SECONDS": "3",
    "RETAIN_AUTOPILOT__WORKER": "true",
    "RETAIN_AUTOPILOT__INTERVAL_SECONDS": "0.5",
}


@dataclass(frozen=True)
class Keyed:
    store: Store
    keys: dict[str, str]


def test_a_serve_worker_killed_mid_delivery_executes_nothing_twice_after_restart(
    tmp_path: Path, receivers: Callable[..., Receiver]
) -> None:
    today = datetime.now(UTC).date()
    store = make_store(tmp_path, today, 8)
    record_week(
        store,
        today - timedelta(days=today.weekday()),
        {**arms(ids(6), CHOSEN, BILLING), **arms(ids(2, 6), HELD_OUT, None)},
    )
    keys = {"admin": KeyFile.for_store(store).create(["admin"], name="cs-ops")[1]}
    engine = receivers(hold=5.0)
    log = DecisionLog.for_store(store, Settings(home=store.root))
    Outbox(log).add(engine.url, ["action.execute"])
    first = Server(Keyed(store, keys), tmp_path / "first.log", today, **QUICK_ENV)
    assert engine.first.wait(60), first.log.read_text()
    first.process.kill()  # SIGKILL while the engine holds the request: no cleanup, the claim stays
    first.process.wait()
    held = engine.received[0].key

    second = Server(Keyed(store, keys), tmp_path / "second.log", today, **QUICK_ENV)
    try:
        executed = wait_for(lambda: len(engine.applied) == 6 and _all_delivered(log), 60)
        assert executed, (engine.applied, second.log.read_text()[-2000:])
        paused = second.call("POST", "/v1/autopilot/pause", json={"action": BILLING, "reason": "review"})
        listed = second.call("GET", "/v1/autopilot").json()["switches"]
        refused = second.call("POST", "/v1/autopilot/pause", json={"action": "save_offer"})
        denied = second.call("POST", "/v1/autopilot/resume", key=None, json={})
    finally:
        second.stop()
    executions = AutopilotLog(log).executions(datetime(2000, 1, 1, tzinfo=UTC))
    log.close()
    keys_sent = [r.key for r in engine.received]
    assert keys_sent.count(held) == 2, "the held delivery was sent again after the restart"
    assert sorted(engine.applied) == sorted(e.execution_id for e in executions), "each execution applied once"
    pairs = [(json.loads(r.body)["account_id"], json.loads(r.body)["action"]) for r in engine.received]
    assert sorted(set(pairs)) == [(a, BILLING) for a in ids(6)] and len(executions) == 6
    assert paused.status_code == 200 and paused.json()["actor"].startswith("key ") and paused.json()["paused"]
    assert [(s["scope"], s["paused"], s["reason"]) for s in listed] == [(BILLING, True, "review")]
    assert refused.status_code == 422 and refused.json()["error"]["fields"][0]["field"] == "body.action"
    assert denied.status_code == 401
    assert "Traceback" not in (tmp_path / "second.log").read_text()


def _all_delivered(log: DecisionLog) -> bool:
    with log.connect() as conn:
        statuses = conn.execute(sa.select(DELIVERIES.c.status)).scalars().all()
    return len(statuses) == 6 and set(statuses) == {"delivered"}


# -- the CLI ---------------------------------------------------------------------------------------------


def test_the_cli_runs_dry_pauses_and_refuses_an_unknown_action_with_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    store = make_store(tmp_path, MONDAY, 4)
    record_week(store, MONDAY, arms(ids(4), CHOSEN, BILLING))

    def retain(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["retain", "autopilot", *args, "--store", str(store.root)])
        with pytest.raises(SystemExit) as exit_:
            main()
        captured = capsys.readouterr()
        return int(exit_.value.code or 0), captured.out, captured.err

    code, out, _ = retain("run", "--dry-run", "--at", AT.isoformat())
    assert code == 0 and "would execute 4 of 4 autonomous plan rows" in out and "dry run" in out
    code, out, _ = retain("run", "--at", AT.isoformat(), "--json")
    assert code == 0 and json.loads(out)["executed"] == {BILLING: 4}
    code, out, _ = retain("pause", "--reason", "incident")
    assert code == 0 and "The whole autopilot is paused" in out and "incident" in out
    code, out, _ = retain("status")
    assert code == 0 and "paused" in out and "cli" in out
    code, out, err = retain("pause", "save_offer")
    assert code == 2 and out == "" and "'save_offer' is not an action the autopilot takes" in err
    code, out, _ = retain("run", "--at", "yesterday")
    assert code == 2
