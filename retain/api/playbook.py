"""The playbook: a file read and checked, or the one the store runs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from core.settings import Settings
from retain.api.common import StoreLike, open_store, settings_or_default

if TYPE_CHECKING:
    from features.playbook_file import PlaybookSummary


def check_playbook(
    path: Path | None = None, *, store: StoreLike = None, settings: Settings | None = None
) -> PlaybookSummary:
    """Read and check the playbook at `path`, else the one the store runs (`RETAIN_PLAYBOOK`, the store's
    playbook.yaml, the built-in); a RetainError names every line to fix."""
    from features.playbook_file import PlaybookSummary, load_playbook, store_playbook

    if path is not None:
        return PlaybookSummary.of(load_playbook(Path(path)))
    settings = settings_or_default(settings)
    return PlaybookSummary.of(store_playbook(open_store(store, settings), settings))
