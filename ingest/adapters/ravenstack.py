"""RavenStack (a public synthetic B2B SaaS dataset) as Retain accounts and events.

The adapter maps and rejects only what mapping needs (an id to derive event ids from, a date to order
subscriptions by, a subscription that names its account); type and range checks are left to the
common validation. Decisions the data does not settle:
- an account's tier and arr come from its first subscription (earliest start_date, then id), trial
  when the account is a trial; renewal_date is contract_start + 1 year (the data has no term);
- subscriptions are ordered per account by (start_date, subscription_id); each one that differs from
  the previous in plan or seats is a `plan.changed` / `seats.changed` at its start_date;
- a paid subscription is a `subscription.renewed` when it starts no later than one day after the
  account's earlier subscriptions stop covering it (or while one is still open): the customer paid
  again without a gap. After a gap it is a reactivation, for which the contract has no event;
- the data's dates and times carry no zone (closed_at is a time of day): they are taken as UTC, said
  here and written with their offset, since the contract quarantines a time without a zone.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from core.contract import TIER_ARR, Tier
from core.errors import RetainError
from ingest.adapters.adapted import Adapted
from ingest.readers import Frame

#: Source columns the mapping reads, per file; every other column is reported as unmapped.
USED = {
    "accounts.csv": (
        "account_id",
        "account_name",
        "industry",
        "country",
        "signup_date",
        "plan_tier",
        "seats",
        "is_trial",
    ),
    "subscriptions.csv": (
        "subscription_id",
        "account_id",
        "start_date",
        "end_date",
        "plan_tier",
        "seats",
        "arr_amount",
        "is_trial",
    ),
    "feature_usage.csv": (
        "usage_id",
        "subscription_id",
        "usage_date",
        "feature_name",
        "usage_count",
        "error_count",
    ),
    "support_tickets.csv": (
        "ticket_id",
        "account_id",
        "submitted_at",
        "closed_at",
        "priority",
        "satisfaction_score",
    ),
    "churn_events.csv": ("churn_event_id", "account_id", "churn_date", "reason_code"),
}
WHY_UNMAPPED = {
    "referral_source": "no contract field",
    "churn_flag": "a label; churn is derived from subscription.cancelled and renewals, never imported",
    "mrr_amount": "arr_amount / 12",
    "upgrade_flag": "seldom matches the plan sequence, from which plan.changed is derived",
    "downgrade_flag": "seldom matches the plan sequence, from which plan.changed is derived",
    "billing_frequency": "no contract field (renewal terms are taken as yearly)",
    "auto_renew_flag": "no contract field",
    "usage_duration_secs": "feature.used has no duration; a user.session is one user's, not a feature-day",
    "is_beta_feature": "no contract property",
    "resolution_time_hours": "implied: closed_at - submitted_at",
    "first_response_time_minutes": "no contract property",
    "escalation_flag": "no contract property",
    "refund_amount_usd": "no contract property",
    "preceding_upgrade_flag": "implied by plan.changed events",
    "preceding_downgrade_flag": "implied by plan.changed events",
    "is_reactivation": "no contract property",
    "feedback_text": "free text; reason keeps reason_code",
}
PRIORITY = {"urgent": "P1", "high": "P2", "medium": "P3", "low": "P4"}
FLAGS = {"true": True, "false": False, "1": True, "0": False}
ONE_DAY = pd.Timedelta(days=1)


class _Table:
    """One source file: its rows, and the count of rows rejected per reason."""

    def __init__(self, folder: Path, name: str) -> None:
        self.name = name
        self.path = folder / name
        if not self.path.is_file():
            raise RetainError(f"ravenstack: {self.path} is missing")
        try:
            self.rows = pd.read_csv(self.path, dtype=str, keep_default_na=False, na_values=[""])
        except (OSError, ValueError, UnicodeDecodeError) as e:
            raise RetainError(f"ravenstack: cannot read {self.path}: {e}") from e
        missing = [c for c in USED[name] if c not in self.rows.columns]
        if missing:
            raise RetainError(f"ravenstack: {self.path} lacks column(s) {', '.join(missing)}")
        self.rejected: Counter[str] = Counter()

    def keep(self, rows: pd.DataFrame, checks: dict[str, pd.Series]) -> pd.DataFrame:
        """Rows passing every check; each other row is counted under the first check it fails."""
        failed = pd.Series(False, index=rows.index)
        for reason, bad in checks.items():
            new = bad & ~failed
            if new.any():
                self.rejected[reason] += int(new.sum())
            failed |= new
        return rows[~failed]

    def report(self, produced: dict[str, int]) -> dict[str, Any]:
        rejected = sum(self.rejected.values())
        return {
            "source": str(self.path),
            "source_rows": len(self.rows),
            "mapped": len(self.rows) - rejected,
            "rejected": dict(self.rejected),
            "produced": produced,
            "unmapped_columns": {
                c: WHY_UNMAPPED.get(c, "not known to this adapter")
                for c in self.rows.columns
                if c not in USED[self.name]
            },
        }


def _dates(values: pd.Series) -> pd.Series:
    """Parsed as UTC (the dataset names no zone); what does not parse is NaT."""
    return pd.to_datetime(values, errors="coerce", format="ISO8601", utc=True)


def _utc_text(values: pd.Series) -> pd.Series:
    """Source times as ISO-8601 text with their UTC offset; text that does not parse is passed on as it
    is, for validation to quarantine with its value."""
    parsed = _dates(values)
    return parsed.dt.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00").where(parsed.notna(), values)


def _numbers(values: pd.Series) -> pd.Series:
    return pd.to_numeric(values, errors="coerce")


def _flags(values: pd.Series) -> pd.Series:
    return values.str.strip().str.lower().map(FLAGS)


def _missing(rows: pd.DataFrame, *columns: str) -> pd.Series:
    return rows[list(columns)].isna().any(axis=1)


def _tier(arr: float) -> str | None:
    if pd.isna(arr):
        return None
    if arr >= TIER_ARR[Tier.ENTERPRISE][0]:
        return Tier.ENTERPRISE.value
    return next(t.value for t, (low, high) in TIER_ARR.items() if low <= arr < high)


def _events(
    rows: pd.DataFrame, ids: pd.Series, suffix: str, event_type: str, ts: pd.Series, **props: Any
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "event_id": "rs-" + ids + "-" + suffix,
            "account_id": rows["account_id"],
            "user_id": None,
            "ts": _utc_text(ts),
            "event_type": event_type,
            **props,
        }
    )


def _frame(source: _Table, events: list[pd.DataFrame]) -> tuple[Frame, dict[str, int]]:
    data = pd.concat(events, ignore_index=True)
    produced = {str(t): int(n) for t, n in data["event_type"].value_counts().items()} if len(data) else {}
    return Frame("events", str(source.path), pa.Table.from_pandas(data, preserve_index=False)), produced


def _subscriptions(src: _Table) -> pd.DataFrame:
    """Valid subscriptions in timeline order, with parsed columns and the previous subscription's."""
    rows = src.rows
    parsed = rows.assign(
        start=_dates(rows["start_date"]),
        end=_dates(rows["end_date"]),
        seats_n=_numbers(rows["seats"]),
        arr=_numbers(rows["arr_amount"]),
        trial=_flags(rows["is_trial"]),
    )
    subs = src.keep(
        parsed,
        {
            "missing_id": _missing(parsed, "subscription_id", "account_id"),
            "bad_start_date": parsed["start"].isna(),
            "bad_end_date": parsed["end"].isna() & parsed["end_date"].notna(),
            "missing_plan_tier": parsed["plan_tier"].isna(),
            "bad_seats": parsed["seats_n"].isna(),
            "bad_arr_amount": parsed["arr"].isna(),
            "bad_is_trial": parsed["trial"].isna(),
        },
    ).sort_values(["account_id", "start", "subscription_id"])
    by_account = subs.groupby("account_id", sort=False)
    covered = subs.assign(cover=subs["end"].fillna(pd.Timestamp.max.tz_localize(UTC))).groupby(
        "account_id", sort=False
    )["cover"]
    return subs.assign(
        prev_plan=by_account["plan_tier"].shift(),
        prev_seats=by_account["seats_n"].shift(),
        prev_arr=by_account["arr"].shift(),
        covered_until=covered.cummax().groupby(subs["account_id"], sort=False).shift(),
    )


def _subscription_events(src: _Table, subs: pd.DataFrame) -> tuple[Frame, dict[str, int]]:
    ids, first = subs["subscription_id"], subs["prev_plan"].isna()
    plan = ~first & (subs["plan_tier"] != subs["prev_plan"])
    seats = ~first & (subs["seats_n"] != subs["prev_seats"])
    renewed = ~first & subs["trial"].eq(False) & (subs["start"] - ONE_DAY <= subs["covered_until"])
    p, s, r = subs[plan], subs[seats], subs[renewed]
    return _frame(
        src,
        [
            _events(
                p,
                ids[plan],
                "plan",
                "plan.changed",
                p["start_date"],
                plan_from=p["prev_plan"],
                plan_to=p["plan_tier"],
                arr_from=p["prev_arr"],
                arr_to=p["arr"],
            ),
            _events(
                s,
                ids[seats],
                "seats",
                "seats.changed",
                s["start_date"],
                seats_from=s["prev_seats"],
                seats_to=s["seats_n"],
            ),
            _events(
                r,
                ids[renewed],
                "renewed",
                "subscription.renewed",
                r["start_date"],
                renewal_date=r["start"] + pd.DateOffset(years=1),
                arr_to=r["arr"],
            ),
        ],
    )


def _accounts(src: _Table, subs: pd.DataFrame) -> tuple[Frame, dict[str, int]]:
    rows = src.rows.assign(start=_dates(src.rows["signup_date"]), trial=_flags(src.rows["is_trial"]))
    accounts = src.keep(
        rows,
        {
            "missing_id": _missing(rows, "account_id"),
            "bad_signup_date": rows["start"].isna(),
            "bad_is_trial": rows["trial"].isna(),
        },
    )
    first_arr = subs.groupby("account_id", sort=False)["arr"].first()
    arr = accounts["account_id"].map(first_arr)
    data = pd.DataFrame(
        {
            "account_id": accounts["account_id"],
            "name": accounts["account_name"],
            "tier": arr.map(_tier).where(accounts["trial"].eq(False), Tier.TRIAL.value),
            "industry": accounts["industry"],
            "region": accounts["country"],
            "plan": accounts["plan_tier"],
            "seats_purchased": accounts["seats"],
            "arr": arr,
            "contract_start": accounts["start"],
            "renewal_date": accounts["start"] + pd.DateOffset(years=1),
        }
    )
    frame = Frame("accounts", str(src.path), pa.Table.from_pandas(data, preserve_index=False))
    return frame, {"accounts": len(data)}


def _usage_events(src: _Table, subs_src: _Table) -> tuple[Frame, dict[str, int]]:
    """Usage rows name a subscription, which names the account; error counts become error.raised."""
    known = subs_src.rows.dropna(subset=["subscription_id", "account_id"]).drop_duplicates("subscription_id")
    rows = src.rows.assign(
        account_id=src.rows["subscription_id"].map(known.set_index("subscription_id")["account_id"])
    )
    usage = src.keep(
        rows,
        {
            "missing_id": _missing(rows, "usage_id", "subscription_id"),
            "unknown_subscription": rows["account_id"].isna(),
        },
    )
    ids = usage["usage_id"] + "-" + usage["subscription_id"]
    errors_n = _numbers(usage["error_count"])
    erred = (errors_n > 0) | (errors_n.isna() & usage["error_count"].notna())
    e = usage[erred]
    return _frame(
        src,
        [
            _events(
                usage,
                ids,
                "used",
                "feature.used",
                usage["usage_date"],
                feature=usage["feature_name"],
                count=usage["usage_count"],
            ),
            _events(
                e,
                ids[erred],
                "error",
                "error.raised",
                e["usage_date"],
                feature=e["feature_name"],
                count=e["error_count"],
            ),
        ],
    )


def _ticket_events(src: _Table) -> tuple[Frame, dict[str, int]]:
    tickets = src.keep(src.rows, {"missing_id": _missing(src.rows, "ticket_id", "account_id")})
    priority = tickets["priority"].str.strip().str.lower().map(PRIORITY).fillna(tickets["priority"])
    closed = tickets["closed_at"].notna()
    c = tickets[closed]
    return _frame(
        src,
        [
            _events(
                tickets,
                tickets["ticket_id"],
                "created",
                "ticket.created",
                tickets["submitted_at"],
                ticket_id=tickets["ticket_id"],
                priority=priority,
            ),
            _events(
                c,
                c["ticket_id"],
                "resolved",
                "ticket.resolved",
                c["closed_at"],
                ticket_id=c["ticket_id"],
                priority=priority[closed],
                csat=c["satisfaction_score"],
            ),
        ],
    )


def _churn_events(src: _Table) -> tuple[Frame, dict[str, int]]:
    churn = src.keep(src.rows, {"missing_id": _missing(src.rows, "churn_event_id", "account_id")})
    return _frame(
        src,
        [
            _events(
                churn,
                churn["churn_event_id"],
                "cancelled",
                "subscription.cancelled",
                churn["churn_date"],
                reason=churn["reason_code"],
            )
        ],
    )


def _notes(tables: dict[str, _Table], subs: pd.DataFrame) -> list[str]:
    """What the data itself says that a reader of the imported store should know."""
    usage, accounts = tables["feature_usage.csv"].rows, tables["accounts.csv"].rows
    shared = int(usage["usage_id"].duplicated().sum())
    period = usage.merge(subs[["subscription_id", "account_id", "start", "end"]], on="subscription_id")
    day = _dates(period["usage_date"])
    outside = int(((day < period["start"]) | (day > period["end"])).sum())
    signup = _dates(accounts.set_index("account_id")["signup_date"])
    early_usage = int((day < period["account_id"].map(signup)).sum())
    tickets = tables["support_tickets.csv"].rows
    early_tickets = int((_dates(tickets["submitted_at"]) < tickets["account_id"].map(signup)).sum())
    paid_later = subs["prev_plan"].notna() & subs["trial"].eq(False)
    gap = paid_later & ~(subs["start"] - ONE_DAY <= subs["covered_until"])
    return [
        f"usage_id is not unique: {shared} ids reappear on another subscription's row, so usage event ids "
        "are rs-<usage_id>-<subscription_id>-used/-error",
        f"{outside} of {len(period)} usage rows are dated outside their subscription's start_date..end_date; "
        "they keep their own dates",
        f"{early_usage} of {len(period)} usage rows and {early_tickets} of {len(tickets)} tickets are dated "
        "before their account's signup_date; they keep their own dates",
        f"{int(paid_later.sum())} paid subscriptions follow an earlier one; {int(gap.sum())} of them after a "
        "gap in coverage (reactivations: no renewal event)",
    ]


def adapt(folder: Path, mapping: Path | None = None) -> Adapted:
    """RavenStack's tables mapped by its fixed mapping; it takes no mapping file."""
    if mapping is not None:
        raise RetainError("adapter ravenstack maps its tables itself and takes no --mapping")
    if not folder.is_dir():
        raise RetainError(f"adapter ravenstack: {folder} is not a folder")
    tables = {name: _Table(folder, name) for name in USED}
    subs_src = tables["subscriptions.csv"]
    subs = _subscriptions(subs_src)
    results = {
        "accounts.csv": _accounts(tables["accounts.csv"], subs),
        "subscriptions.csv": _subscription_events(subs_src, subs),
        "feature_usage.csv": _usage_events(tables["feature_usage.csv"], subs_src),
        "support_tickets.csv": _ticket_events(tables["support_tickets.csv"]),
        "churn_events.csv": _churn_events(tables["churn_events.csv"]),
    }
    report = {
        "name": "ravenstack",
        "tables": {name: tables[name].report(produced) for name, (_, produced) in results.items()},
        "notes": _notes(tables, subs),
    }
    return Adapted([frame for frame, _ in results.values()], report)
