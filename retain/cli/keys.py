"""`retain keys`: API keys for the serving API, stored hashed and shown once."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from core.errors import RetainError
from retain import api
from retain.cli import summaries
from retain.cli.common import JsonOpt, StoreOpt, console, emit, open_store

if TYPE_CHECKING:
    from serving.keys import KeyRing

keys_app = typer.Typer(help="API keys for the serving API: stored hashed, shown once.", no_args_is_help=True)


@keys_app.command("create")
def keys_create(
    scopes: Annotated[
        str, typer.Option(help="comma-separated, e.g. scores:read,actions:read (admin allows all)")
    ],
    name: Annotated[str | None, typer.Option(help="who or what the key is for")] = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a key: its summary, then the key itself as the last line. It is shown this once only."""
    from serving.keys import parse_scopes  # deferred: the serving package

    key, text = _key_ring(store).create(parse_scopes(scopes), name=name)
    note = {"note": "the key on the next line is shown only once; only its hash is kept"}
    if as_json:
        sys.stdout.write(json.dumps(key.as_dict() | note, indent=2) + "\n")
    else:
        console.print(summaries.key_created(key))
    sys.stdout.write(text + "\n")


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="the key's id, as `retain keys list` shows it")],
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Revoke a key; a running server refuses it from its next request, without a restart."""
    key = _key_ring(store).revoke(key_id)
    emit(key.as_dict(), as_json, lambda _: summaries.key_revoked(key))


@keys_app.command("list")
def keys_list(store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Every key with its scopes and revocation time; never a key or its hash."""
    keys = _key_ring(store).list()
    emit([key.as_dict() for key in keys], as_json, lambda _: summaries.keys_listed(keys))


@keys_app.command("import")
def keys_import(store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Copy the store's key file into the database (`RETAIN_SERVE__KEYS=database`): keys keep working
    when a deployment moves its keys there. Keys the database has already are left as they are."""
    from serving.keys import KeyFile, KeyTable  # deferred: the serving package

    ring = _key_ring(store)
    if not isinstance(ring, KeyTable):
        raise RetainError(
            "keys import copies the key file into the database: set RETAIN_SERVE__KEYS=database"
        )
    added = ring.adopt(KeyFile.for_store(open_store(store)))
    emit([key.as_dict() for key in added], as_json, lambda _: summaries.keys_imported(added))


def _key_ring(store: str | None) -> KeyRing:
    """The keys where the settings keep them (`serve.keys`)."""
    from serving.keys import key_ring  # deferred: the serving package

    return key_ring(open_store(store), api.settings_or_default())
