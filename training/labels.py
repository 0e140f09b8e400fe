"""Labels at cutoffs (docs/domain.md), defined once in SQL (`training/sql`) over the `events` and `accounts`
relations of a connection: the same definitions run on a store, or on a test's hand-made events.

Terms in force at a cutoff come from history (`terms.sql`); the label itself looks only forward from the
cutoff (`churn.sql`, `expansion.sql`), and says whether the store's events already reach far enough to
decide it (`matured`): an immature label is never used, neither for training nor for testing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import duckdb
import pandas as pd

from features.definitions import RENEWAL_GRACE_DAYS, bind
from features.definitions import sql as feature_sql

SQL_DIR = Path(__file__).parent / "sql"

Target = Literal["churn", "expansion"]
TARGETS: tuple[Target, ...] = ("churn", "expansion")

#: a churn's days after its cutoff (the time-to-event learner's input)
DAYS_TO_EVENT = "days_to_event"

#: docs/domain.md: an expansion is seats or plan ARR up by at least 10% within the horizon.
EXPANSION_MIN_RISE = 0.10


def label_delay_days(target: Target, horizon_days: int) -> int:
    """Days after a cutoff until its label is decided: the SQL's `matured` rule (a churn label waits out the
    renewal grace as well)."""
    return horizon_days + (RENEWAL_GRACE_DAYS if target == "churn" else 0)


def _sql(name: str) -> str:
    return (SQL_DIR / f"{name}.sql").read_text()


@dataclass(frozen=True)
class LabelQuery:
    """A target's labels as SQL over `events`, `accounts` and the pairs `term_pairs`: the stages made first
    (name -> text, in order), the label query, and the parameters they take. Both engines run this."""

    stages: dict[str, str]
    text: str
    params: dict[str, Any]


def label_query(target: Target, horizon_days: int) -> LabelQuery:
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; targets are {', '.join(TARGETS)}")
    params: dict[str, Any] = {
        "horizon_days": horizon_days,
        "grace_days": RENEWAL_GRACE_DAYS,
        "min_rise": EXPANSION_MIN_RISE,
    }
    stages = {
        "sparse_events": feature_sql("sparse_events"),
        "contract_terms": feature_sql("contract_terms"),
        "label_terms": _sql("terms"),
    }
    return LabelQuery(stages, _sql(target), params)


def label_keys(rows: pd.DataFrame) -> pd.DataFrame:
    """The distinct (account_id, cutoff) pairs of `rows`, cutoffs as UTC microseconds: the `term_pairs`."""
    keys = rows[["account_id", "cutoff"]].drop_duplicates().reset_index(drop=True)
    keys["cutoff"] = pd.to_datetime(keys["cutoff"], utc=True).astype("datetime64[us, UTC]")
    return keys


def in_key_order(labels: pd.DataFrame, keys: pd.DataFrame) -> pd.DataFrame:
    """A label query's rows typed, in the order of `keys`."""
    labels["cutoff"] = pd.to_datetime(labels["cutoff"], utc=True).astype("datetime64[us, UTC]")
    labels["label"] = labels["label"].astype("int8")
    labels["matured"] = labels["matured"].fillna(False).astype(bool)
    labels[DAYS_TO_EVENT] = labels[DAYS_TO_EVENT].astype("float64")
    order = keys.reset_index().merge(labels, on=["account_id", "cutoff"])
    columns = ["account_id", "cutoff", "label", "matured", DAYS_TO_EVENT]
    return order.sort_values("index")[columns].reset_index(drop=True)


def label_frame(
    con: duckdb.DuckDBPyConnection, rows: pd.DataFrame, target: Target, horizon_days: int
) -> pd.DataFrame:
    """`target` labels for the (account_id, cutoff) pairs in `rows`, over the connection's `events` and
    `accounts`: columns account_id, cutoff, label (int8 0/1), matured (bool) and days_to_event (float: days
    from the cutoff to a churn; NaN for no churn, and always for expansion), in `rows`' key order.

    Pairs whose account had already churned before the cutoff (cancelled, or lapsed past the renewal grace)
    are dropped. Runs in the UTC session time
    zone and leaves no relations behind.
    """
    query = label_query(target, horizon_days)
    keys = label_keys(rows)
    con.execute("SET TimeZone = 'UTC'")
    con.execute(feature_sql("macros"))
    con.execute(_sql("macros"))
    con.register("term_pairs", keys)
    try:
        for name, text in query.stages.items():
            con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {text}", bind(text, query.params))
        labels = con.execute(query.text, bind(query.text, query.params)).df()
    finally:
        con.unregister("term_pairs")
        for name in reversed(query.stages):
            con.execute(f"DROP TABLE IF EXISTS {name}")
    return in_key_order(labels, keys)
