"""Segment's exports as events, and as accounts where its group calls carry a mapped account's traits.

The primary form is the S3 export: gzipped JSON Lines of Segment's spec messages (`type`, `event`,
`userId`, `anonymousId`, `groupId`, `context`, `properties`, `traits`, `timestamp`, `messageId`). Its
warehouse tables are read too, as CSV or Parquet: a table with an `event` column (`tracks`, or a
per-event table, whose properties are columns) holds track calls, one with `group_id` group calls; their
snake_case columns are put back into message form (the name as sent is `event_text`, `context_group_id`
is `context.groupId`, any other column a property, or a trait of a group call), so one mapping serves
both forms.

B2B track calls often name no account: the account is the group the user joined. So the export is read
twice. First its group calls: each links its user (userId and anonymousId) to its groupId, the latest
call winning, and with an `accounts:` section becomes an account row (the latest call's traits win, as
the rows go in time order). Then the track calls, each taking its account from the mapping's paths or
else from its user's group. Identify, page, screen and alias calls are no events: counted, not mapped.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ingest.adapters import json_lines
from ingest.adapters.adapted import Adapted
from ingest.adapters.event_mapping import EventMapping, Vendor, read_event_mapping, text
from ingest.adapters.json_lines import JSON_SUFFIXES, Batches, Line, export_files, read_lines
from ingest.readers import Frame, Malformed, read_file_batches

VENDOR = Vendor(
    "segment",
    event_name="event",
    event_id=("messageId",),
    time="timestamp",
    user=("userId",),
    time_zone=None,
    accounts=True,
)
WAREHOUSE_SUFFIXES = (".csv", ".parquet", ".pq")
#: warehouse columns that are a message's own fields
RENAMED = {
    "id": "messageId",
    "event": "event",
    "user_id": "userId",
    "anonymous_id": "anonymousId",
    "group_id": "groupId",
    "timestamp": "timestamp",
}
#: warehouse columns Segment adds for its own loading: neither fields of the call nor properties
BOOKKEEPING = frozenset(
    {"received_at", "sent_at", "original_timestamp", "uuid_ts", "loaded_at", "event_text", "uuid"}
)
NEVER = datetime.min.replace(tzinfo=UTC)
Message = tuple[Line, dict[str, Any] | Malformed]


class _Links:
    """Each user's account: the groupId of their latest group call, by userId and by anonymousId."""

    def __init__(self) -> None:
        self.latest: dict[str, tuple[datetime, str]] = {}
        self.used = 0

    def add(self, call: dict[str, Any], group_id: str) -> None:
        when = _when(call.get("timestamp"))
        for user in _users(call):
            if user not in self.latest or when >= self.latest[user][0]:
                self.latest[user] = (when, group_id)

    def account(self, call: dict[str, Any]) -> str | None:
        found = next((self.latest[u][1] for u in _users(call) if u in self.latest), None)
        self.used += found is not None
        return found


def _users(call: dict[str, Any]) -> list[str]:
    return [u for key in ("userId", "anonymousId") if (u := text(call.get(key))) is not None]


def _when(value: Any) -> datetime:
    """A call's time for ordering its group calls; one that cannot be read orders first."""
    try:
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    except ValueError:
        return NEVER
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _kind(call: dict[str, Any]) -> str | None:
    return call.get("type") or ("track" if "event" in call else None)


def adapt(path: Path, mapping: Path | None = None) -> Adapted:
    """A Segment export (S3 files or warehouse tables, a file or a folder of them) by its mapping."""
    rules = read_event_mapping(mapping, VENDOR)
    files, skipped = export_files(path, JSON_SUFFIXES + WAREHOUSE_SUFFIXES)
    batches, links = Batches(path), _Links()
    frames = list(
        itertools.chain(_group_calls(files, rules, batches, links), _calls(files, rules, batches, links))
    )
    report = batches.report(rules, files, skipped)
    report["notes"].append(
        f"{len(links.latest)} user ids (userId or anonymousId) linked to an account by group calls; "
        f"{links.used} events took their account from their user's group"
    )
    return Adapted(frames, report)


def _group_calls(files: list[Path], rules: EventMapping, batches: Batches, links: _Links) -> Iterator[Frame]:
    """The first pass: group calls link users to accounts, and become account rows in time order."""
    rows: list[tuple[datetime, int, dict[str, Any], str]] = []
    for line, call in _messages(files, groups_only=True):
        if isinstance(call, Malformed) or _kind(call) != "group":
            continue
        group_id = text(call.get("groupId"))
        if group_id is not None:
            links.add(call, group_id)
        if group_id is None or not rules.accounts:
            batches.skip("group_call")
        else:
            rows.append(
                (_when(call.get("timestamp")), len(rows), rules.account_row(call, group_id), line.source)
            )
    for _, _, row, source in sorted(rows, key=lambda r: r[:2]):
        yield from batches.add("accounts", row, source)
    yield from batches.flush(("accounts",))


def _calls(files: list[Path], rules: EventMapping, batches: Batches, links: _Links) -> Iterator[Frame]:
    """The second pass: track calls become events; group calls were counted in the first."""
    for line, call in _messages(files, groups_only=False):
        if isinstance(call, Malformed):
            yield from batches.quarantine(call)
        elif _kind(call) == "track":
            mapped = text(call.get("event")) in rules.events and rules.account_of(call) is None
            account = links.account(call) if mapped else None
            yield from batches.event(rules, call, line, account)
        elif _kind(call) != "group":
            batches.skip("not_an_event")
    yield from batches.flush()


def _messages(files: list[Path], groups_only: bool) -> Iterator[Message]:
    """Every call of the export as a message; with `groups_only`, those that may be group calls (the
    first pass parses only lines that mention "group", and skips warehouse tables of other calls)."""
    for file in files:
        if file.name.lower().endswith(WAREHOUSE_SUFFIXES):
            yield from _warehouse(file, groups_only)
            continue
        for line in read_lines(file):
            if not groups_only or b'"group"' in line.raw:
                yield line, line.parsed()


def _warehouse(file: Path, groups_only: bool) -> Iterator[Message]:
    """A warehouse table's rows as messages: track calls where it has `event`, group calls where it has
    `group_id`, identify calls otherwise."""
    number = 0
    for frame in read_file_batches(file, "events", json_lines.BATCH_RECORDS):
        columns = frame.data.column_names
        kind = "track" if "event" in columns else "group" if "group_id" in columns else "identify"
        if groups_only and kind != "group":
            return
        if not groups_only:
            for bad in frame.malformed:
                yield Line(bad.source, 0, bad.text.encode()), bad
        for row in frame.data.to_pylist():
            number += 1
            line = Line(str(file), number, json.dumps(row, default=str).encode(), unit="row")
            yield line, _message(row, kind)


def _message(row: dict[str, Any], kind: str) -> dict[str, Any]:
    """A warehouse row in the spec's message form: the event's name as sent (`event_text`; `event` is its
    slug), `context_x_y` as context.xY, others as properties (traits for a group call)."""
    message: dict[str, Any] = {"type": kind}
    extra = "traits" if kind == "group" else "properties"
    for column, value in row.items():
        if column in RENAMED:
            message[RENAMED[column]] = value
        elif column.startswith("context_"):
            message.setdefault("context", {})[_camel(column.removeprefix("context_"))] = value
        elif column not in BOOKKEEPING:
            message.setdefault(extra, {})[column] = value
    if row.get("event_text") is not None:
        message["event"] = row["event_text"]
    return message


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.capitalize() for word in rest)
