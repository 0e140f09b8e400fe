"""Event-stream export records built to the vendors' published shapes, and the files they come in.

Segment: spec messages as its S3 export writes them (gzipped JSON Lines). Amplitude: its Export API's
rows (a zip of gzipped JSON Lines). Mixpanel: its raw export's lines ({"event", "properties"}). Every
value is made up here; a test states what each record is built to exercise.
"""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from pathlib import Path
from typing import Any

#: a record, or a raw line standing for one that is broken
Record = dict[str, Any] | str


def segment_track(
    message_id: str,
    event: str,
    ts: str,
    user: str | None = None,
    group: str | None = None,
    anonymous: str | None = None,
    **properties: Any,
) -> dict[str, Any]:
    context: dict[str, Any] = {"library": {"name": "analytics.js", "version": "4.1.0"}, "ip": "203.0.113.7"}
    if group is not None:
        context["groupId"] = group
    return {
        "type": "track",
        "event": event,
        "userId": user,
        "anonymousId": anonymous or f"anon-{message_id}",
        "messageId": message_id,
        "timestamp": ts,
        "originalTimestamp": ts,
        "receivedAt": ts,
        "sentAt": ts,
        "context": context,
        "properties": properties,
        "integrations": {},
        "version": 2,
    }


def segment_group(message_id: str, group_id: str, ts: str, user: str, **traits: Any) -> dict[str, Any]:
    return {
        "type": "group",
        "groupId": group_id,
        "userId": user,
        "anonymousId": f"anon-{user}",
        "messageId": message_id,
        "timestamp": ts,
        "receivedAt": ts,
        "context": {"library": {"name": "analytics-node", "version": "6.0.0"}},
        "traits": traits,
        "version": 2,
    }


def segment_call(kind: str, message_id: str, ts: str, user: str, **fields: Any) -> dict[str, Any]:
    """An identify, page, screen or alias call."""
    return {"type": kind, "userId": user, "messageId": message_id, "timestamp": ts, **fields}


def amplitude_event(
    uuid: str,
    event_type: str,
    event_time: str,
    company: str | None = None,
    user: str | None = None,
    **event_properties: Any,
) -> dict[str, Any]:
    return {
        "$insert_id": f"ins-{uuid}",
        "amplitude_id": 123456789,
        "app": 187520,
        "device_id": f"device-{user}",
        "event_id": 17,
        "event_properties": event_properties,
        "event_time": event_time,
        "client_event_time": event_time,
        "server_upload_time": event_time,
        "event_type": event_type,
        "groups": {"company": [company]} if company is not None else {},
        "group_properties": {},
        "user_id": user,
        "user_properties": {"plan": "team"},
        "uuid": uuid,
        "session_id": 1704457200000,
        "platform": "Web",
        "os_name": "Chrome",
        "country": "Germany",
    }


def mixpanel_event(
    event: str, time: float | str, distinct_id: str, insert_id: str | None = None, **properties: Any
) -> dict[str, Any]:
    props: dict[str, Any] = {
        "time": time,
        "distinct_id": distinct_id,
        "mp_processing_time_ms": 1704457260000,
        "$browser": "Firefox",
        "$city": "Berlin",
        **properties,
    }
    if insert_id is not None:
        props["$insert_id"] = insert_id
    return {"event": event, "properties": props}


def _lines(records: list[Record]) -> bytes:
    return b"".join((r if isinstance(r, str) else json.dumps(r)).encode() + b"\n" for r in records)


def write_lines(path: Path, records: list[Record], gzipped: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = _lines(records)
    path.write_bytes(gzip.compress(data) if gzipped else data)
    return path


def write_amplitude_zip(path: Path, project: int, hours: dict[str, list[Record]]) -> Path:
    """The Export API's zip: `<project>/<project>_<day>_<hour>#0.json.gz` per hour."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for hour, records in hours.items():
            archive.writestr(f"{project}/{project}_{hour}#0.json.gz", gzip.compress(_lines(records)))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())
    return path
