"""The pages people read: `retain report causal`, `retain monitor` and `retain digest`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from core.errors import RetainError
from retain import api
from retain.cli import summaries
from retain.cli.common import (
    JsonOpt,
    StoreOpt,
    comma_list,
    emit,
    engine_settings,
    one_date,
    open_store,
    stage,
)

report_app = typer.Typer(
    help="Reports for leadership: one self-contained HTML page plus JSON.", no_args_is_help=True
)


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
        stage("estimating each action's effect on churn and expansion (doubly robust); this takes minutes")
        written = api.report_causal(out, store=open_store(store), settings=engine_settings(engine), jobs=jobs)
    else:
        if treatment is None or outcome is None:
            raise RetainError("--table needs --treatment COL and --outcome COL")
        stage(f"estimating each {treatment}'s effect on {outcome} in {table} (doubly robust)")
        written = api.report_causal_table(
            table,
            out,
            treatment=treatment,
            outcome=outcome,
            control=control,
            covariates=None if covariates is None else comma_list(covariates),
            exclude=None if exclude is None else comma_list(exclude),
            settings=engine_settings(engine),
            jobs=jobs,
            cross_check=doubleml,
        )
    emit(written, as_json, summaries.report_written)


def monitor(
    out: Annotated[Path, typer.Option(help="folder for monitor.html and monitor.json")],
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Drift of every feature against the champion's training window, realised performance where labels
    matured (and an estimate where they have not), what the weekly plans kept, fallbacks and CSM feedback;
    logged to MLflow and exported as Prometheus gauges by `retain serve`."""
    stage("monitoring: features, champions, labels, decision log and plans")
    emit(api.monitor(out, store=open_store(store)), as_json, summaries.monitored)


def digest(
    week: Annotated[str, typer.Option(help="the week's Monday, e.g. 2025-07-28")],
    out: Annotated[Path, typer.Option(help="folder for digest-WEEK.html and digest-WEEK.json")],
    send: Annotated[
        bool,
        typer.Option(
            "--send",
            help="then mail the page (RETAIN_DELIVERY__SMTP_HOST, __MAIL_FROM, __MAIL_TO) and post its "
            "headlines to Slack (RETAIN_DELIVERY__DIGEST_SLACK_URL), to each that is set; a failure exits 2",
        ),
    ] = False,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The weekly digest for leadership and CSM leads, an email-ready page: accounts entering and leaving
    high risk, ARR at risk by tier and CSM, the week's plan and what the plans kept, alerts by type."""
    day = one_date(week, "--week")
    then = "; then sending it" if send else ""
    stage(f"digesting the week of {day}: scores, plans and what they kept, alerts{then}")
    emit(api.digest(day, out, store=open_store(store), send=send), as_json, summaries.digested)
