"""One YAML mapping for the event-stream exports (Segment, Amplitude, Mixpanel) onto the contract.

The file names, per vendor event, the contract event type it is and where each contract property comes
from, plus where a record keeps its account id (and, when the vendor's defaults do not fit, its event id,
time and user). A person writes it, and a misspelt contract name would map nothing, silently: so every
name is checked against core/contract.py as the file is read, and a wrong one is refused at its line.
What the vendors differ in (their default paths, whether they carry account records) is a `Vendor`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.contract import ACCOUNT_SCHEMA, EVENT_TYPES, PROPERTIES, Tier
from core.errors import RetainError
from ingest.mapping_file import KeyPath, MappingFile, read_mapping_file

#: a place in a record: the keys from its top down (a list is read as its first item)
Keys = tuple[str, ...]
TOP_KEYS = ("account", "events", "ignore", "accounts", "event_id", "time", "user", "time_zone")
VALUE_KEYS = ("path", "value", "values", "scale")
#: account columns a mapping may fill from a group call (account_id is the call's groupId)
ACCOUNT_FIELDS = tuple(f.name for f in ACCOUNT_SCHEMA if f.name != "account_id")
#: an epoch number at or above this is in milliseconds (in seconds it would be the year 5138)
EPOCH_MS = 1e11


@dataclass(frozen=True)
class Vendor:
    """What an export's records look like: the key of their event name; where they keep the id, time and
    user unless a mapping says otherwise; the zone of a time written without one (None: nowhere, so it
    is quarantined); whether they include account records (Segment's group calls) to map."""

    name: str
    #: the record's key holding its event name
    event_name: str
    event_id: tuple[str, ...]
    time: str
    user: tuple[str, ...]
    time_zone: str | None
    accounts: bool = False


@dataclass(frozen=True)
class Value:
    """Where a field's value comes from: a place in the record or a constant, then translated by `values`
    (source value -> contract value; others pass unchanged) and multiplied by `scale`."""

    path: Keys | None = None
    constant: Any = None
    values: dict[Any, Any] | None = None
    scale: float | None = None

    def of(self, record: dict[str, Any]) -> Any:
        value = self.constant if self.path is None else lookup(record, self.path, first=False)
        if self.values is not None and isinstance(value, str | int | float | bool) and value in self.values:
            value = self.values[value]
        if self.scale is not None and value is not None:
            value = _scaled(value, self.scale)
        return value


@dataclass(frozen=True)
class EventRule:
    event_type: str
    properties: dict[str, Value]


@dataclass(frozen=True)
class EventMapping:
    """A checked mapping file: how a vendor record becomes a contract event (or account) row."""

    file: Path
    vendor: Vendor
    account: tuple[Keys, ...]
    events: dict[str, EventRule]
    ignore: frozenset[str]
    event_id: tuple[Keys, ...]
    time: Keys
    user: tuple[Keys, ...]
    time_zone: tzinfo | None
    accounts: dict[str, Value] = field(default_factory=dict)

    def account_of(self, record: dict[str, Any]) -> str | None:
        """The value of the first account path that holds one."""
        return next((v for keys in self.account if (v := text(lookup(record, keys))) is not None), None)

    def event_row(self, record: dict[str, Any], name: str, account: str | None) -> dict[str, Any]:
        """The contract row of a record whose event `name` the mapping maps; `account` when the record
        names none itself. Values pass as they are: validation judges them."""
        rule = self.events[name]
        user = next((v for keys in self.user if (v := text(lookup(record, keys))) is not None), None)
        return {
            "event_id": self.event_id_of(record),
            "account_id": self.account_of(record) or account,
            "user_id": user,
            "ts": instant(lookup(record, self.time, first=False), self.time_zone),
            "event_type": rule.event_type,
            **{prop: value.of(record) for prop, value in rule.properties.items()},
        }

    def event_id_of(self, record: dict[str, Any]) -> str:
        """The vendor's id (`<vendor>-<id>`), a hash of the id fields when several make it, or a hash of
        the whole record when one is missing, so that reading the same export again adds nothing."""
        values = [lookup(record, keys) for keys in self.event_id]
        if any(v is None for v in values):
            return f"{self.vendor.name}-{_digest(record)}"
        if len(values) == 1:
            return f"{self.vendor.name}-{text(values[0])}"
        return f"{self.vendor.name}-{_digest(values)}"

    def has_own_id(self, record: dict[str, Any]) -> bool:
        return all(lookup(record, keys) is not None for keys in self.event_id)

    def account_row(self, record: dict[str, Any], account_id: str) -> dict[str, Any]:
        return {"account_id": account_id, **{f: value.of(record) for f, value in self.accounts.items()}}


def lookup(record: Any, keys: Keys, first: bool = True) -> Any:
    """The value at `keys` (None where a key is missing); a list met on the way, or at the end when
    `first`, is read as its first item (Amplitude's groups: {"company": ["acme"]})."""
    value = record
    for key in keys:
        if isinstance(value, list):
            value = value[0] if value else None
        value = value.get(key) if isinstance(value, dict) else None
    if first and isinstance(value, list):
        value = value[0] if value else None
    return value


def text(value: Any) -> str | None:
    """An id as text: numbers as written, anything else structured as JSON."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return json.dumps(value, sort_keys=True, default=str)


def instant(value: Any, zone: tzinfo | None) -> str | None:
    """A time as ISO-8601 text with its offset, for validation to read. An epoch number (seconds, or
    milliseconds) is UTC, or a wall clock in `zone` when one is given (Mixpanel's older projects); text
    without a zone is in `zone` (None: it stays zoneless, to be quarantined). What is no time is passed
    on as text, for validation to quarantine with its value."""
    if value is None:
        return None
    moment: datetime
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            moment = datetime.fromtimestamp(value / 1000 if abs(value) >= EPOCH_MS else value, UTC)
        except (OverflowError, OSError, ValueError):
            return str(value)
        moment = moment.replace(tzinfo=zone) if zone is not None else moment
    elif isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        if zone is None:
            return value
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return value
    else:
        return text(value)
    if moment.tzinfo is None and zone is not None:
        moment = moment.replace(tzinfo=zone)
    return moment.isoformat()


def _scaled(value: Any, scale: float) -> Any:
    try:
        return float(value) * scale if not isinstance(value, bool) else value
    except (TypeError, ValueError):
        return value


def _digest(value: Any) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def read_event_mapping(path: Path | None, vendor: Vendor) -> EventMapping:
    """The mapping file at `path` for `vendor`'s export, checked against the contract."""
    if path is None:
        raise RetainError(
            f"adapter {vendor.name} needs --mapping FILE: which of its events are which contract event "
            "types, and where the account id is (docs/methods/event-exports.md)"
        )
    file = read_mapping_file(path)
    content = file.content
    if not isinstance(content, dict):
        raise file.refuse((), "a mapping file is a YAML mapping with `account:` and `events:`")
    for key in content:
        if key not in TOP_KEYS:
            raise file.refuse((key,), f"unknown key {key!r}; expected one of {', '.join(TOP_KEYS)}")
    for key in ("account", "events"):
        if key not in content:
            raise file.refuse((), f"the mapping lacks `{key}:`")
    events = _events(file, content["events"])
    ignored = _list(file, ("ignore",), content["ignore"]) if "ignore" in content else []
    ignore = frozenset(str(name) for name in ignored)
    both = sorted(ignore & events.keys())
    if both:
        raise file.refuse(("ignore",), f"{', '.join(both)} both mapped under events and ignored")
    return EventMapping(
        file=Path(path),
        vendor=vendor,
        account=_paths(file, ("account",), content["account"]),
        events=events,
        ignore=ignore,
        event_id=_paths(file, ("event_id",), content.get("event_id", list(vendor.event_id))),
        time=_keys(file, ("time",), content.get("time", vendor.time)),
        user=_paths(file, ("user",), content.get("user", list(vendor.user))),
        time_zone=_zone(file, content.get("time_zone", vendor.time_zone)),
        accounts=_accounts(file, vendor, content.get("accounts")),
    )


def _events(file: MappingFile, spec: Any) -> dict[str, EventRule]:
    if not isinstance(spec, dict) or not spec:
        raise file.refuse(("events",), "events: maps each source event name to {type: ..., properties: ...}")
    return {str(name): _rule(file, ("events", name), rule) for name, rule in spec.items()}


def _rule(file: MappingFile, at: KeyPath, spec: Any) -> EventRule:
    if not isinstance(spec, dict) or "type" not in spec:
        raise file.refuse(at, f"event {at[-1]!r}: give its contract `type:` (and its `properties:`)")
    for key in spec:
        if key not in ("type", "properties"):
            raise file.refuse((*at, key), f"unknown key {key!r}; an event takes type and properties")
    name = spec["type"]
    if name not in EVENT_TYPES:
        known = ", ".join(EVENT_TYPES)
        raise file.refuse((*at, "type"), f"unknown contract event type {name!r}; known: {known}")
    allowed = EVENT_TYPES[name].allowed
    props = spec.get("properties") or {}
    if not isinstance(props, dict):
        raise file.refuse((*at, "properties"), "properties: maps contract property names to sources")
    for prop in props:
        if prop not in PROPERTIES:
            raise file.refuse((*at, "properties", prop), f"{prop!r} is not a contract property")
        if prop not in allowed:
            takes = ", ".join(allowed) or "no properties"
            raise file.refuse((*at, "properties", prop), f"{prop} is not a property of {name} ({takes})")
    missing = [p for p in EVENT_TYPES[name].required if p not in props]
    if missing:
        raise file.refuse(at, f"{name} requires {', '.join(missing)}: map it to a path or {{value: ...}}")
    values = {p: _value(file, (*at, "properties", p), s, PROPERTIES[p].values) for p, s in props.items()}
    return EventRule(name, values)


def _value(file: MappingFile, at: KeyPath, spec: Any, allowed: tuple[str, ...] | None) -> Value:
    """A path (text), or {path: ..., values: {...}, scale: ...}, or {value: ...}."""
    if isinstance(spec, str):
        return Value(_keys(file, at, spec))
    if not isinstance(spec, dict) or ("path" in spec) == ("value" in spec):
        raise file.refuse(at, "give a path, {path: ..., values: {...}, scale: ...} or {value: ...}")
    for key in spec:
        if key not in VALUE_KEYS:
            raise file.refuse((*at, key), f"unknown key {key!r}; expected one of {', '.join(VALUE_KEYS)}")
    values = spec.get("values")
    if values is not None and not isinstance(values, dict):
        raise file.refuse((*at, "values"), "values: maps source values to contract values")
    scale = spec.get("scale")
    if scale is not None and (isinstance(scale, bool) or not isinstance(scale, int | float)):
        raise file.refuse((*at, "scale"), f"scale must be a number, not {scale!r}")
    targets: list[tuple[KeyPath, Any]] = [((*at, "value"), spec["value"])] if "value" in spec else []
    targets += [((*at, "values", k), v) for k, v in (values or {}).items()]
    for place, target in targets:
        if allowed is not None and target not in allowed:
            raise file.refuse(place, f"{target!r} is not one of {', '.join(allowed)}")
    if "value" in spec:
        return Value(constant=spec["value"], scale=scale)
    return Value(_keys(file, (*at, "path"), spec["path"]), values=values, scale=scale)


def _accounts(file: MappingFile, vendor: Vendor, spec: Any) -> dict[str, Value]:
    if spec is None:
        return {}
    if not vendor.accounts:
        raise file.refuse(("accounts",), f"{vendor.name} exports carry no account records to map")
    if not isinstance(spec, dict):
        raise file.refuse(("accounts",), "accounts: maps account fields to places in a group call")
    for name in spec:
        if name not in ACCOUNT_FIELDS:
            fields = ", ".join(ACCOUNT_FIELDS)
            raise file.refuse(("accounts", name), f"{name!r} is not an account field; known: {fields}")
    if "tier" not in spec:
        raise file.refuse(("accounts",), "an account needs its tier: map tier (e.g. from a plan trait)")
    tiers = tuple(t.value for t in Tier)
    return {
        name: _value(file, ("accounts", name), s, tiers if name == "tier" else None)
        for name, s in spec.items()
    }


def _list(file: MappingFile, at: KeyPath, spec: Any) -> list[Any]:
    items = [spec] if isinstance(spec, str) else spec
    if not isinstance(items, list) or not items:
        raise file.refuse(at, "give a name or a list of names")
    return items


def _paths(file: MappingFile, at: KeyPath, spec: Any) -> tuple[Keys, ...]:
    items = _list(file, at, spec)
    at_item = (lambda i: (*at, i)) if isinstance(spec, list) else (lambda i: at)
    return tuple(_keys(file, at_item(i), item) for i, item in enumerate(items))


def _keys(file: MappingFile, at: KeyPath, spec: Any) -> Keys:
    keys = tuple(spec.split(".")) if isinstance(spec, str) else ()
    if not keys or not all(keys):
        raise file.refuse(at, f"{spec!r} is not a path: keys joined by dots, e.g. properties.plan")
    return keys


def _zone(file: MappingFile, name: Any) -> tzinfo | None:
    if name is None:
        return None
    try:
        return UTC if name == "UTC" else ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise file.refuse(("time_zone",), f"{name!r} is not a time zone, e.g. UTC or Europe/Berlin") from e
