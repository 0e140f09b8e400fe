"""Turning generated events into the contract's flat table, fast and deterministically.

Generators hand over blocks of numpy arrays (account index, timestamp, user index, and integer
codes for categorical and id properties); the table is built column by column with Arrow compute,
never row by row in Python. A block may fill only properties its event type allows, and must fill
its required ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core.contract import (
    EVENT_SCHEMA,
    EVENT_TYPES,
    INTEGRATION_STATUSES,
    INVOICE_STATUSES,
    PROPERTIES,
    TS,
)
from simulate.config import HOUR_US
from simulate.population import PLANS

TYPE_NAMES: tuple[str, ...] = tuple(EVENT_TYPES)
TYPE_CODE: dict[str, int] = {name: i for i, name in enumerate(TYPE_NAMES)}

FEATURES = (
    "dashboards",
    "reports",
    "datasets",
    "alerts",
    "pipelines",
    "sharing",
    "exports",
    "api",
    "notebooks",
    "ml_models",
)
CORE_FEATURES = np.array([True, True, True, False, True, False, False, False, False, False])
ROLES = ("admin", "analyst", "engineer", "manager", "viewer")
INTEGRATIONS = ("salesforce", "hubspot", "snowflake", "slack", "zendesk", "bigquery")
RECIPES = (
    "import_csv",
    "connect_warehouse",
    "build_dashboard",
    "schedule_report",
    "set_alert",
    "share_workspace",
)
SETTINGS = ("sso", "roles", "retention_policy", "notifications", "api_keys", "data_residency")
CHANNELS = ("email", "call", "meeting", "event")
#: why a cancelling account says it leaves (`subscription.cancelled`'s reason)
CANCEL_REASONS = ("budget", "low_usage", "switched_vendor", "poor_support", "missing_features", "acquired")
STATUSES = INTEGRATION_STATUSES + INVOICE_STATUSES

#: string properties drawn from a vocabulary; the others are ids built from (account, sequence)
VOCAB: dict[str, tuple[str, ...]] = {
    "role": ROLES,
    "feature": FEATURES,
    "integration": INTEGRATIONS,
    "status": STATUSES,
    "recipe": RECIPES,
    "setting": SETTINGS,
    "channel": CHANNELS,
    "plan_from": PLANS,
    "plan_to": PLANS,
    "reason": CANCEL_REASONS,
    **{name: p.values for name, p in PROPERTIES.items() if p.values is not None},
}
ID_PREFIX = {"invoice_id": "inv", "ticket_id": "tkt", "nudge_id": "ndg"}
_VOCAB_ARRAYS = {name: pa.array(values, pa.string()) for name, values in VOCAB.items()}


def code(prop: str, value: str) -> int:
    return VOCAB[prop].index(value)


def _null_sentinel(prop: str) -> float | int:
    return np.nan if PROPERTIES[prop].type == pa.float64() else -1


@dataclass
class Block:
    """Events of one type: local account index, timestamps (us), user index (-1: none), properties.

    Property arrays are float (NaN: null), or int64 codes/values (-1: null) for everything else:
    ints, booleans (0/1), vocabulary codes, id sequence numbers and timestamps (us).
    """

    event_type: str
    account: np.ndarray
    ts: np.ndarray
    user: np.ndarray | None = None
    props: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        spec = EVENT_TYPES[self.event_type]
        extra = set(self.props) - set(spec.allowed)
        missing = set(spec.required) - set(self.props)
        if extra or missing:
            raise ValueError(f"{self.event_type}: properties not allowed {extra}, required missing {missing}")

    def __len__(self) -> int:
        return len(self.account)


@dataclass(frozen=True)
class Assembled:
    table: pa.Table
    types: np.ndarray


def _column(prop: str, values: np.ndarray, account: np.ndarray, numbers: pa.Array) -> pa.Array:
    dtype = PROPERTIES[prop].type
    if dtype == pa.float64():
        return pa.array(values, pa.float64(), mask=np.isnan(values))
    mask = values < 0
    if mask.all():
        return pa.nulls(len(values), dtype)
    if prop in VOCAB:
        return _VOCAB_ARRAYS[prop].take(pa.array(values, pa.int64(), mask=mask))
    if prop in ID_PREFIX:
        seq = pc.cast(pa.array(values, pa.int64(), mask=mask), pa.string())
        return pc.binary_join_element_wise(ID_PREFIX[prop], numbers.take(pa.array(account)), seq, "-")
    if dtype == pa.bool_():
        return pa.array(values == 1, pa.bool_(), mask=mask)
    return pa.array(values, pa.int64(), mask=mask).cast(dtype)


def assemble(
    blocks: list[Block], ids: pa.Array, numbers: pa.Array, id_prefix: str, first_id: int
) -> Assembled:
    """One table in EVENT_SCHEMA, sorted by (ts, account, type), ids numbered from `first_id`.

    `ids` are the chunk's account ids and `numbers` their zero-padded numbers, by local index.
    """
    blocks = [b for b in blocks if len(b)]
    n = sum(len(b) for b in blocks)
    account = np.concatenate([b.account for b in blocks]) if blocks else np.zeros(0, np.int64)
    ts = np.concatenate([b.ts for b in blocks]) if blocks else np.zeros(0, np.int64)
    types = (
        np.concatenate([np.full(len(b), TYPE_CODE[b.event_type], np.int64) for b in blocks]) if blocks else ts
    )
    user = (
        np.concatenate([b.user if b.user is not None else np.full(len(b), -1) for b in blocks])
        if blocks
        else ts
    )
    order = np.lexsort((types, account, ts))
    account, ts, types, user = account[order], ts[order], types[order], user[order]
    serial = pc.cast(pa.array(np.arange(first_id, first_id + n, dtype=np.int64)), pa.string())
    user_mask = user < 0
    columns: dict[str, pa.Array] = {
        "event_id": pc.binary_join_element_wise(id_prefix, pc.utf8_lpad(serial, 9, "0"), "-"),
        "account_id": ids.take(pa.array(account)),
        "user_id": pa.nulls(n, pa.string())
        if user_mask.all()
        else pc.binary_join_element_wise(
            "u",
            numbers.take(pa.array(account)),
            pc.cast(pa.array(user, pa.int64(), mask=user_mask), pa.string()),
            "-",
        ),
        "ts": pa.array(ts, pa.int64()).cast(TS),
        "event_type": pa.array(TYPE_NAMES, pa.string()).take(pa.array(types)),
    }
    starts = np.cumsum([0] + [len(b) for b in blocks])
    for prop in PROPERTIES:
        users = [i for i, b in enumerate(blocks) if prop in b.props]
        if not users:
            columns[prop] = pa.nulls(n, PROPERTIES[prop].type)
            continue
        sentinel = _null_sentinel(prop)
        values = np.full(n, sentinel, dtype=np.float64 if isinstance(sentinel, float) else np.int64)
        for i in users:
            values[starts[i] : starts[i + 1]] = blocks[i].props[prop]
        columns[prop] = _column(prop, values[order], account, numbers)
    return Assembled(
        pa.Table.from_arrays([columns[f.name] for f in EVENT_SCHEMA], schema=EVENT_SCHEMA), types
    )


def times_in_day(rng: np.random.Generator, day_us: int, n: int, peak_hour: float = 14.5) -> np.ndarray:
    """Timestamps (us) within one UTC day, bunched around working hours."""
    hours = np.clip(rng.normal(peak_hour, 3.5, n), 0.0, 23.999)
    return day_us + (hours * HOUR_US).astype(np.int64)
