"""What `retain playbook check` tells a person: the playbook reads, and what it holds."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import RenderableType

if TYPE_CHECKING:
    from features.playbook_file import PlaybookSummary


def playbook_checked(p: PlaybookSummary) -> RenderableType:
    limit = p.contact_limit or "none"
    return (
        f"The playbook reads ({p.source}, sha256 {p.digest[:12]}): {len(p.actions)} actions "
        f"({', '.join(p.actions)}); alert rules {', '.join(p.alert_types) or 'none'}; contact limit {limit}."
    )
