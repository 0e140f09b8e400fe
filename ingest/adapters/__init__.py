"""Source adapters: map a foreign dataset into contract-shaped frames for the one ingest path.

An adapter only maps. Its frames are validated and committed like any other input, and its report
says, per source table, what was mapped, what was rejected and why, and which columns were left out.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from core.errors import RetainError
from ingest.adapters import ravenstack
from ingest.adapters.adapted import Adapted

ADAPTERS: dict[str, Callable[[Path], Adapted]] = {"ravenstack": ravenstack.adapt}


def adapt(name: str, path: Path) -> Adapted:
    if name not in ADAPTERS:
        raise RetainError(f"unknown adapter {name!r}; known adapters: {', '.join(sorted(ADAPTERS))}")
    if not path.is_dir():
        raise RetainError(f"adapter {name}: {path} is not a folder")
    return ADAPTERS[name](path)
