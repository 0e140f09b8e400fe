"""Source adapters: map a foreign dataset into contract-shaped frames for the one ingest path.

An adapter only maps. Its frames are validated and committed like any other input, and its report
says, per source table, what was mapped, what was rejected and why, and which columns were left out.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from core.errors import RetainError
from ingest.adapters import amplitude, mixpanel, ravenstack, segment
from ingest.adapters.adapted import Adapted

#: adapter name -> the adapter, called with its source and the mapping file it was given (None: none)
ADAPTERS: dict[str, Callable[[Path, Path | None], Adapted]] = {
    "amplitude": amplitude.adapt,
    "mixpanel": mixpanel.adapt,
    "ravenstack": ravenstack.adapt,
    "segment": segment.adapt,
}


def adapt(name: str, path: Path, mapping: Path | None = None) -> Adapted:
    """`path` mapped by the adapter `name`, with `mapping` (a YAML file) for adapters that take one."""
    if name not in ADAPTERS:
        raise RetainError(f"unknown adapter {name!r}; known adapters: {', '.join(sorted(ADAPTERS))}")
    if not path.exists():
        raise RetainError(f"adapter {name}: {path} does not exist")
    return ADAPTERS[name](path, mapping)
