"""The feature table in pandas: every column the SQL build computes, as a data scientist would write it.

The baseline of the feature build benchmark (experiments/benchmarks/features.py), written from the feature
definitions rather than translated from the SQL's plan: per cutoff T, filter each event type to its window
(the days just before T), group by account and join the families on the accounts active at T; what does
not depend on T (each ticket's open and close, each milestone's first time, each intervention's usage
response) is computed once. Vectorised throughout, with no per-account Python loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from core.contract import EVENT_TYPES
from core.settings import Settings
from features.cutoffs import cutoff_instant
from features.definitions import FEATURE_NAMES, KEYS, RENEWAL_GRACE_DAYS

DAY = pd.Timedelta(days=1)
KINDS = {
    **dict.fromkeys(
        ("exec_sponsor_call", "health_check_call", "qbr_roi_review", "reference_ask"), "outreach"
    ),
    **dict.fromkeys(
        (
            "hypercare_onboarding",
            "integration_assist",
            "training_session",
            "office_hours_invite",
            "in_app_nudge",
        ),
        "enablement",
    ),
    **dict.fromkeys(("billing_outreach", "save_offer", "upgrade_offer"), "commercial"),
}
#: (name, days, days skipped before T) of the active-user windows
USER_WINDOWS = (
    ("7d", 7, 0),
    ("prev_7d", 7, 7),
    ("30d", 30, 0),
    ("prev_30d", 30, 30),
    ("61_90d", 30, 60),
    ("90d", 90, 0),
)


@dataclass(frozen=True)
class Inputs:
    """What every cutoff reads: events by type (in time order), the accounts and the per-entity tables."""

    by_type: dict[str, pd.DataFrame]
    accounts: pd.DataFrame
    #: the first instant each core feature was used (as core) by any account
    core_since: pd.Series
    #: the UTC midnight of the first event in the data
    first_day: pd.Timestamp
    tickets: pd.DataFrame
    milestones: pd.DataFrame
    interventions: pd.DataFrame


def window(frame: pd.DataFrame, t: pd.Timestamp, days: int | None = None, skip: int = 0) -> pd.DataFrame:
    """Rows in the `days` days ending `skip` days before t (all history before t when days is None)."""
    end = t - skip * DAY
    mask = frame["ts"] < end
    if days is not None:
        mask &= frame["ts"] >= end - days * DAY
    return frame[mask]


def days_between(earlier: pd.Series | pd.Timestamp, later: pd.Series | pd.Timestamp) -> pd.Series:
    return pd.Series(later - earlier).dt.total_seconds() / 86_400


def change(recent: pd.Series, prior: pd.Series) -> pd.Series:
    return (recent - prior) / prior.clip(lower=1)


def ratio(num: pd.Series, den: pd.Series) -> pd.Series:
    return num / den.where(den > 0)


def flag(condition: pd.Series, known: pd.Series) -> pd.Series:
    """1.0 / 0.0, NaN where `known` is False."""
    return condition.astype("float64").where(known)


class Grouped:
    """Per-account aggregates of event frames, aligned to the accounts active at one cutoff."""

    def __init__(self, index: pd.Index) -> None:
        self.index = index

    def count(self, frame: pd.DataFrame) -> pd.Series:
        return frame.groupby("account_id").size().reindex(self.index, fill_value=0)

    def sum(self, frame: pd.DataFrame, column: str) -> pd.Series:
        return frame.groupby("account_id")[column].sum().reindex(self.index, fill_value=0)

    def distinct(self, frame: pd.DataFrame, column: str) -> pd.Series:
        return frame.groupby("account_id")[column].nunique().reindex(self.index, fill_value=0)

    def latest_ts(self, frame: pd.DataFrame) -> pd.Series:
        return frame.groupby("account_id")["ts"].max().reindex(self.index)

    def latest(self, frame: pd.DataFrame, column: str) -> pd.Series:
        """The last non-null value of `column` (frames are in (ts, event_id) order)."""
        return frame.groupby("account_id")[column].last().reindex(self.index)


def prepare(events: pd.DataFrame, accounts: pd.DataFrame, interventions: pd.DataFrame) -> Inputs:
    """Split the events by type in (ts, event_id) order and build the tables no cutoff changes."""
    events = events.sort_values(["ts", "event_id"])
    by_type = {name: events.iloc[0:0] for name in EVENT_TYPES}
    for name, frame in events.groupby("event_type"):
        by_type[str(name)] = frame
    uses = by_type["feature.used"]
    by_type["feature.used"] = uses = uses.assign(core=uses["core"].eq(True))
    core = uses[uses["core"] & uses["feature"].notna()]
    snapshot = accounts.sort_values(["contract_start", "name"], ascending=[False, True])
    return Inputs(
        by_type=by_type,
        accounts=snapshot.drop_duplicates("account_id").set_index("account_id"),
        core_since=core.groupby("feature")["ts"].min(),
        first_day=events["ts"].min().floor("D"),
        tickets=_tickets(by_type),
        milestones=_milestones(by_type),
        interventions=_interventions(interventions, by_type["user.session"]),
    )


def _tickets(by_type: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per (account, ticket): first opened, first resolved, and the priority it was opened with."""
    keys = ["account_id", "ticket_id"]
    created = by_type["ticket.created"].dropna(subset=["ticket_id"]).groupby(keys)
    resolved = by_type["ticket.resolved"].dropna(subset=["ticket_id"]).groupby(keys)["ts"].min()
    tickets = created.agg(opened=("ts", "min"), priority=("priority", "first"))
    return tickets.join(resolved.rename("resolved"), how="outer").reset_index()


def _milestones(by_type: dict[str, pd.DataFrame]) -> pd.DataFrame:
    reached = by_type["onboarding.milestone"].dropna(subset=["milestone"])
    return reached.groupby(["account_id", "milestone"])["ts"].min().rename("reached").reset_index()


def _interventions(interventions: pd.DataFrame, sessions: pd.DataFrame) -> pd.DataFrame:
    """Interventions with their kind and the usage response: the relative change in sessions between the 14
    days after and the 14 days before the intervention day (from running totals of daily sessions)."""
    done = interventions.assign(
        day=interventions["ts"].dt.floor("D"), kind=interventions["action"].map(KINDS)
    )
    done = done.sort_values(["ts", "intervention_id"])
    if done.empty:
        return done.assign(response=pd.Series(dtype="float64"))
    days = pd.date_range(done["day"].min() - 15 * DAY, done["day"].max() + 15 * DAY, freq="D")
    daily = sessions.groupby(["account_id", sessions["ts"].dt.floor("D")]).size().unstack(fill_value=0)
    accounts = pd.Index(done["account_id"].unique())
    totals = daily.reindex(index=accounts, columns=days, fill_value=0).cumsum(axis=1).to_numpy()
    row, col = accounts.get_indexer(pd.Index(done["account_id"])), days.get_indexer(pd.Index(done["day"]))
    after = pd.Series(totals[row, col + 14] - totals[row, col], dtype="float64")
    before = pd.Series(totals[row, col - 1] - totals[row, col - 15], dtype="float64")
    return done.assign(response=change(after, before).to_numpy())


def terms(inputs: Inputs, t: pd.Timestamp) -> pd.DataFrame:
    """The accounts active at t, with the terms in force (the latest change before t overrides the
    snapshot) and when their telemetry begins (`observed_since`)."""
    acc = inputs.accounts[inputs.accounts["contract_start"] < t]
    by_type, g = inputs.by_type, Grouped(acc.index)
    arr_changes = pd.concat([by_type["plan.changed"], by_type["subscription.renewed"]])
    renewed = window(by_type["subscription.renewed"], t)
    frame = pd.DataFrame(
        {
            **{c: acc[c] for c in ("tier", "segment", "region", "industry", "contract_start")},
            "plan": g.latest(window(by_type["plan.changed"], t), "plan_to").fillna(acc["plan"]),
            "icp": acc["icp"].astype("float64"),
            "seats_purchased": g.latest(window(by_type["seats.changed"], t), "seats_to")
            .fillna(acc["seats_purchased"])
            .astype("float64"),
            "arr": g.latest(window(arr_changes.sort_values(["ts", "event_id"]), t), "arr_to").fillna(
                acc["arr"]
            ),
            "renewal_date": g.latest(renewed, "renewal_date").fillna(acc["renewal_date"]),
        }
    )
    cancelled = frame.index.isin(window(by_type["subscription.cancelled"], t)["account_id"])
    lapsed = frame["renewal_date"] + RENEWAL_GRACE_DAYS * DAY < t
    frame = frame[~cancelled & ~lapsed]
    telemetry = inputs.first_day if inputs.first_day < t else t
    start = frame["contract_start"]
    return frame.assign(observed_since=start.where(start > telemetry, telemetry))


def usage(inputs: Inputs, g: Grouped, t: pd.Timestamp, seats: pd.Series) -> pd.DataFrame:
    """Sessions, active users, stickiness and seat use."""
    sessions = inputs.by_type["user.session"]
    users = sessions[sessions["user_id"].notna()]
    n = {(w, s): g.count(window(sessions, t, w, s)) for w, s in ((7, 0), (7, 7), (30, 0), (30, 30), (90, 0))}
    active = {name: g.distinct(window(users, t, d, s), "user_id") for name, d, s in USER_WINDOWS}
    row = pd.DataFrame(index=g.index)
    for days in (7, 30, 90):
        row[f"sessions_{days}d"] = n[(days, 0)]
    row["session_minutes_30d"] = g.sum(window(sessions, t, 30), "duration_min").astype("float64")
    row["sessions_wow"] = change(n[(7, 0)], n[(7, 7)])
    row["sessions_30v30"] = change(n[(30, 0)], n[(30, 30)])
    for days in (7, 30, 90):
        row[f"active_users_{days}d"] = active[f"{days}d"]
    row["active_users_wow"] = change(active["7d"], active["prev_7d"])
    row["active_users_30v30"] = change(active["30d"], active["prev_30d"])
    for days in (7, 30, 90):
        recent = window(users, t, days)
        user_days = recent.assign(day=recent["ts"].dt.floor("D")).drop_duplicates(
            ["account_id", "user_id", "day"]
        )
        row[f"stickiness_{days}d"] = ratio(g.count(user_days) / float(days), active[f"{days}d"])
    row["seat_utilisation"] = ratio(active["30d"], seats)
    row["days_since_last_session"] = days_between(g.latest_ts(window(sessions, t)), t)
    row["usage_drop_alert"] = ((n[(7, 7)] > 0) & (n[(7, 0)] <= 0.5 * n[(7, 7)])).astype("int64")
    row["seat_limit_near"] = flag(row["seat_utilisation"] >= 0.8, row["seat_utilisation"].notna())
    over = pd.Series(3.0, index=g.index)
    for months, name in ((2, "61_90d"), (1, "prev_30d"), (0, "30d")):
        over = over.mask(active[name] <= seats, float(months))
    row["months_over_seat_limit"] = over.where(seats > 0)
    return row


def adoption(inputs: Inputs, g: Grouped, t: pd.Timestamp) -> pd.DataFrame:
    """Feature uses, distinct features used and core features among them, recipes and deployments."""
    uses = inputs.by_type["feature.used"]
    n = {
        (w, s): g.sum(window(uses, t, w, s), "count") for w, s in ((7, 0), (7, 7), (30, 0), (30, 30), (90, 0))
    }
    named = window(uses[uses["feature"].notna()], t, 90)
    per_feature = named.groupby(["account_id", "feature"]).agg(core=("core", "any"), last=("ts", "max"))
    per_feature = per_feature.reset_index()
    known = float((inputs.core_since < t).sum())
    row = pd.DataFrame(index=g.index)
    for days in (7, 30, 90):
        row[f"feature_uses_{days}d"] = n[(days, 0)]
    row["feature_uses_wow"] = change(n[(7, 0)], n[(7, 7)])
    row["feature_uses_30v30"] = change(n[(30, 0)], n[(30, 30)])
    recent = {days: per_feature[per_feature["last"] >= t - days * DAY] for days in (7, 30, 90)}
    for days in (7, 30, 90):
        row[f"features_used_{days}d"] = g.count(recent[days])
    core_30, core_7 = (g.count(recent[d][recent[d]["core"]]) for d in (30, 7))
    row["core_feature_share_30d"] = core_30 / known if known > 0 else np.nan
    row["core_features_unused_7d"] = known - core_7 if known > 0 else np.nan
    row["recipes_completed_30d"] = g.count(window(inputs.by_type["recipe.completed"], t, 30))
    row["deployments_30d"] = g.count(window(inputs.by_type["deployment.published"], t, 30))
    return row


def reliability(inputs: Inputs, g: Grouped, t: pd.Timestamp, sessions: pd.DataFrame) -> pd.DataFrame:
    """Errors (per session, sessions floored at 1), the error spike, job retries and integrations."""
    errors, retries = inputs.by_type["error.raised"], inputs.by_type["job.retry"]
    row = pd.DataFrame(index=g.index)
    for days in (7, 30, 90):
        row[f"errors_{days}d"] = g.sum(window(errors, t, days), "count")
    row["error_rate_7d"] = row["errors_7d"] / sessions["sessions_7d"].clip(lower=1)
    row["error_rate_30d"] = row["errors_30d"] / sessions["sessions_30d"].clip(lower=1)
    row["error_spike"] = error_spike(errors, g, t)
    row["job_retries_7d"] = g.sum(window(retries, t, 7), "count")
    row["job_retries_30d"] = g.sum(window(retries, t, 30), "count")
    states = window(inputs.by_type["integration.state"].dropna(subset=["integration"]), t)
    latest = states.drop_duplicates(["account_id", "integration"], keep="last")
    row["integrations_ok"] = g.count(latest[latest["status"] == "ok"])
    row["integrations_failing"] = g.count(latest[latest["status"].isin(["failing", "disconnected"])])
    return row


def error_spike(errors: pd.DataFrame, g: Grouped, t: pd.Timestamp) -> pd.Series:
    """The worst day of the last 7 above the account's p95 of daily errors over the 90 days before them
    (nearest rank: at most 4 of those 90 days had as many errors or more)."""
    recent = window(errors, t, 97)
    daily = (
        recent.groupby(["account_id", recent["ts"].dt.floor("D").rename("day")])["count"].sum().reset_index()
    )
    peak = daily[daily["day"] >= t - 7 * DAY].groupby("account_id")["count"].max().rename("peak")
    baseline = daily[daily["day"] < t - 7 * DAY].join(peak, on="account_id")
    above = baseline[(baseline["count"] > 0) & (baseline["count"] >= baseline["peak"])]
    peak = peak.reindex(g.index).fillna(0)
    return ((peak > 0) & (g.count(above) <= 4)).astype("int64")


def onboarding(inputs: Inputs, g: Grouped, t: pd.Timestamp, acc: pd.DataFrame) -> pd.DataFrame:
    """Milestones reached before t; first value and stalls are unknown for an account that onboarded before
    telemetry began and showed no milestone."""
    reached = inputs.milestones[inputs.milestones["reached"] < t].rename(columns={"reached": "ts"})
    milestones = g.count(reached)
    last = g.latest_ts(reached)
    first_value = g.latest_ts(reached[reached["milestone"] == "first_value"])
    known = (milestones > 0) | (acc["observed_since"] <= acc["contract_start"])
    since = days_between(last.fillna(acc["contract_start"]), t)
    row = pd.DataFrame(index=g.index)
    row["onboarding_milestones"] = milestones
    row["first_value_reached"] = flag(first_value.notna(), known)
    row["days_to_first_value"] = days_between(acc["contract_start"], first_value)
    row["days_since_last_milestone"] = days_between(last, t)
    row["onboarding_stalled"] = flag(first_value.isna() & (since > 3), known)
    return row


def support(inputs: Inputs, g: Grouped, t: pd.Timestamp) -> pd.DataFrame:
    """Tickets, open P1/P2s, sentiment, CSAT and the last NPS answer."""
    by_type = inputs.by_type
    created = by_type["ticket.created"]
    tickets = inputs.tickets
    open_now = (tickets["opened"] < t) & ~(tickets["resolved"] < t) & tickets["priority"].isin(["P1", "P2"])
    resolved = window(by_type["ticket.resolved"], t, 90)
    rated = window(pd.concat([by_type["ticket.resolved"], by_type["survey.response"]]), t, 90)
    nps = window(by_type["survey.response"].dropna(subset=["nps"]), t)
    row = pd.DataFrame(index=g.index)
    row["tickets_created_30d"] = g.count(window(created, t, 30))
    row["tickets_created_90d"] = g.count(window(created, t, 90))
    row["open_p1p2_tickets"] = g.count(tickets[open_now])
    row["ticket_sentiment_90d"] = ratio(
        g.sum(resolved, "sentiment"), g.count(resolved.dropna(subset=["sentiment"]))
    )
    row["csat_90d"] = ratio(g.sum(rated, "csat"), g.count(rated.dropna(subset=["csat"])))
    row["nps_last"] = g.latest(nps, "nps").astype("float64")
    row["days_since_nps"] = days_between(g.latest_ts(nps), t)
    return row


def engagement(inputs: Inputs, g: Grouped, t: pd.Timestamp, acc: pd.DataFrame) -> pd.DataFrame:
    """The sponsor (disengaged: no touch seen for 60 days) and in-app nudges."""
    touches = inputs.by_type["sponsor.touch"]
    last_touch = g.latest_ts(window(touches, t))
    sent = g.count(window(inputs.by_type["nudge.sent"], t, 90))
    acted = g.count(window(inputs.by_type["nudge.acted"], t, 90))
    row = pd.DataFrame(index=g.index)
    row["days_since_sponsor_touch"] = days_between(last_touch, t)
    row["sponsor_touches_90d"] = g.count(window(touches, t, 90))
    row["sponsor_disengaged"] = (days_between(last_touch.fillna(acc["observed_since"]), t) > 60).astype(
        "int64"
    )
    row["nudges_sent_90d"] = sent
    row["nudges_acted_90d"] = acted
    row["nudge_act_rate_90d"] = ratio(acted, sent)
    return row


def billing(inputs: Inputs, g: Grouped, t: pd.Timestamp) -> pd.DataFrame:
    """Invoices whose latest status before t is overdue or failed, payment failures, the last payment."""
    invoices = inputs.by_type["billing.invoice"]
    latest = window(invoices.dropna(subset=["invoice_id"]), t).drop_duplicates(
        ["account_id", "invoice_id"], keep="last"
    )
    open_ = latest[latest["status"].isin(["overdue", "failed"])]
    row = pd.DataFrame(index=g.index)
    row["invoices_overdue"] = g.count(open_[open_["status"] == "overdue"])
    row["invoices_failed"] = g.count(open_[open_["status"] == "failed"])
    row["open_invoice_amount"] = g.sum(open_, "amount").astype("float64")
    row["payment_failures_90d"] = g.count(window(invoices[invoices["status"] == "failed"], t, 90))
    row["days_since_last_payment"] = days_between(
        g.latest_ts(window(invoices[invoices["status"] == "paid"], t)), t
    )
    return row


def past_interventions(inputs: Inputs, g: Grouped, t: pd.Timestamp) -> pd.DataFrame:
    """Interventions by kind in the last 90 days, the latest one and the response to the latest one whose
    follow-up fortnight ended before t."""
    done = inputs.interventions
    recent = window(done, t, 90)
    followed = done[done["day"] + 15 * DAY <= t]
    row = pd.DataFrame(index=g.index)
    row["interventions_90d"] = g.count(recent)
    for kind in ("outreach", "enablement", "commercial"):
        row[f"{kind}_interventions_90d"] = g.count(recent[recent["kind"] == kind])
    row["days_since_last_intervention"] = days_between(g.latest_ts(window(done, t)), t)
    row["last_intervention_response"] = g.latest(followed, "response")
    return row


def at_cutoff(inputs: Inputs, day: date) -> pd.DataFrame:
    """Every feature of the accounts active at one cutoff (the health score is added over all cutoffs)."""
    t = pd.Timestamp(cutoff_instant(day))
    acc = terms(inputs, t)
    g = Grouped(acc.index)
    row = acc[["tier", "segment", "region", "industry", "plan", "icp", "seats_purchased", "arr"]].copy()
    row["tenure_days"] = days_between(acc["contract_start"], t)
    row["days_observed"] = days_between(acc["observed_since"], t)
    row["days_to_renewal"] = days_between(t, acc["renewal_date"])
    used = usage(inputs, g, t, acc["seats_purchased"])
    families = [
        used,
        adoption(inputs, g, t),
        reliability(inputs, g, t, used),
        onboarding(inputs, g, t, acc),
        support(inputs, g, t),
        engagement(inputs, g, t, acc),
        billing(inputs, g, t),
        past_interventions(inputs, g, t),
    ]
    return pd.concat([row, *families], axis=1).assign(cutoff=t).rename_axis("account_id").reset_index()


def clamp01(x: pd.Series) -> pd.Series:
    return x.clip(0.0, 1.0)


def health(rows: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """The rules-based health score (docs/domain.md): unknown inputs count as the middle of their scale."""
    w, bands = settings.health_weights, settings.health_bands
    usage_ = 100 * (
        0.4 * rows["seat_utilisation"].fillna(0.5).clip(upper=1.0)
        + 0.3 * clamp01(1 + rows["sessions_30v30"])
        + 0.3 * clamp01((30 - rows["days_since_last_session"]) / 23).fillna(0)
    )
    sponsor = rows["days_since_sponsor_touch"].fillna(rows["days_observed"])
    engagement_ = 100 * (
        0.4 * clamp01(rows["stickiness_30d"].fillna(0) / 0.5)
        + 0.3 * clamp01((90 - sponsor) / 60)
        + 0.3 * rows["core_feature_share_30d"].fillna(0.5)
    )
    voice = 100 * (
        0.4 * (rows["nps_last"] / 10).fillna(0.5)
        + 0.3 * ((rows["csat_90d"] - 1) / 4).fillna(0.5)
        + 0.3 * ((rows["ticket_sentiment_90d"] + 1) / 2).fillna(0.5)
    )
    satisfaction = (voice - 20 * rows["open_p1p2_tickets"]).clip(lower=0.0)
    payment = pd.Series(
        np.where(rows["invoices_overdue"] + rows["invoices_failed"] > 0, 0.0, 100.0), rows.index
    )
    total = (
        w.usage * usage_ + w.engagement * engagement_ + w.satisfaction * satisfaction + w.payment * payment
    )
    score = np.sign(total) * np.floor(np.abs(total) * 10 + 0.5) / 10  # half away from zero, as SQL rounds
    band = np.select(
        [score >= bands.healthy, score >= bands.neutral, score >= bands.at_risk],
        ["healthy", "neutral", "at_risk"],
        "critical",
    )
    return rows.assign(
        health_usage=usage_,
        health_engagement=engagement_,
        health_satisfaction=satisfaction,
        health_payment=payment,
        health_score=score,
        health_band=band,
    )


def pandas_features(
    events: pd.DataFrame,
    accounts: pd.DataFrame,
    interventions: pd.DataFrame,
    cutoffs: list[date],
    settings: Settings,
) -> pd.DataFrame:
    """Every column of the feature table, one row per account active at each cutoff."""
    inputs = prepare(events, accounts, interventions)
    rows = pd.concat([at_cutoff(inputs, day) for day in cutoffs], ignore_index=True)
    return health(rows, settings)[[*KEYS, *FEATURE_NAMES]]
