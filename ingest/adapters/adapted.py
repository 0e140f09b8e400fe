"""What every source adapter returns: frames for the one ingest path and a report of the mapping."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ingest.readers import Frame


@dataclass(frozen=True)
class Adapted:
    """Frames for the ingest path, and the report: {"tables": {file: {..., "source": frame source}}, ...}."""

    frames: list[Frame]
    report: dict[str, Any]
