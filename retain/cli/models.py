"""The models: `retain train`, `retain promote`, `retain rollback`, `retain policy evaluate` and the
retraining loop a scheduler runs, `retain retrain`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, cast, get_args

import typer

from core.errors import RetainError
from retain import api
from retain.cli import summaries
from retain.cli.common import EngineOpt, JsonOpt, StoreOpt, emit, engine_settings, err, open_store, stage

policy_app = typer.Typer(
    help="Next-best-action policies judged from the log: what each would avert.", no_args_is_help=True
)


#: seconds a table's training may take when neither --time-budget nor --config says
TABLE_TIME_BUDGET = 60.0


def _check_train_options(
    model: str | None, table: Path | None, label: str | None, id_column: str | None, name: str | None
) -> None:
    if (model is None) == (table is None):
        raise RetainError("give either --model churn|expansion|uplift (train from the store) or --table FILE")
    if table is not None and (label is None or id_column is None or name is None):
        raise RetainError("--table needs --label COL, --id COL and --name NAME")
    if model is not None and model not in get_args(api.ModelKind):
        raise RetainError(f"--model: expected one of {', '.join(get_args(api.ModelKind))}, got {model!r}")


def train(
    model: Annotated[
        str | None,
        typer.Option("--model", help="churn, expansion or uplift (one per action), from the store"),
    ] = None,
    store: StoreOpt = None,
    config: Annotated[Path | None, typer.Option(help="run config, e.g. experiments/churn.yaml")] = None,
    truth: Annotated[
        Path | None, typer.Option(help="the simulator's output folder: adds the oracle to the evaluation")
    ] = None,
    table: Annotated[Path | None, typer.Option(help="train on this CSV or Parquet table instead")] = None,
    label: Annotated[
        str | None, typer.Option(help="with --table: the 0/1, true/false or yes/no column")
    ] = None,
    id_column: Annotated[str | None, typer.Option("--id", help="with --table: the id column")] = None,
    time_column: Annotated[
        str | None, typer.Option("--time", help="with --table: snapshot time column, for the time split")
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="registered model name [default: the --model kind]")
    ] = None,
    time_budget: Annotated[
        float | None,
        typer.Option(
            help="with --table: seconds for the whole training of a small table, tuning included (it "
            "replaces the config's n_trials and timeout_seconds) [default: 60, or the --config's budget]",
            min=1.0,
        ),
    ] = None,
    engine: EngineOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Tune, calibrate and evaluate a model against the baselines, then log it to MLflow and register it."""
    _check_train_options(model, table, label, id_column, name)
    if table is None and any(o is not None for o in (label, id_column, time_column, time_budget)):
        raise RetainError("--label, --id, --time and --time-budget go with --table, not --model")
    where = open_store(store)
    if table is not None:
        stage(f"training {name} on {table}: tuning, calibration, evaluation, then MLflow")
        trained = api.train_table(
            table,
            label=str(label),
            id_column=str(id_column),
            name=str(name),
            time_column=time_column,
            store=where,
            config=config,
            time_budget=TABLE_TIME_BUDGET if time_budget is None and config is None else time_budget,
        )
    else:
        kind = cast(api.ModelKind, model)
        stage(_training_stage(kind))
        trained = api.train(
            kind, store=where, settings=engine_settings(engine), config=config, truth=truth, name=name
        )
    emit(trained, as_json, summaries.trained)


def _training_stage(kind: api.ModelKind) -> str:
    if kind == "uplift":
        return "training uplift: the weekly design, cross-fitted baselines, then each action's effects"
    return f"training {kind}: tuning, calibration and evaluation against the baselines, then MLflow"


ModelOpt = Annotated[str, typer.Option("--model", help="registered model name")]


def promote(
    model: ModelOpt = "churn",
    store: StoreOpt = None,
    force: Annotated[bool, typer.Option(help="promote even if the gate fails (needs --reason)")] = False,
    reason: Annotated[str | None, typer.Option(help="why the gate is overridden; recorded")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Move @champion to @challenger if it holds up on the latest out-of-time window (exit 1 if refused)."""
    from registry.promotion import comparison_table  # deferred: imports MLflow

    stage(f"judging {model}@challenger against {model}@champion")
    result = api.promote(model, store=open_store(store), force=force, reason=reason)
    if result.scores is not None:
        err.print(comparison_table(result))
    emit(result, as_json, summaries.promotion)
    if result.decision == "refused":
        raise typer.Exit(1)


@policy_app.command("evaluate")
def policy_evaluate(
    model: Annotated[str, typer.Option(help="the registered uplift model")] = "uplift",
    weeks: Annotated[int, typer.Option(min=1, help="the latest weeks of the uplift design to judge on")] = 12,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Estimate what the uplift champion, the challenger, the rules and the riskiest-first would avert,
    from the log alone: doubly robust and self-normalised IPW, each with a 95% interval."""
    stage(f"judging {model}@champion's policy and its peers on the latest {weeks} weeks")
    emit(api.evaluate_policies(model, weeks=weeks, store=open_store(store)), as_json, summaries.policies)


def rollback(model: ModelOpt = "churn", store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Restore the previous @champion."""
    emit(api.rollback(model, store=open_store(store)), as_json, summaries.rolled_back)


def retrain(
    out: Annotated[Path, typer.Option(help="folder for the monitor's monitor.html and monitor.json")],
    store: StoreOpt = None,
    config: Annotated[Path | None, typer.Option(help="churn and expansion training config (YAML)")] = None,
    uplift_config: Annotated[Path | None, typer.Option(help="uplift training config (YAML)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The retraining loop a scheduler runs: features, train churn, expansion and uplift, the promotion gate,
    the monitor. Exits 1 when the gate refuses a challenger (its champion stays, and the output says why),
    2 on an error."""
    stage("retraining: features, then churn, expansion and uplift, each through the promotion gate")
    result = api.retrain(out, store=open_store(store), config=config, uplift_config=uplift_config)
    emit(result, as_json, summaries.retrained)
    if result.refused:
        raise SystemExit(1)
