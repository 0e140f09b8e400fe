"""When a decision log stops being ready (too little disk, too many entries waiting), how long a closing
log keeps writing, and where it spills what it could not write: from the settings, or given.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from core.settings import Settings
from store.delta import Store


@dataclass(frozen=True)
class LogBounds:
    """When the log stops being ready, and what happens to what waits when it closes."""

    #: a SQLite log's disk with less free than this is not ready (0: not checked)
    min_free_bytes: int = 0
    #: more entries waiting than this is not ready
    max_pending: int | None = None
    #: how long `close` keeps writing what waits
    drain_seconds: float = 5.0
    #: where `close` spills what it could not write, the first folder that takes it; none: counted failed
    spill_dirs: tuple[Path, ...] = ()

    @classmethod
    def configured(cls, store: Store, settings: Settings) -> LogBounds:
        """The settings' bounds; spills go to the configured folder, else the store's, else the system's
        temporary folder, so one still lands when the store's disk is full."""
        serve = settings.serve
        folders = (
            serve.log_spill_dir,
            store.serving_dir / "spill",
            Path(tempfile.gettempdir()) / "retain-spill",
        )
        return cls(
            min_free_bytes=int(serve.log_min_free_mb * 1_000_000),
            max_pending=serve.log_max_pending,
            drain_seconds=serve.log_drain_seconds,
            spill_dirs=tuple(folder for folder in folders if folder is not None),
        )
