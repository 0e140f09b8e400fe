"""Amplitude's event export (the Export API's zip of gzipped JSON Lines, or its S3 export) as events.

Each line is one event: `event_type`, `user_id`, `device_id`, `event_time`, `event_properties`,
`user_properties`, `groups` ({"company": ["acme"]}), `$insert_id`, `uuid`. Its `event_time` is written
without a zone ("2024-01-05 12:34:56.789000") and Amplitude documents its export times as UTC, so that is
the default zone. The event id is Amplitude's `uuid`, one per stored event. The export holds no account
records (group properties are not exported as rows), so accounts come from elsewhere: only events here.
"""

from __future__ import annotations

from pathlib import Path

from ingest.adapters.adapted import Adapted
from ingest.adapters.event_mapping import Vendor
from ingest.adapters.json_lines import adapt_export

VENDOR = Vendor(
    "amplitude",
    event_name="event_type",
    event_id=("uuid",),
    time="event_time",
    user=("user_id",),
    time_zone="UTC",
)


def adapt(path: Path, mapping: Path | None = None) -> Adapted:
    """An Amplitude export (a zip, a .json.gz, a JSON Lines file, or a folder of them) by its mapping."""
    return adapt_export(path, mapping, VENDOR)
