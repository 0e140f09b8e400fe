"""Alerts at the steps that change what Retain knows, recorded for the webhooks.

The feature build raises the alert rules of the store's playbook (`features.playbook_file`), a scoring run
the accounts whose churn risk band changed since the cutoff scored before, a weekly plan the accounts whose
top recommendation is new or changed since the week planned before, a promotion or rollback a new champion.
Each is derived from what the store holds, with an id that depends only on what it says, so deriving
again records nothing twice: `retain alerts` re-derives the latest of each, for a step whose recording
failed while the decision log was away. Recording writes each new alert and its deliveries in one
transaction of the decision log's database (the outbox the delivery worker reads).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import get_args

import duckdb
import pandas as pd
import pyarrow.compute as pc

from core.errors import RetainError
from core.settings import Settings
from features.alerts import Alert, Alerted, Evidence, alert_id, recommended, rule_alerts
from features.cutoffs import cutoff_instant
from features.playbook_file import Playbook, store_playbook
from features.run import actions_last_taken, register_store
from features.stored import read_features, stored_cutoffs
from registry.promotion import Promotion, Rollback
from serving.assess import risk_band
from serving.batch import SCORES, SCORES_SCHEMA, scored_cutoffs
from serving.schemas import RiskBand
from serving.webhooks.outbox import Outbox
from store.decision_log import DecisionLog
from store.delta import Store
from store.plan_table import ACTED, recorded_plans

#: the risk bands, lowest first
BANDS: tuple[str, ...] = get_args(RiskBand)


def record(store: Store, settings: Settings, alerts: Sequence[Alert]) -> Alerted:
    """Write the alerts and their deliveries to the decision log's outbox; a database that cannot be
    reached is said, not raised: the step that raised them succeeded."""
    if not alerts:
        return Alerted(0)
    log = DecisionLog.for_store(store, settings)
    try:
        recorded = Outbox(log).record(alerts)
    except RetainError as e:
        return Alerted(len(alerts), error=f"alerts not recorded: {e}; `retain alerts` records them")
    finally:
        log.close()
    return Alerted(len(alerts), recorded.new, recorded.known, recorded.deliveries)


def record_champion(store: Store, settings: Settings, change: Promotion | Rollback) -> Alerted:
    """Record the champion's change, if the promotion or rollback made one."""
    alert = champion_alert(change)
    return record(store, settings, [] if alert is None else [alert])


def record_latest(store: Store, settings: Settings) -> Alerted:
    """The alerts of the latest feature cutoff, scored cutoff and planned week, derived again and
    recorded: those already recorded are left as they were."""
    return record(store, settings, latest_alerts(store, settings))


def latest_alerts(store: Store, settings: Settings) -> list[Alert]:
    playbook = store_playbook(store, settings)
    found = feature_alerts(store, playbook)
    scored = scored_cutoffs(store)
    if scored:
        found += score_alerts(store, settings, scored[-1].date(), playbook)
    plans = recorded_plans(store)
    if not plans.empty:
        found += plan_alerts(plans, plans["week"].max().date())
    return found


def feature_alerts(store: Store, playbook: Playbook) -> list[Alert]:
    """The playbook's rules met at the feature table's latest cutoff and not at the cutoff before it."""
    cutoffs = [cutoff_instant(c) for c in stored_cutoffs(store)[-2:]]
    if not cutoffs:
        return []
    rows = read_features(store, where=pc.field("cutoff").isin(cutoffs)).to_pandas()
    latest = rows[rows["cutoff"] == cutoffs[-1]]
    previous = rows[rows["cutoff"] == cutoffs[0]] if len(cutoffs) > 1 else rows.iloc[0:0]
    return rule_alerts(latest, previous, _last_taken(store, cutoffs[-1]), playbook)


def score_alerts(store: Store, settings: Settings, cutoff: date, playbook: Playbook) -> list[Alert]:
    """An alert per account whose churn risk band at `cutoff` differs from its band at the cutoff scored
    before it (an account first scored now has no band to change from)."""
    at = cutoff_instant(cutoff)
    earlier = [c for c in scored_cutoffs(store) if c < at]
    if not earlier:
        return []
    scored = store.read(SCORES, SCORES_SCHEMA, where=pc.field("cutoff").isin([max(earlier), at])).to_pandas()
    now = scored[scored["cutoff"] == pd.Timestamp(at)].set_index("account_id")
    before = scored[scored["cutoff"] == pd.Timestamp(max(earlier))].set_index("account_id")
    both = now.join(before[["churn_probability"]], rsuffix="_before", how="inner")
    band = both["churn_probability"].map(lambda p: risk_band(float(p), settings))
    band_before = both["churn_probability_before"].map(lambda p: risk_band(float(p), settings))
    changed = both[band != band_before]
    if changed.empty:
        return []
    rows = read_features(store, where=pc.field("cutoff") == at).to_pandas().set_index("account_id")
    taken = _last_taken(store, at)
    alerts = []
    for account, score in changed.iterrows():
        was, is_ = band_before[account], band[account]
        rose = BANDS.index(is_) > BANDS.index(was)
        p, p_before = float(score["churn_probability"]), float(score["churn_probability_before"])
        summary = (
            f"Churn risk {'rose' if rose else 'fell'} from {was} to {is_} "
            f"({p_before:.0%} to {p:.0%} within the horizon)."
        )
        evidence = (
            Evidence("churn_probability", round(p, 4), f"Churn probability {p:.0%}"),
            Evidence("churn_probability_before", round(p_before, 4), f"{p_before:.0%} at the cutoff before"),
            *(Evidence(r["feature"], r["value"], r["text"]) for r in json.loads(score["reasons"])),
        )
        row = rows.loc[account].to_dict() if account in rows.index else None
        actions = () if row is None else recommended(row, taken.get(str(account), {}), at, playbook)
        key = alert_id("risk_band_changed", str(account), at)
        alerts.append(Alert(key, "risk_band_changed", str(account), at, summary, evidence, actions))
    return alerts


def plan_alerts(plans: pd.DataFrame, week: date) -> list[Alert]:
    """An alert per account the week's plan acts on with another action than the plan before it did (or
    than nothing: it was not planned then); `plans` are the recorded plans (`recorded_plans`)."""
    at = cutoff_instant(week)
    planned = plans[plans["arm"].isin(ACTED)]
    now = planned[planned["week"] == pd.Timestamp(at)].set_index("account_id")
    weeks = plans.loc[plans["week"] < pd.Timestamp(at), "week"]
    before = now.iloc[0:0] if weeks.empty else planned[planned["week"] == weeks.max()].set_index("account_id")
    alerts = []
    for account, row in now.iterrows():
        previous = before["action"].get(account)
        if previous == row["action"]:
            continue
        was = "nothing" if previous is None else previous.replace("_", " ")
        summary = (
            f"New top recommendation: {row['action'].replace('_', ' ')} "
            f"(expected value ${row['expected_value']:,.0f}; the plan before recommended {was})."
        )
        evidence = (
            Evidence("expected_value", round(float(row["expected_value"]), 2), "Expected value in dollars"),
            Evidence("previous_action", previous, f"The plan before recommended {was}"),
        )
        key = alert_id("recommendation_changed", str(account), at)
        action = (str(row["action"]),)
        alerts.append(Alert(key, "recommendation_changed", str(account), at, summary, evidence, action))
    return alerts


def champion_alert(change: Promotion | Rollback, at: datetime | None = None) -> Alert | None:
    """A new champion from a promotion (promoted or forced) or a rollback; None when it stayed."""
    if isinstance(change, Rollback):
        before, after, why = change.rolled_back, change.champion, "rolled back"
    elif change.decision in ("promoted", "forced") and change.champion != change.champion_before:
        before, after, why = change.champion_before, change.champion, change.reason
    else:
        return None
    when = at or datetime.now(UTC)
    summary = f"{change.name}: version {after} replaced version {before} as champion ({why})."
    evidence = (
        Evidence("champion", after, f"Champion version {after}"),
        Evidence("champion_before", before, f"Version {before} before"),
    )
    key = alert_id("champion_changed", f"{change.name}/{after}", when)
    return Alert(key, "champion_changed", None, when, summary, evidence, ())


def _last_taken(store: Store, at: datetime) -> dict[str, dict[str, datetime]]:
    with duckdb.connect() as con:
        register_store(con, store)
        return actions_last_taken(con, at)
