"""Alerts from the steps that raise them, on a copy of the drifted world's store: recorded once in the
decision log's outbox, derived again after an outage, delivered signed to a subscribed receiver."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from features.alerts import ALERT_SCHEMA_VERSION, Alerted
from features.playbook_file import BUILT_IN
from features.stored import stored_cutoffs
from products.alerting import feature_alerts, score_alerts
from retain import api
from serving.assess import risk_band
from store.delta import Store
from tests.support.receivers import Receiver
from tests.support.worlds import DriftedWorld


@pytest.fixture(scope="module")
def world(drifted_world: DriftedWorld, tmp_path_factory: pytest.TempPathFactory) -> DriftedWorld:
    """The drifted world on a copy of its store with a new decision log: these tests count alerts from an
    empty outbox, and other modules' steps on the shared store (a `retain retrain` builds features) may
    have recorded the same alerts in its log."""
    store = Store(tmp_path_factory.mktemp("alerts") / "store")
    shutil.copytree(drifted_world.store.root, store.root, ignore=shutil.ignore_patterns("decisions.db*"))
    settings = drifted_world.settings.model_copy(update={"home": store.root})
    return DriftedWorld(store, settings, drifted_world.simulation)


@pytest.fixture(scope="module")
def subscribed(world: DriftedWorld) -> Iterator[tuple[Receiver, str]]:
    """A receiver subscribed to every alert type of the world's store, and its signing secret."""
    receiver = Receiver()
    where = {"store": world.store, "settings": world.settings}
    added = api.add_webhook(receiver.url, ["*"], **where)
    yield receiver, added.secret
    api.remove_webhook(added.webhook.webhook_id, **where)
    receiver.close()


def test_a_build_records_its_alerts_once_and_the_receiver_gets_them_signed(
    world: DriftedWorld, subscribed: tuple[Receiver, str]
) -> None:
    receiver, secret = subscribed
    store, settings = world.store, world.settings
    built = api.build_features(store=store, settings=settings, online=False)
    expected = feature_alerts(store, BUILT_IN)
    assert expected and {a.type for a in expected} <= {r.type for r in BUILT_IN.alerts}
    assert built.alerts == Alerted(len(expected), len(expected), 0, len(expected))
    again = api.build_features(store=store, settings=settings, online=False)
    assert again.alerts == Alerted(len(expected), 0, len(expected), 0), "a rebuild records nothing twice"

    assert api.deliver_webhooks(store=store, settings=settings).sent == len(expected)
    payloads = [json.loads(r.body) for r in receiver.received]
    assert sorted(p["id"] for p in payloads) == sorted(a.id for a in expected)
    assert all(r.verifies(secret) for r in receiver.received)
    assert {r.key for r in receiver.received} == {p["id"] for p in payloads}
    first = next(p for p in payloads if p["id"] == expected[0].id)
    assert first["schema_version"] == ALERT_SCHEMA_VERSION and first["type"] == expected[0].type
    assert first["account_id"] == expected[0].account_id and first["summary"] == expected[0].summary
    assert [e["name"] for e in first["evidence"]] == [e.name for e in expected[0].evidence]
    assert first["actions"] == list(expected[0].actions)


def test_scoring_alerts_the_accounts_whose_risk_band_changed_and_an_outage_loses_none(
    world: DriftedWorld, tmp_path: Path
) -> None:
    store, settings = world.store, world.settings
    before, latest = stored_cutoffs(store)[-2:]
    api.score(before, tmp_path / "before.parquet", store=store, settings=settings)
    away = settings.model_copy(
        update={"serve": settings.serve.model_copy(update={"decision_log_url": "sqlite:////proc/away/d.db"})}
    )
    scored = api.score(latest, tmp_path / "latest.parquet", store=store, settings=away)

    bands = {
        name: pd.read_parquet(tmp_path / f"{name}.parquet")
        .set_index("account_id")["churn_probability"]
        .map(lambda p: risk_band(p, settings))
        for name in ("before", "latest")
    }
    both = bands["before"].index.intersection(bands["latest"].index)
    changed = {a for a in both if bands["before"][a] != bands["latest"][a]}
    alerts = score_alerts(store, settings, latest, BUILT_IN)
    assert changed and {a.account_id for a in alerts} == changed
    assert scored.alerts is not None and scored.alerts.raised == len(changed) and scored.alerts.new == 0
    assert scored.alerts.error is not None and "retain alerts" in scored.alerts.error, "the scores stand"
    # derived again once the log is back, under the same ids; the build's alerts were recorded before
    recorded = api.alerts(store=store, settings=settings)
    assert recorded.new == len(changed) and recorded.known == recorded.raised - len(changed)
    for alert in alerts:
        was, now = bands["before"][alert.account_id], bands["latest"][alert.account_id]
        assert f"from {was} to {now}" in alert.summary
        assert [e.name for e in alert.evidence][:2] == ["churn_probability", "churn_probability_before"]
