"""Hand-built accounts and events, and the real feature SQL over them: features whose values a test knows."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from core.contract import ACCOUNT_SCHEMA, EVENT_SCHEMA, INTERVENTION_SCHEMA
from core.settings import Settings
from features.definitions import KEYS
from features.run import build_feature_table

T = datetime(2025, 3, 1, tzinfo=UTC)
START = datetime(2025, 1, 1, tzinfo=UTC)


def at(days: float) -> datetime:
    """An instant `days` before the cutoff T (negative: after it)."""
    return T - timedelta(days=days)


def arrow_table(schema: pa.Schema, rows: Iterable[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist([{n: r.get(n) for n in schema.names} for r in rows], schema=schema)


def account(account_id: str, **terms: Any) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "tier": "mid_market",
        "plan": "team",
        "seats_purchased": 10,
        "arr": 50_000.0,
        "contract_start": START,
        "renewal_date": START + timedelta(days=365),
        **terms,
    }


def event(account_id: str, event_type: str, ts: datetime, **props: Any) -> dict[str, Any]:
    return {"account_id": account_id, "event_type": event_type, "ts": ts, **props}


def connect(
    events: Sequence[dict[str, Any]],
    accounts: Sequence[dict[str, Any]],
    interventions: Sequence[dict[str, Any]] = (),
) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(config={"threads": 1})
    numbered = [{"event_id": f"e{i:05d}", **e} for i, e in enumerate(events)]
    con.from_arrow(arrow_table(EVENT_SCHEMA, numbered)).create_view("events")
    con.from_arrow(arrow_table(ACCOUNT_SCHEMA, accounts)).create_view("accounts")
    con.from_arrow(arrow_table(INTERVENTION_SCHEMA, interventions)).create_view("interventions")
    return con


def features(
    events: Sequence[dict[str, Any]],
    accounts: Sequence[dict[str, Any]],
    interventions: Sequence[dict[str, Any]] = (),
    cutoffs: Sequence[date] = (T,),
) -> pd.DataFrame:
    """The feature rows at the cutoffs, indexed by account_id (one cutoff) or (account_id, cutoff)."""
    with connect(events, accounts, interventions) as con:
        frame = build_feature_table(con, cutoffs, Settings()).to_pandas()
    return frame.set_index("account_id") if len(cutoffs) == 1 else frame.set_index(list(KEYS))
