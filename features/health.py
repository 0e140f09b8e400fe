"""The rules-based health score (docs/domain.md): one SQL definition (`sql/health.sql`), weights and bands
from Settings.

The build appends it to every feature row; `score` applies the same SQL to any rows holding its inputs
(e.g. what-if values, or an account the model cannot score), so the fallback never drifts from the table.
"""

from __future__ import annotations

from typing import Any

import duckdb
import pyarrow as pa

from core.settings import Settings
from features.definitions import bind, sql

#: The feature columns the formula reads.
INPUTS = (
    "seat_utilisation",
    "sessions_30v30",
    "days_since_last_session",
    "stickiness_30d",
    "days_since_sponsor_touch",
    "days_observed",
    "core_feature_share_30d",
    "nps_last",
    "csat_90d",
    "ticket_sentiment_90d",
    "open_p1p2_tickets",
    "invoices_overdue",
    "invoices_failed",
)


def health_params(settings: Settings) -> dict[str, float]:
    """The SQL parameters of health.sql: component weights and band lower bounds."""
    w, b = settings.health_weights, settings.health_bands
    return {
        "w_usage": w.usage,
        "w_engagement": w.engagement,
        "w_satisfaction": w.satisfaction,
        "w_payment": w.payment,
        "healthy": b.healthy,
        "neutral": b.neutral,
        "at_risk": b.at_risk,
    }


def health_query(con: duckdb.DuckDBPyConnection, settings: Settings) -> duckdb.DuckDBPyRelation:
    """health.sql over the connection's `feature_rows`: those rows plus the health columns."""
    text = sql("health")
    params: dict[str, Any] = health_params(settings)
    return con.sql(text, params=bind(text, params))


def score(rows: pa.Table, settings: Settings) -> pa.Table:
    """`rows` with the health components, score and band appended (rows need the INPUTS columns)."""
    missing = [name for name in INPUTS if name not in rows.column_names]
    if missing:
        raise ValueError(f"health inputs missing: {', '.join(missing)}")
    with duckdb.connect() as con:
        con.execute(sql("macros"))
        con.register("feature_rows", rows)
        return health_query(con, settings).to_arrow_table()
