"""`retain playbook`: a playbook file checked, and the built-in one printed to start your own from."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from retain import api
from retain.cli import summaries
from retain.cli.common import JsonOpt, StoreOpt, emit, open_store

playbook_app = typer.Typer(
    help="The playbook: actions, eligibility, plays and alerts, from a YAML file.", no_args_is_help=True
)


@playbook_app.command("check")
def playbook_check(
    path: Annotated[
        Path | None,
        typer.Argument(
            help="a playbook file [default: the store's: $RETAIN_PLAYBOOK, its playbook.yaml, the built-in]"
        ),
    ] = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Read and check a playbook: each error is said with its line; nothing runs on a file that has one."""
    emit(
        api.check_playbook(path, store=None if path else open_store(store)),
        as_json,
        summaries.playbook_checked,
    )


@playbook_app.command("show")
def playbook_show() -> None:
    """Print the built-in playbook: the file to start your own from (`> STORE/playbook.yaml`)."""
    from core.catalogue import BUILT_IN_PLAYBOOK  # deferred: reads the file

    sys.stdout.write(BUILT_IN_PLAYBOOK.read_text())
