"""The commands of `retain`: each parses its options, calls one verb of `retain.api` and tells a person what
it did (a summary on stdout; the whole result as JSON with `--json`). Progress and stage lines go to
stderr; bad input is a one-line error and exit code 2."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, cast, get_args

import typer
from rich.console import Console, RenderableType
from rich.text import Text

from retain import api
from retain.cli import summaries
from retain.core.errors import RetainError
from retain.core.logs import log_retain_lines
from retain.core.settings import Settings
from retain.core.store import DEFAULT_RETENTION_HOURS, TABLES, Store

if TYPE_CHECKING:
    from serving.keys import KeyRing

app = typer.Typer(
    help="Retain: churn risk, explained; next-best actions by causal uplift.", no_args_is_help=True
)
features_app = typer.Typer(help="Point-in-time feature tables and the Feast repo.", no_args_is_help=True)
app.add_typer(features_app, name="features")
keys_app = typer.Typer(help="API keys for the serving API: stored hashed, shown once.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
store_app = typer.Typer(help="The store's Delta tables: upkeep, history, migration.", no_args_is_help=True)
app.add_typer(store_app, name="store")
report_app = typer.Typer(
    help="Reports for leadership: one self-contained HTML page plus JSON.", no_args_is_help=True
)
app.add_typer(report_app, name="report")
webhooks_app = typer.Typer(
    help="Webhooks: alerts pushed to playbook engines and CRMs, signed, at least once.", no_args_is_help=True
)
app.add_typer(webhooks_app, name="webhooks")
playbook_app = typer.Typer(
    help="The playbook: actions, eligibility, plays and alerts, from a YAML file.", no_args_is_help=True
)
app.add_typer(playbook_app, name="playbook")
policy_app = typer.Typer(
    help="Next-best-action policies judged from the log: what each would avert.", no_args_is_help=True
)
app.add_typer(policy_app, name="policy")
autopilot_app = typer.Typer(
    help="The autopilot: the plan's autonomous actions executed with no CSM, under guardrails.",
    no_args_is_help=True,
)
app.add_typer(autopilot_app, name="autopilot")
#: summaries are plain text: a bracket in a path or a message is never read as markup
console = Console(soft_wrap=True, highlight=False, markup=False)
err = Console(stderr=True, soft_wrap=True, highlight=False, markup=False)
Result = TypeVar("Result")

StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="the store folder, or an s3://, gs:// or az:// URI for its tables [default: $RETAIN_HOME, "
        "else ./.retain]",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print the whole result as JSON, not a summary")]
EngineOpt = Annotated[
    str | None,
    typer.Option(
        "--engine",
        help="duckdb (embedded) or spark (a local session, or the cluster under spark-submit) "
        "[default: $RETAIN_ENGINE, else duckdb]",
        show_default=False,
    ),
]


def _store(store: str | None) -> Store:
    return api.open_store(store)


def _settings(engine: str | None) -> Settings:
    """The environment's settings, with `--engine` over RETAIN_ENGINE."""
    settings = api.settings_or_default()
    if engine is None:
        return settings
    if engine not in ("duckdb", "spark"):
        raise RetainError(f"--engine: expected duckdb or spark, got {engine!r}")
    return settings.model_copy(update={"engine": engine})


def _emit(result: Result, as_json: bool, summary: Callable[[Result], RenderableType]) -> None:
    """The result on stdout: as JSON for a program, else as a person's summary."""
    if as_json:
        sys.stdout.write(json.dumps(api.as_json(result), indent=2, default=str) + "\n")
    else:
        console.print(summary(result))


def _stage(text: str) -> None:
    """What is starting, on stderr: the steps that take a while show their own progress bars under it."""
    err.print(Text.assemble((">", "bold cyan"), f" {text}"))


def _comma_list(text: str) -> list[str]:
    """`A, B,` as ["A", "B"]: what every option taking `X,X,...` holds."""
    return [part.strip() for part in text.split(",") if part.strip()]


def _parse_dates(text: str | None, option: str) -> list[date] | None:
    if not text:
        return None
    try:
        return [date.fromisoformat(part) for part in _comma_list(text)]
    except ValueError as e:
        raise RetainError(f"{option}: expected comma-separated dates like 2025-01-31 ({e})") from e


def _one_date(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError as e:
        raise RetainError(f"{option}: expected one date like 2025-06-30 ({e})") from e


@app.command()
def simulate(
    store: StoreOpt = None,
    out: Annotated[Path | None, typer.Option(help="output folder [default: STORE/simulation]")] = None,
    accounts: Annotated[int, typer.Option(min=1, help="number of accounts")] = 2_000,
    days: Annotated[int, typer.Option(min=30, help="days of telemetry")] = 365,
    seed: Annotated[int, typer.Option(help="random seed: same seed, same bytes")] = 7,
    start: Annotated[str, typer.Option(help="first simulated day (UTC)")] = "2025-01-01",
    holdout_share: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=0.49,
            help="share of accounts held back from every proactive play each quarter, the never-treated "
            "comparison (0: none) [default: 0.1]",
        ),
    ] = None,
    drift: Annotated[
        str | None,
        typer.Option(
            metavar="KIND@DATE",
            help="from DATE the world drifts: release (feature use relabelled) or tier_mix (new tiers)",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Generate a customer base with known truth: telemetry for models, `truth/` kept apart."""
    first = _one_date(start, "--start")
    target = out if out is not None else _store(store).root / "simulation"
    _stage(f"simulating {accounts:,} accounts over {days} days from {first} (seed {seed}) into {target}")
    result = api.simulate(
        target, accounts=accounts, days=days, seed=seed, start=first, holdout_share=holdout_share, drift=drift
    )
    _emit(result, as_json, summaries.simulation)


@app.command()
def ingest(
    path: Annotated[Path, typer.Argument(help="simulator output folder, event file(s), or adapter source")],
    store: StoreOpt = None,
    adapter: Annotated[str | None, typer.Option(help="source adapter, e.g. ravenstack")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Validate telemetry against the contract; valid rows to the store, invalid ones to quarantine."""
    _stage(f"ingesting {path}: every row checked against the contract")
    _emit(api.ingest(path, store=_store(store), adapter=adapter), as_json, summaries.ingested)


@features_app.command("build", short_help="Build the feature table as the store's new version; publish it.")
def features_build(
    store: StoreOpt = None,
    cutoffs: Annotated[
        str | None,
        typer.Option(
            help="comma-separated cutoff dates (default: month ends); into the store, they must include "
            "every cutoff its feature table holds"
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="write the table to this file only: the store and the online store stay as they are"
        ),
    ] = None,
    online: Annotated[
        bool | None,
        typer.Option(
            help="publish the new table to Feast's online store (default: yes, unless --out)",
            show_default=False,
        ),
    ] = None,
    as_of_version: Annotated[
        int | None,
        typer.Option(help="rebuild from the table versions that built this version of the feature table"),
    ] = None,
    engine: EngineOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Build the point-in-time feature table as the store's new version, then publish it to Feast. Each
    version is one whole build (every cutoff from one read of the inputs), which `--as-of-version` can
    rebuild; so a build replaces the whole table, and `--cutoffs` that leave out cutoffs it holds are refused
    rather than losing its history. `--out FILE` writes only FILE, e.g. to look at one cutoff."""
    if out is not None and online:
        raise RetainError("--out writes only its file and publishes nothing; drop --online or --out")
    publish = out is None if online is None else online
    chosen = _parse_dates(cutoffs, "--cutoffs")
    where = f" into {out}" if out is not None else ""
    _stage(f"building the feature table{where}" + (", then publishing it to Feast" if publish else ""))
    result = api.build_features(
        store=_store(store),
        settings=_settings(engine),
        cutoffs=chosen,
        out=out,
        online=publish,
        as_of_version=as_of_version,
    )
    _emit(result, as_json, summaries.features_built)


@store_app.command("compact")
def store_compact(
    store: StoreOpt = None,
    retention_hours: Annotated[
        int, typer.Option(help="vacuum files no version younger than this needs")
    ] = DEFAULT_RETENTION_HOURS,
    as_json: JsonOpt = False,
) -> None:
    """Fold the API's recorded actions into the store; compact small files; vacuum old ones."""
    result = api.compact_store(store=_store(store), retention_hours=retention_hours)
    _emit(result, as_json, summaries.compacted)


@store_app.command("history")
def store_history(
    table: Annotated[str, typer.Argument(help=f"one of {', '.join(TABLES)}")],
    store: StoreOpt = None,
    limit: Annotated[int, typer.Option(help="newest versions to show")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """A table's versions, newest first: which step wrote each, and what it read."""
    if table not in TABLES:
        raise RetainError(f"table: expected one of {', '.join(TABLES)}, got {table!r}")
    _emit(api.store_history(table, store=_store(store), limit=limit), as_json, summaries.history)


@store_app.command("check")
def store_check(store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """What the store needs to serve from where it is now (after a copy, a restore or a move): its tables
    read, its Feast repo answers, its champions load from its own files, its decision log takes a write.
    Exits 1 with one line per problem on stderr."""
    result = api.check_store(store=_store(store))
    _emit(result, as_json, summaries.store_checked)
    for problem in result.problems:
        err.print(Text.assemble(("problem:", "red"), f" {problem.part} {problem.subject}: {problem.said}"))
    if result.problems:
        raise typer.Exit(1)


@store_app.command("migrate")
def store_migrate(
    old: Annotated[Path, typer.Option("--from", help="a store of the earlier layout (with manifest.json)")],
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Convert a store of the earlier layout into Delta tables; the old store is only read."""
    _emit(api.migrate_store(old, store=store), as_json, summaries.migrated)


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
    where = _store(store)
    if table is not None:
        _stage(f"training {name} on {table}: tuning, calibration, evaluation, then MLflow")
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
        _stage(_training_stage(kind))
        trained = api.train(
            kind, store=where, settings=_settings(engine), config=config, truth=truth, name=name
        )
    _emit(trained, as_json, summaries.trained)


def _training_stage(kind: api.ModelKind) -> str:
    if kind == "uplift":
        return "training uplift: the weekly design, cross-fitted baselines, then each action's effects"
    return f"training {kind}: tuning, calibration and evaluation against the baselines, then MLflow"


ModelOpt = Annotated[str, typer.Option("--model", help="registered model name")]


@app.command()
def promote(
    model: ModelOpt = "churn",
    store: StoreOpt = None,
    force: Annotated[bool, typer.Option(help="promote even if the gate fails (needs --reason)")] = False,
    reason: Annotated[str | None, typer.Option(help="why the gate is overridden; recorded")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Move @champion to @challenger if it holds up on the latest out-of-time window (exit 1 if refused)."""
    from registry.promotion import comparison_table  # deferred: imports MLflow

    _stage(f"judging {model}@challenger against {model}@champion")
    result = api.promote(model, store=_store(store), force=force, reason=reason)
    if result.scores is not None:
        err.print(comparison_table(result))
    _emit(result, as_json, summaries.promotion)
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
    _stage(f"judging {model}@champion's policy and its peers on the latest {weeks} weeks")
    _emit(api.evaluate_policies(model, weeks=weeks, store=_store(store)), as_json, summaries.policies)


@app.command()
def rollback(model: ModelOpt = "churn", store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Restore the previous @champion."""
    _emit(api.rollback(model, store=_store(store)), as_json, summaries.rolled_back)


@app.command()
def score(
    out: Annotated[
        str,
        typer.Option(
            help="output: Parquet with --cutoff, CSV with --table; or, with --cutoff, a database table "
            "whose rows at the cutoff it replaces: 'postgresql://USER@HOST:PORT/DB#TABLE', "
            "'sqlite:///PATH#TABLE'"
        ),
    ],
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
    engine: EngineOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Batch scoring with reasons: the store's accounts at a cutoff, or a table of your own; with
    `--engine spark`, the store's accounts are scored on Spark's executors."""
    if (cutoff is None) == (table is None):
        raise RetainError("give either --cutoff (score the store's accounts) or --table (score a file)")
    if table is not None:
        if model is None:
            raise RetainError("--table needs --model, e.g. --model churn@champion")
        _stage(f"scoring {table} with {model}, each row with its top reasons")
        scored = api.score_table(table, model, out, id_column=id_column, store=_store(store))
        _emit(scored, as_json, summaries.table_scored)
        return
    if model is not None:
        raise RetainError("--cutoff scores with churn@champion and expansion@champion; drop --model")
    day = _one_date(str(cutoff), "--cutoff")
    _stage(f"scoring the accounts active at {day} with the churn and expansion champions")
    at_cutoff = api.score(day, out, store=_store(store), settings=_settings(engine))
    _emit(at_cutoff, as_json, summaries.scored)


@app.command("example-account")
def example_account(
    cutoff: Annotated[
        str, typer.Option(help="the cutoff the scores are at: the newest, which the API serves")
    ],
    scores: Annotated[Path, typer.Option(help="the scores `retain score --cutoff` wrote")],
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """An account to try the API with: the riskiest active account the churn model answers itself (not the
    rules). Prints its id."""
    found = api.example_account(_one_date(cutoff, "--cutoff"), scores, store=_store(store))
    _emit(found, as_json, summaries.example_account)


@app.command()
def serve(
    store: StoreOpt = None,
    host: Annotated[str | None, typer.Option(help="[default: $RETAIN_SERVE__HOST, else 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="[default: $RETAIN_SERVE__PORT, else 8000]")] = None,
    workers: Annotated[
        int | None,
        typer.Option(min=1, max=64, help="worker processes [default: $RETAIN_SERVE__WORKERS, else 1]"),
    ] = None,
    as_of: Annotated[
        str | None, typer.Option(help="serving clock for feature freshness, to replay past data (YYYY-MM-DD)")
    ] = None,
    access_log: Annotated[
        bool, typer.Option(help="log every request line (metrics count them anyway)")
    ] = False,
    cookie_secure: Annotated[
        bool,
        typer.Option(
            "--cookie-secure",
            help="cockpit cookies over HTTPS only, behind TLS [default: $RETAIN_COCKPIT__COOKIE_SECURE]",
        ),
    ] = False,
) -> None:
    """Run the API (FastAPI under uvicorn): explained risk, next-best actions, the decision log; and the
    webhook delivery worker beside it (and the autopilot's, with RETAIN_AUTOPILOT__WORKER=true)."""
    # deferred: the server stack, only this command needs it
    import uvicorn

    from retain.autopilot.worker import piloting
    from serving.app import create_app, worker_environment
    from serving.webhooks.delivery import delivering

    overrides: dict[str, Any] = {"host": host, "port": port, "workers": workers}
    if as_of is not None:
        overrides["as_of"] = _one_date(as_of, "--as-of")
    settings = _serve_settings(overrides, cookie_secure)
    opened = _store(store)
    api.check_playbook(store=opened, settings=settings)  # a file that does not read stops here, at its line
    log_retain_lines()
    serving = settings.serve
    base = f"http://{serving.host}:{serving.port}"
    _stage(f"serving on {base}: the API's docs at {base}/docs, the cockpit at {base}/ui (Ctrl-C stops it)")
    options: dict[str, Any] = {
        "access_log": access_log,
        "log_level": "info" if access_log else "warning",
        "timeout_graceful_shutdown": serving.shutdown_seconds,
    }
    # the webhook and autopilot workers run here, in the process that runs once per server, not in each
    # API worker
    with delivering(opened, settings), piloting(opened, settings):
        if serving.workers == 1:
            uvicorn.run(create_app(opened, settings), host=serving.host, port=serving.port, **options)
            return
        os.environ.update(worker_environment(opened, settings))  # the workers start from an import string
        _serve_workers(serving.workers, serving.host, serving.port, options)


def _serve_workers(workers: int, host: str, port: int, options: dict[str, Any]) -> None:
    """uvicorn's worker processes, each building the app from the environment; their counters in files a
    scrape sums (serving/metrics.py), in a folder fresh each start."""
    # deferred: the server stack, only `serve` needs it
    import uvicorn

    from serving.metrics import MULTIPROCESS_DIR, SHARED_FLAG

    with tempfile.TemporaryDirectory(prefix="retain-metrics-") as counters:
        os.environ.update({MULTIPROCESS_DIR: counters, SHARED_FLAG: "1"})
        factory = "serving.app:app_from_environment"
        uvicorn.run(factory, factory=True, workers=workers, host=host, port=port, **options)


def _serve_settings(overrides: dict[str, Any], cookie_secure: bool) -> Settings:
    """The environment's settings with `serve`'s flags over them; several workers need sessions they
    share, since each worker would keep its own in memory and sign people out."""
    settings = api.settings_or_default()
    serve_settings = settings.serve.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    settings = settings.model_copy(update={"serve": serve_settings})
    if cookie_secure:
        settings = settings.model_copy(
            update={"cockpit": settings.cockpit.model_copy(update={"cookie_secure": True})}
        )
    if serve_settings.workers > 1 and settings.cockpit.sessions == "memory":
        raise RetainError(
            f"--workers {serve_settings.workers}: each worker would keep its own cockpit sessions; "
            "set RETAIN_COCKPIT__SESSIONS=redis"
        )
    return settings


# -- API keys for the serving API --------------------------------------------------------------------


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
    _emit(key.as_dict(), as_json, lambda _: summaries.key_revoked(key))


@keys_app.command("list")
def keys_list(store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Every key with its scopes and revocation time; never a key or its hash."""
    keys = _key_ring(store).list()
    _emit([key.as_dict() for key in keys], as_json, lambda _: summaries.keys_listed(keys))


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
    added = ring.adopt(KeyFile.for_store(_store(store)))
    _emit([key.as_dict() for key in added], as_json, lambda _: summaries.keys_imported(added))


def _key_ring(store: str | None) -> KeyRing:
    """The keys where the settings keep them (`serve.keys`)."""
    from serving.keys import key_ring  # deferred: the serving package

    return key_ring(_store(store), api.settings_or_default())


# -- webhooks ------------------------------------------------------------------------------------------


@webhooks_app.command("add")
def webhooks_add(
    url: Annotated[str, typer.Argument(help="the http(s) URL alerts are POSTed to")],
    events: Annotated[
        str, typer.Option(help="comma-separated alert types, e.g. usage_drop,risk_band_changed; * for all")
    ],
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Subscribe a URL to alert types: its summary, then the signing secret as the last line. The secret
    is shown this once only."""
    added = api.add_webhook(url, _comma_list(events), store=_store(store))
    note = {"note": "the signing secret on the next line is shown only once"}
    if as_json:
        sys.stdout.write(json.dumps(cast(dict[str, Any], api.as_json(added.webhook)) | note, indent=2) + "\n")
    else:
        console.print(summaries.webhook_added(added.webhook))
    sys.stdout.write(added.secret + "\n")


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
    _emit(
        api.check_playbook(path, store=None if path else _store(store)), as_json, summaries.playbook_checked
    )


@playbook_app.command("show")
def playbook_show() -> None:
    """Print the built-in playbook: the file to start your own from (`> STORE/playbook.yaml`)."""
    from retain.core.catalogue import BUILT_IN_PLAYBOOK  # deferred: reads the file

    sys.stdout.write(BUILT_IN_PLAYBOOK.read_text())


@webhooks_app.command("list")
def webhooks_list(store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Every live subscription with its pending and dead deliveries; never a secret."""
    _emit(api.webhooks(store=_store(store)), as_json, summaries.webhooks_listed)


@webhooks_app.command("remove")
def webhooks_remove(
    webhook_id: Annotated[str, typer.Argument(help="the webhook's id, as `retain webhooks list` shows it")],
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """End a subscription: nothing more is sent to it."""
    _emit(api.remove_webhook(webhook_id, store=_store(store)), as_json, summaries.webhook_removed)


@webhooks_app.command("rotate")
def webhooks_rotate(
    webhook_id: Annotated[str, typer.Argument(help="the webhook's id, as `retain webhooks list` shows it")],
    overlap: Annotated[
        float | None,
        typer.Option(
            help="seconds the old secret keeps signing beside the new one; 0 drops it at once "
            "[default: RETAIN_WEBHOOKS__ROTATION_OVERLAP_SECONDS, a day]",
            min=0,
        ),
    ] = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Give a webhook a new signing secret: its summary, then the new secret as the last line, shown this
    once. Deliveries carry a signature by each secret until the overlap ends."""
    rotated = api.rotate_webhook_secret(webhook_id, overlap, store=_store(store))
    note = {"note": "the signing secret on the next line is shown only once"}
    if as_json:
        shown = cast(dict[str, Any], api.as_json(rotated.webhook))
        shown |= {"previous_until": api.as_json(rotated.previous_until)} | note
        sys.stdout.write(json.dumps(shown, indent=2) + "\n")
    else:
        console.print(summaries.webhook_rotated(rotated))
    sys.stdout.write(rotated.secret + "\n")


@webhooks_app.command("failed")
def webhooks_failed(store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """The dead letters: deliveries that failed every attempt, with the last error."""
    _emit(api.failed_deliveries(store=_store(store)), as_json, summaries.deliveries_failed)


@webhooks_app.command("retry")
def webhooks_retry(
    alert_id: Annotated[str | None, typer.Argument(help="retry this alert's dead deliveries")] = None,
    webhook: Annotated[str | None, typer.Option(help="retry this webhook's dead deliveries")] = None,
    every: Annotated[bool, typer.Option("--all", help="retry every dead delivery")] = False,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Send dead deliveries again, their attempts counted from zero."""
    retried = api.retry_deliveries(alert_id, webhook, every=every, store=_store(store))
    _emit(retried, as_json, summaries.deliveries_retried)


@webhooks_app.command("deliver")
def webhooks_deliver(
    once: Annotated[bool, typer.Option("--once", help="one round, then exit (for a cron)")] = False,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Send due deliveries: one round with --once, else a round every RETAIN_WEBHOOKS__POLL_SECONDS until
    stopped. `retain serve` runs this worker itself; more than one may run at once."""
    if once:
        _emit(api.deliver_webhooks(store=_store(store)), as_json, summaries.delivery_round)
        return
    log_retain_lines()
    _stage("delivering webhooks (Ctrl-C stops)")
    try:
        api.run_webhook_worker(store=_store(store))
    except KeyboardInterrupt:
        err.print("stopped")


# -- the autopilot ----------------------------------------------------------------------------------------


@autopilot_app.command("run")
def autopilot_run(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="say what it would execute and pause; record and send nothing")
    ] = False,
    at: Annotated[
        str | None, typer.Option(help="replay a past moment, e.g. 2025-07-29T09:00:00+00:00 [default: now]")
    ] = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Execute the current plan's autonomous actions the guardrails let through, as action.execute events
    to the subscribed playbook engines; first pause any action its holdout comparison shows harmful. A
    cron runs it, or `retain serve` with RETAIN_AUTOPILOT__WORKER=true; runs may overlap."""
    moment = None if at is None else _instant(at, "--at")
    _stage("the autopilot: harm checks, then the current plan's autonomous actions under the guardrails")
    _emit(
        api.autopilot_run(store=_store(store), at=moment, dry_run=dry_run), as_json, summaries.autopilot_ran
    )


@autopilot_app.command("pause")
def autopilot_pause(
    action: Annotated[str | None, typer.Argument(help="pause only this action [default: everything]")] = None,
    reason: Annotated[str | None, typer.Option(help="why, for whoever resumes it")] = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The kill switch: the autopilot executes nothing (or not ACTION) until resumed; runs under way stop
    before their next execution."""
    _emit(api.autopilot_pause(action, reason, store=_store(store)), as_json, summaries.autopilot_switched)


@autopilot_app.command("resume")
def autopilot_resume(
    action: Annotated[
        str | None, typer.Argument(help="resume only this action [default: everything]")
    ] = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Let the autopilot execute again: everything, or ACTION (paused by a person or for harm)."""
    _emit(api.autopilot_resume(action, store=_store(store)), as_json, summaries.autopilot_switched)


@autopilot_app.command("status")
def autopilot_status(store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Every switch as last set (the whole autopilot's and each action's), with who, when and why."""
    _emit(api.autopilot_switches(store=_store(store)), as_json, summaries.autopilot_switches)


def _instant(text: str, option: str) -> datetime:
    """An ISO 8601 instant; one without a zone is UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as e:
        raise RetainError(f"{option}: expected an instant like 2025-07-29T09:00:00+00:00 ({e})") from e
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@app.command("alerts")
def alerts(store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Derive the alerts of the latest feature build, scoring run and plan again and record those not yet
    recorded (a step whose recording failed says so); exits 2 when the decision log cannot be reached."""
    recorded = api.alerts(store=_store(store))
    _emit(recorded, as_json, summaries.alerts_recorded)
    if recorded.error is not None:
        raise SystemExit(2)


# -- reports -------------------------------------------------------------------------------------------


#: the causal report's --engine: the compute engine, or with --table a cross-check by DoubleML
ReportEngineOpt = Annotated[
    str | None,
    typer.Option(
        "--engine",
        help="duckdb or spark, as elsewhere; with --table also doubleml: estimate each effect with "
        "DoubleML's IRM too, on the same rows, shown beside the report's"
        " [default: $RETAIN_ENGINE, else duckdb]",
        show_default=False,
    ),
]


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
    covariates: Annotated[
        str | None,
        typer.Option(
            help="with --table: adjust for exactly these columns, COL,... [default: every usable column but "
            "those that look changed by the treatment or the outcome]"
        ),
    ] = None,
    exclude: Annotated[
        str | None, typer.Option(help="with --table: COL,... left out of the default choice of columns")
    ] = None,
    jobs: Annotated[int, typer.Option(min=1, help="processes estimating actions side by side")] = 2,
    engine: ReportEngineOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """What each action did to churn and expansion (or each treatment to an export's outcome), doubly
    robust, with segments, who responds best, overlap, refutations and caveats."""
    doubleml, engine = (True, None) if engine == "doubleml" else (False, engine)
    if doubleml and table is None:
        raise RetainError("--engine doubleml goes with --table: it cross-checks a table's estimate")
    if table is None:
        if any(v is not None for v in (treatment, outcome, control, covariates, exclude)):
            raise RetainError("--treatment, --outcome, --control, --covariates and --exclude go with --table")
        _stage("estimating each action's effect on churn and expansion (doubly robust); this takes minutes")
        written = api.report_causal(out, store=_store(store), settings=_settings(engine), jobs=jobs)
    else:
        if treatment is None or outcome is None:
            raise RetainError("--table needs --treatment COL and --outcome COL")
        _stage(f"estimating each {treatment}'s effect on {outcome} in {table} (doubly robust)")
        written = api.report_causal_table(
            table,
            out,
            treatment=treatment,
            outcome=outcome,
            control=control,
            covariates=None if covariates is None else _comma_list(covariates),
            exclude=None if exclude is None else _comma_list(exclude),
            settings=_settings(engine),
            jobs=jobs,
            cross_check=doubleml,
        )
    _emit(written, as_json, summaries.report_written)


# -- the weekly plan -------------------------------------------------------------------------------------


@app.command()
def plan(
    week: Annotated[str, typer.Option(help="the week's first day, e.g. 2025-07-28 (features as of 00:00)")],
    capacity_hours: Annotated[float, typer.Option(help="hours each CSM has for planned actions this week")],
    out: Annotated[
        str,
        typer.Option(
            help="the plan: a CSV, or a database table whose rows of the week it replaces: "
            "'postgresql://USER@HOST:PORT/DB#TABLE', 'sqlite:///PATH#TABLE'"
        ),
    ],
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The weekly plan: actions where the uplift champion expects most value within each CSM's hours; a
    random holdout (setting value.holdout_share) gets none, so the effects stay measurable."""
    day = _one_date(week, "--week")
    _stage(f"planning the week of {day}: features, the uplift champion's values, then each CSM's hours")
    _emit(api.plan(day, capacity_hours, out, store=_store(store)), as_json, summaries.planned)


@app.command()
def monitor(
    out: Annotated[Path, typer.Option(help="folder for monitor.html and monitor.json")],
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Drift of every feature against the champion's training window, realised performance where labels
    matured (and an estimate where they have not), what the weekly plans kept, fallbacks and CSM feedback;
    logged to MLflow and exported as Prometheus gauges by `retain serve`."""
    _stage("monitoring: features, champions, labels, decision log and plans")
    _emit(api.monitor(out, store=_store(store)), as_json, summaries.monitored)


@app.command()
def digest(
    week: Annotated[str, typer.Option(help="the week's Monday, e.g. 2025-07-28")],
    out: Annotated[Path, typer.Option(help="folder for digest-WEEK.html and digest-WEEK.json")],
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The weekly digest for leadership and CSM leads, an email-ready page: accounts entering and leaving
    high risk, ARR at risk by tier and CSM, the week's plan and what the plans kept, alerts by type."""
    day = _one_date(week, "--week")
    _stage(f"digesting the week of {day}: scores, plans and what they kept, alerts")
    _emit(api.digest(day, out, store=_store(store)), as_json, summaries.digested)


@app.command()
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
    _stage("retraining: features, then churn, expansion and uplift, each through the promotion gate")
    result = api.retrain(out, store=_store(store), config=config, uplift_config=uplift_config)
    _emit(result, as_json, summaries.retrained)
    if result.refused:
        raise SystemExit(1)


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
