"""Cast source columns to contract types, reporting which rows could not be cast.

Arrow's casts are all-or-nothing: one bad value fails the whole column. Here the fast vectorised cast
is tried first and only when it fails are the offending rows found (by pattern, or for timestamps by
Python's ISO-8601 parser on that slice alone), so valid data pays nothing for the bad rows' sake.

A timestamp names an instant only with its zone: a time of day without one is marked `naive` (read as
UTC, for validation to quarantine), while a date alone (`2025-01-02`, or a date column) is its UTC day,
as a cutoff date is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core.contract import TS

_FLOAT = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
#: a time of day, then its zone: a date alone ends in "-02" too, and has no zone
_OFFSET = r"[Tt ]\d.*([Zz]|[+-]\d\d(:?\d\d)?)$"
_DATE = r"^\d{4}-\d\d-\d\d$"
#: Timestamp strings are parsed in slices so one bad value sends only its slice to the slow path.
_SLICE = 1 << 16
_INT64_LIMIT = 2.0**63


@dataclass(frozen=True)
class Coerced:
    """The column in its contract type, and where the source held a value of the wrong type; for
    timestamps also where it held a time without a zone (None: nowhere)."""

    values: pa.Array | pa.ChunkedArray
    bad: np.ndarray
    naive: np.ndarray | None = None


def coerce(column: pa.Array | pa.ChunkedArray, target: pa.DataType) -> Coerced:
    """The column in `target` type; a column already of that type is passed through, not copied."""
    values = normalised(column)
    if values.type == target:
        return Coerced(values, _no_bad_rows(values))
    array = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if pa.types.is_null(array.type):
        return Coerced(pa.nulls(len(array), target), _no_bad_rows(array))
    if pa.types.is_timestamp(target):
        return _to_timestamp(array)
    if pa.types.is_integer(target):
        return _to_int(array)
    if pa.types.is_floating(target):
        return _to_float(array)
    if pa.types.is_boolean(target):
        return _to_bool(array)
    return _to_string(array)


def normalised(array: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """The column as the coercions expect it: dictionaries decoded, any string type as plain `string`, and
    empty strings as nulls (an empty CSV cell)."""
    if pa.types.is_dictionary(array.type):
        array = array.cast(array.type.value_type)
    if pa.types.is_large_string(array.type) or pa.types.is_string_view(array.type):
        array = array.cast(pa.string())
    if pa.types.is_string(array.type):
        empty = pc.equal(pc.utf8_length(array), 0)
        if pc.any(empty).as_py():
            array = pc.if_else(empty, pa.scalar(None, pa.string()), array)
    return array


def _no_bad_rows(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The `bad` mask of a column that converted cleanly."""
    return np.zeros(len(array), dtype=bool)


def _all_bad(array: pa.Array, target: pa.DataType) -> Coerced:
    return Coerced(pa.nulls(len(array), target), as_mask(pc.is_valid(array)))


def as_mask(booleans: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A boolean Arrow column as numpy, nulls as False."""
    return np.asarray(pc.fill_null(booleans, False).to_numpy(zero_copy_only=False), dtype=bool)


def _is_numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


def _to_string(array: pa.Array) -> Coerced:
    if pa.types.is_nested(array.type) or pa.types.is_binary(array.type):
        return _all_bad(array, pa.string())
    return Coerced(array.cast(pa.string()), _no_bad_rows(array))


def _to_float(array: pa.Array) -> Coerced:
    if _is_numeric(array.type):
        values, bad = array.cast(pa.float64(), safe=False), _no_bad_rows(array)
    elif pa.types.is_string(array.type):
        values, bad = _parse_floats(array)
    else:
        return _all_bad(array, pa.float64())
    finite = pc.is_finite(values)
    if not pc.all(finite).as_py():
        bad |= as_mask(pc.invert(finite))
        values = pc.if_else(finite, values, pa.scalar(None, pa.float64()))
    return Coerced(values, bad)


def _parse_floats(strings: pa.Array) -> tuple[pa.Array, np.ndarray]:
    trimmed = pc.utf8_trim_whitespace(strings)
    try:
        return trimmed.cast(pa.float64()), _no_bad_rows(strings)
    except pa.ArrowInvalid:
        ok = pc.match_substring_regex(trimmed, _FLOAT)
        values = pc.if_else(ok, trimmed, pa.scalar(None, pa.string())).cast(pa.float64())
        return values, as_mask(pc.invert(ok))


def _to_int(array: pa.Array) -> Coerced:
    if pa.types.is_integer(array.type):
        try:
            return Coerced(array.cast(pa.int64()), _no_bad_rows(array))
        except pa.ArrowInvalid:
            pass
    if pa.types.is_string(array.type):
        text = pc.utf8_trim_whitespace(array)
        # Arrow's cast reads "0x10" as 16; text like that is no count, so it takes the strict path below
        if not pc.any(pc.match_substring(text, "x", ignore_case=True)).as_py():
            try:
                return Coerced(text.cast(pa.int64()), _no_bad_rows(array))
            except pa.ArrowInvalid:
                pass
    if pa.types.is_boolean(array.type):
        return _all_bad(array, pa.int64())
    floats = _to_float(array)
    integral = pc.and_(
        pc.equal(pc.floor(floats.values), floats.values), pc.less(pc.abs(floats.values), _INT64_LIMIT)
    )
    bad = floats.bad | as_mask(pc.invert(integral))
    kept = pc.if_else(integral, floats.values, pa.scalar(None, pa.float64()))
    return Coerced(kept.cast(pa.int64(), safe=False), bad)


def _to_bool(array: pa.Array) -> Coerced:
    if pa.types.is_integer(array.type):
        ok = pc.is_in(array, value_set=pa.array([0, 1], array.type))
        return Coerced(
            pc.if_else(ok, pc.equal(array, 1), pa.scalar(None, pa.bool_())), as_mask(pc.invert(ok))
        )
    if not pa.types.is_string(array.type):
        return _all_bad(array, pa.bool_())
    text = pc.utf8_lower(pc.utf8_trim_whitespace(array))
    ok = pc.is_in(text, value_set=pa.array(["true", "false", "1", "0"]))
    truth = pc.is_in(text, value_set=pa.array(["true", "1"]))
    return Coerced(pc.if_else(ok, truth, pa.scalar(None, pa.bool_())), as_mask(pc.invert(ok)))


def _to_timestamp(array: pa.Array) -> Coerced:
    """Aware timestamps are converted to UTC, and dates are their UTC day; zoneless times are read as UTC
    and marked naive. Microsecond precision."""
    t = array.type
    if pa.types.is_timestamp(t):
        naive = as_mask(pc.is_valid(array)) if t.tz is None else None
        utc = array.cast(pa.timestamp(t.unit, "UTC")).cast(TS, safe=False)
        return Coerced(utc, _no_bad_rows(array), naive)
    if pa.types.is_date(t):
        return Coerced(array.cast(pa.timestamp("us")).cast(TS), _no_bad_rows(array))
    if not pa.types.is_string(t):
        return _all_bad(array, TS)
    parts = [_parse_timestamps(array.slice(i, _SLICE)) for i in range(0, len(array), _SLICE)]
    if not parts:
        return Coerced(pa.array([], TS), _no_bad_rows(array), _no_bad_rows(array))
    return Coerced(
        pa.concat_arrays([p.values for p in parts]),
        np.concatenate([p.bad for p in parts]),
        np.concatenate([p.naive for p in parts if p.naive is not None]),
    )


def _parse_timestamps(strings: pa.Array) -> Coerced:
    text = pc.replace_substring_regex(pc.utf8_trim_whitespace(strings), r"(\.\d{6})\d+", r"\1")
    aware = pc.match_substring_regex(text, _OFFSET)
    zoneless = as_mask(pc.is_valid(text)) & ~as_mask(aware) & ~as_mask(pc.match_substring_regex(text, _DATE))
    null = pa.scalar(None, pa.string())
    try:
        with_offset = pc.if_else(aware, text, null).cast(TS)
        naive = pc.if_else(aware, null, text).cast(pa.timestamp("us")).cast(TS)
    except pa.ArrowInvalid:
        values, bad = _parse_timestamps_slowly(text)
        return Coerced(values, bad, zoneless & ~bad)
    return Coerced(pc.coalesce(with_offset, naive), _no_bad_rows(strings), zoneless)


def _parse_timestamps_slowly(text: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Python's ISO-8601 parser value by value, for a slice Arrow's cast refused: which values fail."""
    values: list[datetime | None] = []
    bad = np.zeros(len(text), dtype=bool)
    for i, value in enumerate(text.to_pylist()):
        parsed = None
        if value is not None:
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError:
                bad[i] = True
        values.append(parsed if parsed is None or parsed.tzinfo else parsed.replace(tzinfo=UTC))
    return pa.array(values, TS), bad
