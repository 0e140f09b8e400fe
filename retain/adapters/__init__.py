"""Source adapters: map a foreign dataset into contract-shaped frames for the one ingest path.

An adapter only maps. Its frames are validated and committed like any other input, and its report
says, per source table, what was mapped, what was rejected and why, and which columns were left out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retain.errors import RetainError
from retain.ingest.readers import Frame


@dataclass(frozen=True)
class Adapted:
    """Frames for the ingest path, and the report: {"tables": {file: {..., "source": frame source}}, ...}."""

    frames: list[Frame]
    report: dict[str, Any]


def _ravenstack(path: Path) -> Adapted:
    from retain.adapters.ravenstack import adapt as ravenstack

    return ravenstack(path)


ADAPTERS: dict[str, Callable[[Path], Adapted]] = {"ravenstack": _ravenstack}


def adapt(name: str, path: Path) -> Adapted:
    if name not in ADAPTERS:
        raise RetainError(f"unknown adapter {name!r}; known adapters: {', '.join(sorted(ADAPTERS))}")
    if not path.is_dir():
        raise RetainError(f"adapter {name}: {path} is not a folder")
    return ADAPTERS[name](path)
