"""Judge frames against the contract: valid rows in the contract schema, every other row with a reason.

Pure: a frame and the ingest's clock in, a verdict out. Each rule is a vectorised mask over the whole
frame; a row takes the reason of the first rule it fails (REJECTION_REASONS, roughly in the order rules
run), and the text explaining it is built only for the rows that fail, so valid data costs a few vector
passes and no Python per row.

A timestamp must also be believable: zoned, and inside a window from EARLIEST to the ingest's clock plus
CLOCK_SKEW for what happened (an event, an intervention), or plus FURTHEST_AHEAD for dates that lie ahead
by nature (a contract's start, a renewal date). Outside it a value is a placeholder (1900-01-01,
0001-01-01, 9999-12-31) or a typo, and features computed from it would be nonsense.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core.catalogue import ACTIONS
from core.contract import (
    ACCOUNT_SCHEMA,
    ASSIGNMENTS,
    EVENT_COLUMNS,
    EVENT_SCHEMA,
    EVENT_TYPES,
    HOLDOUT,
    INTERVENTION_SCHEMA,
    PROPERTIES,
    TS,
    Tier,
)
from core.errors import RetainError
from ingest.coerce import Coerced, as_mask, coerce, normalised
from ingest.readers import Frame, column_from_values

#: why a row is quarantined, each rule's reason in roughly the order the rules run
REJECTION_REASONS = (
    "malformed_row",
    "invalid_utf8",
    "unmapped_event",
    "missing_field",
    "bad_timestamp",
    "naive_timestamp",
    "timestamp_out_of_range",
    "unknown_event_type",
    "wrong_property_type",
    "property_not_allowed",
    "bad_category",
    "value_out_of_range",
    "missing_account",
)
REJECTED_SCHEMA = pa.schema(
    [
        pa.field("quarantine_id", pa.string(), nullable=False),
        pa.field("source", pa.string()),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("detail", pa.string()),
        pa.field("raw", pa.string()),
    ]
)
Details = Callable[[np.ndarray], list[str]]
#: the earliest believable timestamp: SaaS telemetry before it is a placeholder or a typo
EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)
#: how far past the ingest's clock a thing that happened may be dated: two systems' clocks differ
CLOCK_SKEW = timedelta(days=1)
#: how far past the ingest's clock a date that lies ahead by nature may be: longer than any contract term
FURTHEST_AHEAD = timedelta(days=10 * 365)


@dataclass(frozen=True)
class Checked:
    """A frame's verdict: `valid` in the table's contract schema, `rejected` in REJECTED_SCHEMA."""

    table: str
    source: str
    valid: pa.Table
    rejected: pa.Table
    ignored_columns: tuple[str, ...]


def quarantine_id(table: str, raw: str) -> str:
    """Stable per table and raw row, so re-ingesting the same bad row adds nothing."""
    return hashlib.sha256(f"{table}\x1f{raw}".encode()).hexdigest()[:32]


class _Verdicts:
    """The first failing reason of each row, with details computed only for rows that fail."""

    def __init__(self, n: int) -> None:
        self.failed = np.zeros(n, dtype=bool)
        self.flags: list[tuple[np.ndarray, str, list[str]]] = []

    def flag(self, mask: np.ndarray, reason: str, details: Details) -> None:
        new = mask & ~self.failed
        if new.any():
            rows = np.flatnonzero(new)
            self.failed |= new
            self.flags.append((rows, reason, details(rows)))

    def checked(self, frame: Frame, valid: pa.Table, ignored: Iterable[str]) -> Checked:
        rows = np.concatenate([r for r, _, _ in self.flags]) if self.flags else np.array([], dtype=np.int64)
        reasons = [reason for r, reason, _ in self.flags for _ in range(len(r))]
        details = [d for _, _, ds in self.flags for d in ds]
        order = np.argsort(rows, kind="stable")
        raws = [_json(row) for row in frame.data.take(rows[order]).to_pylist()]
        raws += [json.dumps(m.text) for m in frame.malformed]
        sources = frame.sources_of(rows[order]) + [m.source for m in frame.malformed]
        reasons = [reasons[i] for i in order] + [m.reason for m in frame.malformed]
        details = [details[i] for i in order] + [m.detail for m in frame.malformed]
        rejected = pa.table(
            {
                "quarantine_id": [quarantine_id(frame.table, raw) for raw in raws],
                "source": sources,
                "reason": reasons,
                "detail": details,
                "raw": raws,
            },
            schema=REJECTED_SCHEMA,
        )
        kept = valid.filter(pa.array(~self.failed)) if self.failed.any() else valid
        return Checked(frame.table, frame.source, kept, rejected, tuple(sorted(ignored)))


def _json(row: dict[str, Any]) -> str:
    """The row's non-null fields: a sparse event row is a handful of fields, not forty."""
    present = {k: v for k, v in row.items() if v is not None}
    return json.dumps(present, default=str, sort_keys=True, separators=(",", ":"))


def _values(array: pa.Array | pa.ChunkedArray, rows: np.ndarray) -> list[Any]:
    return array.take(pa.array(rows)).to_pylist()


def _constant(text: str) -> Details:
    return lambda rows: [text] * len(rows)


def _texts(template: str, values: pa.Array | pa.ChunkedArray) -> Details:
    """Details from `template` with each failing row's value as {0}."""
    return lambda rows: [template.format(x) for x in _values(values, rows)]


def _require(frame: Frame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in frame.data.column_names]
    if missing:
        raise RetainError(
            f"{frame.source}: missing required column(s) {', '.join(missing)} for {frame.table}; "
            f"found {', '.join(frame.data.column_names) or 'none'}"
        )


def _column(frame: Frame, name: str, target: pa.DataType) -> tuple[pa.Array, Coerced]:
    """The source column as read (for messages) and coerced to its contract type."""
    n = frame.data.num_rows
    source = normalised(frame.data.column(name)) if name in frame.data.column_names else pa.nulls(n)
    return source, coerce(source, target)


def _type_name(t: pa.DataType) -> str:
    if pa.types.is_timestamp(t):
        return "an ISO-8601 timestamp"
    return {"int64": "an integer", "double": "a number", "bool": "a boolean"}.get(str(t), "text")


def _flag_missing(v: _Verdicts, name: str, col: Coerced, when: np.ndarray | None = None) -> None:
    mask = as_mask(pc.is_null(col.values)) & ~col.bad
    v.flag(mask if when is None else mask & when, "missing_field", _constant(f"missing {name}"))


def _flag_type(v: _Verdicts, name: str, source: pa.Array, col: Coerced, target: pa.DataType) -> None:
    reason = "bad_timestamp" if pa.types.is_timestamp(target) else "wrong_property_type"
    v.flag(col.bad, reason, _texts(f"{name}={{0!r}} is not {_type_name(target)}", source))


@dataclass(frozen=True)
class _Window:
    """The timestamps an ingest believes, read against one clock so every row of an input meets the
    same bounds: things that happened up to `happened`, dates ahead up to `ahead`."""

    happened: datetime
    ahead: datetime

    @classmethod
    def at(cls, now: datetime | None) -> _Window:
        now = datetime.now(UTC) if now is None else now
        return cls(now + CLOCK_SKEW, now + FURTHEST_AHEAD)


def _flag_timestamp(v: _Verdicts, name: str, source: pa.Array, col: Coerced, latest: datetime) -> None:
    """Unreadable, zoneless (its instant depends on a zone nobody gave) or outside [EARLIEST, latest]."""
    _flag_type(v, name, source, col, TS)
    if col.naive is not None:
        detail = f"{name}={{0}} has no time zone; give its offset, e.g. 2025-06-30T10:00:00Z"
        v.flag(col.naive, "naive_timestamp", _texts(detail, source))
    early, late = pa.scalar(EARLIEST, TS), pa.scalar(latest, TS)
    outside = as_mask(pc.or_(pc.less(col.values, early), pc.greater(col.values, late)))

    def why(rows: np.ndarray) -> list[str]:
        return [
            f"{name}={t.isoformat()} is before {EARLIEST:%Y-%m-%d}"
            if t < EARLIEST
            else f"{name}={t.isoformat()} is after {latest.isoformat(timespec='seconds')}"
            for t in _values(col.values, rows)
        ]

    v.flag(outside, "timestamp_out_of_range", why)


def _flag_category(
    v: _Verdicts, name: str, col: Coerced, allowed: Sequence[str], when: np.ndarray | None = None
) -> None:
    inside = pc.is_in(col.values, value_set=pa.array(allowed, pa.string()))
    outside = as_mask(pc.and_(pc.is_valid(col.values), pc.invert(inside)))
    v.flag(
        outside if when is None else outside & when,
        "bad_category",
        _texts(f"{name}={{0!r}} is not one of {', '.join(allowed)}", col.values),
    )


def _flag_range(v: _Verdicts, name: str, col: Coerced, low: Any, high: Any, low_open: bool = False) -> None:
    below = pc.less_equal if low_open else pc.less
    mask = np.zeros(len(col.values), dtype=bool)
    if low is not None:
        mask |= as_mask(below(col.values, low))
    if high is not None:
        mask |= as_mask(pc.greater(col.values, high))
    bounds = f"{'(' if low_open else '['}{'' if low is None else low}, {'' if high is None else high}]"
    v.flag(mask, "value_out_of_range", _texts(f"{name}={{0}} is outside {bounds}", col.values))


def _flag_account(v: _Verdicts, account_id: Coerced, known: pa.Array) -> None:
    unknown = as_mask(pc.invert(pc.is_in(account_id.values, value_set=known)))
    v.flag(
        unknown,
        "missing_account",
        _texts("account {0!r} is neither in the store nor in this input", account_id.values),
    )


def check_accounts(frame: Frame, now: datetime | None = None) -> Checked:
    """Accounts: an id and a contract tier; money, seats and dates that make sense (contract dates may
    lie ahead of `now`, the ingest's clock, by up to FURTHEST_AHEAD)."""
    _require(frame, ("account_id", "tier"))
    v = _Verdicts(frame.data.num_rows)
    window = _Window.at(now)
    cols = {f.name: _column(frame, f.name, f.type) for f in ACCOUNT_SCHEMA}
    for name in ("account_id", "tier"):
        _flag_missing(v, name, cols[name][1])
    for f in ACCOUNT_SCHEMA:
        if f.type == TS:
            _flag_timestamp(v, f.name, *cols[f.name], window.ahead)
        else:
            _flag_type(v, f.name, *cols[f.name], f.type)
    _flag_category(v, "tier", cols["tier"][1], [t.value for t in Tier])
    _flag_range(v, "arr", cols["arr"][1], 0.0, None)
    _flag_range(v, "seats_purchased", cols["seats_purchased"][1], 0, None)
    start, renewal = cols["contract_start"][1].values, cols["renewal_date"][1].values

    def before_start(rows: np.ndarray) -> list[str]:
        pairs = zip(_values(renewal, rows), _values(start, rows), strict=True)
        return [f"renewal_date {r} is before contract_start {s}" for r, s in pairs]

    v.flag(as_mask(pc.less(renewal, start)), "value_out_of_range", before_start)
    valid = pa.Table.from_arrays([cols[f.name][1].values for f in ACCOUNT_SCHEMA], schema=ACCOUNT_SCHEMA)
    return v.checked(frame, valid, set(frame.data.column_names) - set(ACCOUNT_SCHEMA.names))


def check_interventions(
    frame: Frame, known_accounts: pa.Array, now: datetime | None = None, actions: Collection[str] = ACTIONS
) -> Checked:
    """Interventions: one of the playbook's `actions` (or a holdout row: action and assignment `holdout`), an
    assignment, a propensity whenever it was drawn at random (an experiment arm or a holdout), and a time
    from EARLIEST to `now` plus CLOCK_SKEW (`now`: the ingest's clock; the wall clock for the API's)."""
    required = ("intervention_id", "account_id", "ts", "action", "assignment")
    _require(frame, required)
    v = _Verdicts(frame.data.num_rows)
    cols = {f.name: _column(frame, f.name, f.type) for f in INTERVENTION_SCHEMA}
    for name in required:
        _flag_missing(v, name, cols[name][1])
    latest = _Window.at(now).happened
    for f in INTERVENTION_SCHEMA:
        if f.type == TS:
            _flag_timestamp(v, f.name, *cols[f.name], latest)
        else:
            _flag_type(v, f.name, *cols[f.name], f.type)
    held = as_mask(pc.equal(cols["assignment"][1].values, HOLDOUT))
    _flag_category(v, "action", cols["action"][1], tuple(actions), ~held)
    _flag_category(v, "action", cols["action"][1], (HOLDOUT,), held)
    _flag_category(v, "assignment", cols["assignment"][1], ASSIGNMENTS)
    drawn = as_mask(pc.is_in(cols["assignment"][1].values, value_set=pa.array(["random", HOLDOUT])))
    _flag_missing(
        v, "propensity (required when assignment is random or holdout)", cols["propensity"][1], drawn
    )
    _flag_range(v, "propensity", cols["propensity"][1], 0.0, 1.0, low_open=True)
    _flag_account(v, cols["account_id"][1], known_accounts)
    valid = pa.Table.from_arrays(
        [cols[f.name][1].values for f in INTERVENTION_SCHEMA], schema=INTERVENTION_SCHEMA
    )
    return v.checked(frame, valid, set(frame.data.column_names) - set(INTERVENTION_SCHEMA.names))


@dataclass(frozen=True)
class _Nested:
    """Properties given under one `properties` column, split into one array per key."""

    columns: dict[str, pa.Array]
    not_object: np.ndarray


def _nested(frame: Frame) -> _Nested:
    n = frame.data.num_rows
    if "properties" not in frame.data.column_names:
        return _Nested({}, np.zeros(n, dtype=bool))
    array = normalised(frame.data.column("properties"))
    if pa.types.is_struct(array.type):
        fields = array.flatten()
        return _Nested({array.type.field(i).name: f for i, f in enumerate(fields)}, np.zeros(n, dtype=bool))
    if pa.types.is_null(array.type):
        return _Nested({}, np.zeros(n, dtype=bool))
    if not pa.types.is_string(array.type):
        raise RetainError(
            f"{frame.source}: column properties has type {array.type}; expected an object or JSON text"
        )
    records: list[dict[str, Any]] = []
    not_object = np.zeros(n, dtype=bool)
    for i, text in enumerate(array.to_pylist()):
        try:
            value = json.loads(text) if text is not None else {}
        except json.JSONDecodeError:
            value = None
        if not isinstance(value, dict):
            not_object[i] = True
            value = {}
        records.append(value)
    keys = list(dict.fromkeys(k for r in records for k in r))
    return _Nested({k: column_from_values([r.get(k) for r in records]) for k in keys}, not_object)


def _property_sources(frame: Frame, nested: _Nested) -> tuple[dict[str, pa.Array], set[str]]:
    flat = {name for name in frame.data.column_names if name in PROPERTIES}
    both = flat & nested.columns.keys()
    if both:
        raise RetainError(
            f"{frame.source}: {', '.join(sorted(both))} given both as column(s) and inside properties"
        )
    sources = {name: normalised(frame.data.column(name)) for name in flat}
    sources |= {k: normalised(a) for k, a in nested.columns.items() if k in PROPERTIES}
    ignored = set(frame.data.column_names) - set(EVENT_COLUMNS) - set(PROPERTIES) - {"properties"}
    return sources, ignored


class _EventTypes:
    """Each row's event type as a code into the frame's own list of type names, so "rows of these types"
    is one lookup per distinct type rather than one per row."""

    def __init__(self, etype: pa.Array | pa.ChunkedArray) -> None:
        plain_types = etype.combine_chunks() if isinstance(etype, pa.ChunkedArray) else etype
        encoded = pc.dictionary_encode(plain_types)
        self.values = etype
        self.codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False)
        self.names: list[str] = encoded.dictionary.to_pylist()

    def rows_of(self, types: Iterable[str]) -> np.ndarray:
        """Rows whose event type is one of `types`; rows with no type never are (index -1 hits the pad)."""
        chosen = set(types)
        return np.array([t in chosen for t in self.names] + [False], dtype=bool)[self.codes]


def check_events(frame: Frame, known_accounts: pa.Array, now: datetime | None = None) -> Checked:
    """Events: a known type, a time from EARLIEST to `now` (the ingest's clock) plus CLOCK_SKEW, each
    property of the right type, allowed, in range, on a known account."""
    _require(frame, ("event_id", "account_id", "ts", "event_type"))
    n = frame.data.num_rows
    v = _Verdicts(n)
    window = _Window.at(now)
    nested = _nested(frame)
    sources, ignored = _property_sources(frame, nested)
    common = {name: _column(frame, name, t) for name, t in EVENT_COLUMNS.items()}
    props = {name: coerce(source, PROPERTIES[name].type) for name, source in sources.items()}
    types = _EventTypes(common["event_type"][1].values)
    for name in ("event_id", "account_id", "event_type", "ts"):
        _flag_missing(v, name, common[name][1])
    _flag_timestamp(v, "ts", *common["ts"], window.happened)
    v.flag(
        types.rows_of(set(types.names) - EVENT_TYPES.keys()),
        "unknown_event_type",
        _texts("unknown event type {0!r}", types.values),
    )
    v.flag(nested.not_object, "wrong_property_type", _constant("properties is not a JSON object"))
    for name, col in props.items():
        if PROPERTIES[name].type == TS:
            _flag_timestamp(v, name, sources[name], col, window.ahead)
        else:
            _flag_type(v, name, sources[name], col, PROPERTIES[name].type)
    _flag_properties(v, types, nested, props, n)
    _flag_account(v, common["account_id"][1], known_accounts)
    arrays = [common[name][1].values for name in EVENT_COLUMNS] + [
        props[name].values if name in props else pa.nulls(n, p.type) for name, p in PROPERTIES.items()
    ]
    return v.checked(frame, pa.Table.from_arrays(arrays, schema=EVENT_SCHEMA), ignored)


def _flag_properties(
    v: _Verdicts, types: _EventTypes, nested: _Nested, props: dict[str, Coerced], n: int
) -> None:
    """Properties the contract does not know or the row's type does not allow, required ones missing,
    and values outside their vocabulary or range (a status per event type)."""
    for key, array in nested.columns.items():
        if key not in PROPERTIES:
            v.flag(
                as_mask(pc.is_valid(array)),
                "property_not_allowed",
                _constant(f"{key} is not a contract property"),
            )
    for name, col in props.items():
        disallowing = types.rows_of(t for t, e in EVENT_TYPES.items() if name not in e.allowed)
        v.flag(
            as_mask(pc.is_valid(col.values)) & disallowing,
            "property_not_allowed",
            _texts(f"{name} is not a property of {{0}}", types.values),
        )
    empty = Coerced(pa.nulls(n, pa.null()), np.zeros(n, dtype=bool))
    for name in PROPERTIES:
        requiring = types.rows_of(t for t, e in EVENT_TYPES.items() if name in e.required)
        if requiring.any():
            missing = as_mask(pc.is_null(props.get(name, empty).values)) & requiring
            v.flag(missing, "missing_field", _texts(f"{{0}} requires {name}", types.values))
    for name, col in props.items():
        prop = PROPERTIES[name]
        if prop.values is not None:
            _flag_category(v, name, col, prop.values)
        if prop.low is not None or prop.high is not None:
            _flag_range(v, name, col, prop.low, prop.high)
    if "status" in props:
        for t in EVENT_TYPES.values():
            if t.statuses is not None:
                _flag_category(v, "status", props["status"], t.statuses, types.rows_of([t.name]))
