"""The one CLI, `retain`: each pipeline stage is a command; the Makefile only wraps these."""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from retain.core.errors import RetainError
from retain.core.settings import Settings, get_settings
from retain.core.store import Store

app = typer.Typer(
    help="Retain: churn risk, explained; next-best actions by causal uplift.", no_args_is_help=True
)
features_app = typer.Typer(help="Point-in-time feature tables and the Feast repo.", no_args_is_help=True)
app.add_typer(features_app, name="features")
keys_app = typer.Typer(help="API keys for the serving API: stored hashed, shown once.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
report_app = typer.Typer(
    help="Reports for leadership: one self-contained HTML page plus JSON.", no_args_is_help=True
)
app.add_typer(report_app, name="report")
err = Console(stderr=True)

StoreOpt = Annotated[
    Path | None,
    typer.Option(
        "--store", help="the store folder [default: $RETAIN_HOME, else ./.retain]", show_default=False
    ),
]


def _settings() -> Settings:
    try:
        return get_settings()
    except ValueError as e:
        raise RetainError(f"bad configuration: {e}") from e


def _store(store: Path | None) -> Store:
    return Store(store if store is not None else _settings().home)


def _emit(summary: Any) -> None:
    """Machine-readable result on stdout; progress and messages go to stderr."""
    sys.stdout.write(json.dumps(summary, indent=2, default=str) + "\n")


def _parse_dates(text: str | None, option: str) -> list[date] | None:
    if not text:
        return None
    try:
        return [date.fromisoformat(part.strip()) for part in text.split(",") if part.strip()]
    except ValueError as e:
        raise RetainError(f"{option}: expected comma-separated dates like 2025-01-31 ({e})") from e


@app.command()
def simulate(
    store: StoreOpt = None,
    out: Annotated[Path | None, typer.Option(help="output folder [default: STORE/simulation]")] = None,
    accounts: Annotated[int, typer.Option(min=1, help="number of accounts")] = 2_000,
    days: Annotated[int, typer.Option(min=30, help="days of telemetry")] = 365,
    seed: Annotated[int, typer.Option(help="random seed: same seed, same bytes")] = 7,
    start: Annotated[str, typer.Option(help="first simulated day (UTC)")] = "2025-01-01",
) -> None:
    """Generate a customer base with known truth: telemetry for models, `truth/` kept apart."""
    from retain.simulate import SimConfig, simulate_to

    try:
        first = date.fromisoformat(start)
    except ValueError as e:
        raise RetainError(f"--start: expected a date like 2025-01-01 ({e})") from e
    target = out if out is not None else _store(store).root / "simulation"
    _emit(simulate_to(SimConfig(accounts=accounts, days=days, seed=seed, start=first), target))


@app.command()
def ingest(
    path: Annotated[Path, typer.Argument(help="simulator output folder, event file(s), or adapter source")],
    store: StoreOpt = None,
    adapter: Annotated[str | None, typer.Option(help="source adapter, e.g. ravenstack")] = None,
) -> None:
    """Validate telemetry against the contract; valid rows to the store, invalid ones to quarantine."""
    from retain.ingest import ingest_path

    _emit(ingest_path(_store(store), path, adapter=adapter))


@features_app.command("build")
def features_build(
    store: StoreOpt = None,
    cutoffs: Annotated[
        str | None, typer.Option(help="comma-separated cutoff dates [default: month ends]")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="also write the feature table here")] = None,
    online: Annotated[bool, typer.Option(help="apply the Feast repo and materialise online")] = True,
) -> None:
    """Build the point-in-time feature table, then apply and materialise the Feast repo."""
    from features.build import build_and_publish

    _emit(
        build_and_publish(_store(store), _settings(), _parse_dates(cutoffs, "--cutoffs"), out, online=online)
    )


@app.command()
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
) -> None:
    """Tune, calibrate and evaluate a model against the baselines, then log it to MLflow and register it."""
    import tempfile

    from registry.tracking import log_and_register
    from training.config import TrainConfig, load_config
    from training.pipeline import train_model, train_table

    if (model is None) == (table is None):
        raise RetainError("give either --model churn|expansion|uplift (train from the store) or --table FILE")
    if table is not None and (label is None or id_column is None or name is None):
        raise RetainError("--table needs --label COL, --id COL and --name NAME")
    if table is None and (label is not None or id_column is not None or time_column is not None):
        raise RetainError("--label, --id and --time go with --table, not --model")
    settings, where = _settings(), _store(store)
    registered_as = name or str(model)
    overrides = {"truth_dir": truth} if truth is not None else {}
    if model == "uplift":
        from training.causal.train import train_uplift
        from training.config import UpliftConfig

        uplift = train_uplift(
            where, settings, load_config(config, UpliftConfig, **overrides), name=registered_as
        )
        registered = log_and_register(where, settings, uplift, registered_as)
        _emit({"model": registered_as, "metrics": uplift.metrics, "mlflow": registered})
        return
    run_config = load_config(config, TrainConfig, **overrides)
    # the figures only need to live until MLflow has copied them
    with tempfile.TemporaryDirectory(prefix="retain-plots-") as scratch:
        if run_config.plots_dir is None:
            run_config = run_config.model_copy(update={"plots_dir": Path(scratch)})
        if table is not None:
            result = train_table(
                table, str(label), str(id_column), time_column, registered_as, run_config, settings=settings
            )
        else:
            result = train_model(where, settings, str(model), run_config, name=name)
        registered = log_and_register(where, settings, result, registered_as)
    _emit({"model": registered_as, "metrics": result.metrics, "mlflow": registered})


ModelOpt = Annotated[str, typer.Option("--model", help="registered model name")]


@app.command()
def promote(
    model: ModelOpt = "churn",
    store: StoreOpt = None,
    force: Annotated[bool, typer.Option(help="promote even if the gate fails (needs --reason)")] = False,
    reason: Annotated[str | None, typer.Option(help="why the gate is overridden; recorded")] = None,
) -> None:
    """Move @champion to @challenger if it holds up on the latest out-of-time window (exit 1 if refused)."""
    from registry.promotion import comparison_table
    from registry.promotion import promote as promote_model

    result = promote_model(_store(store), _settings(), model, force=force, reason=reason)
    if "scores" in result:
        err.print(comparison_table(result))
    _emit(result)
    if result["decision"] == "refused":
        raise typer.Exit(1)


@app.command()
def rollback(model: ModelOpt = "churn", store: StoreOpt = None) -> None:
    """Restore the previous @champion."""
    from registry.promotion import rollback as rollback_model

    _emit(rollback_model(_store(store), _settings(), model))


@app.command()
def score(
    out: Annotated[Path, typer.Option(help="output: Parquet with --cutoff, CSV with --table")],
    store: StoreOpt = None,
    cutoff: Annotated[
        str | None, typer.Option(help="score every account active at this date with the champions")
    ] = None,
    table: Annotated[Path | None, typer.Option(help="score this CSV or Parquet table with --model")] = None,
    model: Annotated[str | None, typer.Option(help="with --table: NAME, NAME@alias or NAME/version")] = None,
    id_column: Annotated[
        str | None,
        typer.Option("--id", help="with --table: its id column (default: the model's, else account_id)"),
    ] = None,
) -> None:
    """Batch scoring with reasons: the store's accounts at a cutoff, or a table of your own."""
    from serving.batch import score_store, score_table

    if (cutoff is None) == (table is None):
        raise RetainError("give either --cutoff (score the store's accounts) or --table (score a file)")
    if table is not None:
        if model is None:
            raise RetainError("--table needs --model, e.g. --model churn@champion")
        _emit(score_table(_store(store), _settings(), table, model, out, id_column=id_column))
        return
    if model is not None:
        raise RetainError("--cutoff scores with churn@champion and expansion@champion; drop --model")
    day = _parse_dates(cutoff, "--cutoff")
    if not day or len(day) != 1:
        raise RetainError("--cutoff: expected one date like 2025-06-30")
    _emit(score_store(_store(store), _settings(), day[0], out))


@app.command()
def serve(
    store: StoreOpt = None,
    host: Annotated[str | None, typer.Option(help="[default: $RETAIN_SERVE__HOST, else 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="[default: $RETAIN_SERVE__PORT, else 8000]")] = None,
    as_of: Annotated[
        str | None, typer.Option(help="serving clock for feature freshness, to replay past data (YYYY-MM-DD)")
    ] = None,
    access_log: Annotated[
        bool, typer.Option(help="log every request line (metrics count them anyway)")
    ] = False,
) -> None:
    """Run the API (FastAPI under uvicorn): explained risk, next-best actions, the decision log."""
    import logging

    import uvicorn

    from serving.app import create_app

    settings = _settings()
    overrides: dict[str, Any] = {"host": host, "port": port}
    if as_of is not None:
        day = _parse_dates(as_of, "--as-of")
        overrides["as_of"] = day[0] if day else None
    serve_settings = settings.serve.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    settings = settings.model_copy(update={"serve": serve_settings})
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app_ = create_app(_store(store), settings)
    uvicorn.run(
        app_, host=serve_settings.host, port=serve_settings.port, access_log=access_log, log_level="info"
    )


# -- API keys for the serving API --------------------------------------------------------------------


@keys_app.command("create")
def keys_create(
    scopes: Annotated[
        str, typer.Option(help="comma-separated, e.g. scores:read,actions:read (admin allows all)")
    ],
    name: Annotated[str | None, typer.Option(help="who or what the key is for")] = None,
    store: StoreOpt = None,
) -> None:
    """Create a key: its summary, then the key itself as the last line. It is shown this once only."""
    from serving.keys import KeyRing, parse_scopes

    key, text = KeyRing.for_store(_store(store)).create(parse_scopes(scopes), name=name)
    _emit({**key.as_dict(), "note": "the key on the next line is shown only once; only its hash is kept"})
    sys.stdout.write(text + "\n")


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="the key's id, as `retain keys list` shows it")],
    store: StoreOpt = None,
) -> None:
    """Revoke a key; a running server refuses it from its next request, without a restart."""
    from serving.keys import KeyRing

    _emit(KeyRing.for_store(_store(store)).revoke(key_id).as_dict())


@keys_app.command("list")
def keys_list(store: StoreOpt = None) -> None:
    """Every key with its scopes and revocation time; never a key or its hash."""
    from serving.keys import KeyRing

    _emit([key.as_dict() for key in KeyRing.for_store(_store(store)).list()])


# -- reports -------------------------------------------------------------------------------------------


@report_app.command("causal")
def report_causal(
    out: Annotated[Path, typer.Option(help="folder for report.html and report.json")],
    store: StoreOpt = None,
    table: Annotated[
        Path | None, typer.Option(help="an experiment or intervention export (CSV or Parquet) instead")
    ] = None,
    treatment: Annotated[str | None, typer.Option(help="with --table: the treatment column")] = None,
    outcome: Annotated[
        str | None, typer.Option(help="with --table: the 0/1 or numeric outcome column")
    ] = None,
    control: Annotated[
        str | None, typer.Option(help="with --table: the untreated value [default: 0/false of a 0/1 column]")
    ] = None,
    jobs: Annotated[int, typer.Option(min=1, help="processes estimating actions side by side")] = 2,
) -> None:
    """What each action did to churn and expansion (or each treatment to an export's outcome), doubly
    robust, with segments, who responds best, overlap, refutations and caveats."""
    from retain.report.causal import from_store, from_table
    from retain.report.html import write_report

    if table is None:
        if treatment is not None or outcome is not None or control is not None:
            raise RetainError("--treatment, --outcome and --control go with --table")
        analysis = from_store(_store(store), _settings(), jobs)
    else:
        if treatment is None or outcome is None:
            raise RetainError("--table needs --treatment COL and --outcome COL")
        analysis = from_table(table, treatment, outcome, control, _settings(), jobs)
    _emit(write_report(analysis, out))


# -- the weekly plan -------------------------------------------------------------------------------------


@app.command()
def plan(
    week: Annotated[str, typer.Option(help="the week's first day, e.g. 2025-07-28 (features as of 00:00)")],
    capacity_hours: Annotated[float, typer.Option(help="hours each CSM has for planned actions this week")],
    out: Annotated[Path, typer.Option(help="the plan, CSV")],
    store: StoreOpt = None,
) -> None:
    """The weekly plan: actions where the uplift champion expects most value within each CSM's hours; a
    random holdout (setting value.holdout_share) gets none, so the effects stay measurable."""
    from retain.plan import plan_store

    day = _parse_dates(week, "--week")
    if not day or len(day) != 1:
        raise RetainError("--week: expected one date like 2025-07-28")
    _emit(plan_store(_store(store), _settings(), day[0], capacity_hours, out))


def main() -> None:
    try:
        app()
    except RetainError as e:
        err.print(f"[red]error:[/red] {e}")
        raise SystemExit(2) from None
