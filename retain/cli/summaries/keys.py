"""What `retain keys` tells a person: never a key's hash, and the key itself only when created."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import RenderableType

from retain.cli.summaries.common import plain_table

if TYPE_CHECKING:
    from serving.keys import ApiKey


def key_created(key: ApiKey) -> RenderableType:
    return (
        f"Created API key {key.key_id}{f' ({key.name})' if key.name else ''} with scopes "
        f"{', '.join(sorted(key.scopes))}. It is shown once, on the next line; only its hash is kept."
    )


def keys_listed(keys: list[ApiKey]) -> RenderableType:
    rows = [
        [
            k.key_id,
            k.name or "",
            ", ".join(sorted(k.scopes)),
            f"{k.created_at:%Y-%m-%d %H:%M}",
            "" if k.revoked_at is None else f"{k.revoked_at:%Y-%m-%d %H:%M}",
        ]
        for k in keys
    ]
    columns = ["key id", "name", "scopes", "created (UTC)", "revoked (UTC)"]
    return plain_table(None, columns, rows, figures=False) if rows else "No API keys."


def key_revoked(key: ApiKey) -> RenderableType:
    return f"Revoked API key {key.key_id}; a running server refuses it from its next request"


def keys_imported(keys: list[ApiKey]) -> RenderableType:
    if not keys:
        return "No keys to copy: the database has every key the file holds."
    return f"Copied {len(keys)} API key(s) into the database: {', '.join(k.key_id for k in keys)}"
