"""The commands of `retain`: each parses its options, calls one verb of `retain.api` and tells a person what
it did (a summary on stdout; the whole result as JSON with `--json`). Progress and stage lines go to
stderr; bad input is a one-line error and exit code 2.

This module is the root app: it registers each command group's commands, one module per group beside it,
in the order `retain --help` and docs/cli.md list them (the commands, then the groups).
"""

from __future__ import annotations

import os

import typer
from rich.text import Text

from core.errors import RetainError
from retain.cli import autopilot, data, keys, models, plans, playbook, reports, scores, serve, store, webhooks
from retain.cli.common import err

app = typer.Typer(
    help="Retain: churn risk, explained; next-best actions by causal uplift.", no_args_is_help=True
)
app.command()(data.simulate)
app.command()(data.ingest)
app.command()(models.train)
app.command()(models.promote)
app.command()(models.rollback)
app.command()(scores.score)
app.command("example-account")(scores.example_account)
app.command()(serve.serve)
app.command("alerts")(webhooks.alerts)
app.command()(plans.plan)
app.command()(reports.monitor)
app.command()(reports.digest)
app.command()(models.retrain)
app.add_typer(data.features_app, name="features")
app.add_typer(keys.keys_app, name="keys")
app.add_typer(store.store_app, name="store")
app.add_typer(reports.report_app, name="report")
app.add_typer(webhooks.webhooks_app, name="webhooks")
app.add_typer(playbook.playbook_app, name="playbook")
app.add_typer(models.policy_app, name="policy")
app.add_typer(autopilot.autopilot_app, name="autopilot")


def main() -> None:
    # MLflow's INFO lines (and its warning that it pickles the model) say nothing a person can act on
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
    # nor do its bars for artifacts it copies back from the run it just logged
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        app()
    except RetainError as e:
        err.print(Text.assemble(("error:", "red"), f" {e}"))
        raise SystemExit(2) from None
