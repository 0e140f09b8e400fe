"""Mixpanel's raw event export (JSON Lines, gzipped or not) as events.

Each line is `{"event": name, "properties": {"time": ..., "distinct_id": ..., "$insert_id": ..., ...}}`;
`time` is epoch seconds (milliseconds with `time_in_ms`). Projects created before 2023 export it as the
project's wall clock rather than UTC: a mapping's `time_zone` names that zone. Mixpanel deduplicates on
event name, distinct_id, time and $insert_id together, so the event id hashes those four. Group keys are
plain event properties (e.g. `properties.company_id`, a value or a list). The export holds no account
records: only events here.
"""

from __future__ import annotations

from pathlib import Path

from ingest.adapters.adapted import Adapted
from ingest.adapters.event_mapping import Vendor
from ingest.adapters.json_lines import adapt_export

VENDOR = Vendor(
    "mixpanel",
    event_name="event",
    event_id=("event", "properties.distinct_id", "properties.time", "properties.$insert_id"),
    time="properties.time",
    user=("properties.$user_id", "properties.distinct_id"),
    time_zone="UTC",
)


def adapt(path: Path, mapping: Path | None = None) -> Adapted:
    """A Mixpanel raw export (a file, or a folder of them) by its mapping."""
    return adapt_export(path, mapping, VENDOR)
