"""Alerts at the steps that change what Retain knows, recorded for the webhooks.

The feature build raises the alert rules of the store's playbook (`features.playbook_file`), a scoring run
the accounts whose churn risk band changed since the cutoff scored before, a weekly plan the accounts whose
top recommendation is new or changed since the week planned before, a promotion or rollback a new champion.
Each is derived from what the store holds, with an id that depends only on what it says, so deriving
again records nothing twice: `retain alerts` re-derives the latest of each, for a step whose recording
failed while the decision log was away. Recording writes each new alert and its deliveries in one
transaction of the decision log's database (the outbox the delivery worker reads).

With `RETAIN_DELIVERY__ALERTS_SLACK_URL` set, the alerts a step records for the first time are also posted
to that Slack-compatible webhook, once, in one message: each with its reasons in words and a link to the
account's cockpit page. The webhooks stay the channel that retries; a post that fails is said, not retried
(docs/methods/delivery.md).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import get_args

import duckdb
import pandas as pd
import pyarrow.compute as pc

from core.contract import ACCOUNT_SCHEMA
from core.errors import RetainError
from core.settings import DeliverySettings, Settings
from features.alerts import Alert, Alerted, Evidence, alert_id, recommended, rule_alerts
from features.cutoffs import cutoff_instant
from features.playbook_file import Playbook, store_playbook
from features.run import actions_last_taken, register_store
from features.stored import read_features, stored_cutoffs
from products.delivery import (
    DeliveryError,
    SlackMessage,
    account_url,
    book_url,
    context,
    escaped,
    header,
    linked,
    post_to_slack,
    section,
)
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
#: alerts told in full in one Slack post; the rest are counted (the webhooks get every one)
SLACK_LISTED = 10
#: an alert's reasons quoted in its Slack post
SLACK_REASONS = 5
#: evidence a risk alert's summary already states in words: its reasons are the rest
_STATED = frozenset({"churn_probability", "churn_probability_before"})


def record(store: Store, settings: Settings, alerts: Sequence[Alert]) -> Alerted:
    """Write the alerts and their deliveries to the decision log's outbox, and post those new to it to
    Slack when set; a database that cannot be reached, or a post that fails, is said, not raised: the
    step that raised them succeeded."""
    if not alerts:
        return Alerted(0)
    slack = settings.delivery.alerts_slack_url
    log = DecisionLog.for_store(store, settings)
    try:
        outbox = Outbox(log)
        known = _known(outbox, alerts) if slack is not None else set()
        recorded = outbox.record(alerts)
    except RetainError as e:
        return Alerted(len(alerts), error=f"alerts not recorded: {e}; `retain alerts` records them")
    finally:
        log.close()
    done = Alerted(len(alerts), recorded.new, recorded.known, recorded.deliveries)
    new = [a for a in alerts if a.id not in known]
    if slack is None or not new:
        return done
    try:
        message = slack_alerts(new, _names(store, new), settings.delivery)
        post_to_slack(slack, message, settings.delivery.slack_timeout_seconds)
    except DeliveryError as e:
        said = f"recorded ({done.new} new, {done.deliveries} deliveries queued) but not posted to Slack: {e}"
        return replace(done, error=said)
    return done


def _known(outbox: Outbox, alerts: Sequence[Alert]) -> set[str]:
    """The ids among `alerts` the outbox holds already: Slack hears of an alert once, when it is new."""
    start, end = min(a.at for a in alerts), max(a.at for a in alerts) + timedelta(microseconds=1)
    return {brief.alert_id for brief in outbox.recorded(start, end)} & {a.id for a in alerts}


def _names(store: Store, alerts: Sequence[Alert]) -> dict[str, str]:
    """The alerted accounts' names, which a person reads more readily than an id."""
    ids = sorted({a.account_id for a in alerts if a.account_id is not None})
    if not ids:
        return {}
    where = pc.field("account_id").isin(ids)
    rows = store.read("accounts", ACCOUNT_SCHEMA, ["account_id", "name"], where=where).to_pylist()
    return {str(r["account_id"]): str(r["name"]) for r in rows if r["name"]}


def slack_alerts(
    alerts: Sequence[Alert], names: Mapping[str, str], settings: DeliverySettings
) -> SlackMessage:
    """One post for a step's new alerts: each with its summary, its reasons in words (as the alert carries
    them), the actions it recommends and a link to the account's cockpit page; past `SLACK_LISTED`, a
    count and a link to the cockpit's book."""
    title = f"{len(alerts)} new Retain alert(s)"
    listed = alerts[:SLACK_LISTED]
    blocks = [header(title), *(section(_slack_alert(a, names, settings)) for a in listed)]
    if len(alerts) > len(listed):
        book = book_url(settings)
        more = f"and {len(alerts) - len(listed)} more, each sent to the subscribed webhooks"
        blocks.append(context(more + ("" if book is None else f" · {linked('open the cockpit', book)}")))
    lines = [f"{names.get(a.account_id or '', a.account_id or 'Retain')}: {a.summary}" for a in listed]
    return SlackMessage(text="\n".join([title, *lines]), blocks=blocks)


def _slack_alert(alert: Alert, names: Mapping[str, str], settings: DeliverySettings) -> str:
    """One alert in mrkdwn: its type and account (linked), its summary, its reasons, its actions."""
    kind = f"*{escaped(alert.type.replace('_', ' '))}*"
    if alert.account_id is not None:
        name = names.get(alert.account_id)
        shown = f"{name} ({alert.account_id})" if name else alert.account_id
        kind += f" · {linked(shown, account_url(settings, alert.account_id))}"
    reasons = [e.text for e in alert.evidence if e.name not in _STATED][:SLACK_REASONS]
    lines = [kind, escaped(alert.summary), *(f"• {escaped(text)}" for text in reasons)]
    if alert.actions:
        lines.append("Recommended: " + escaped(", ".join(a.replace("_", " ") for a in alert.actions)))
    return "\n".join(lines)


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
