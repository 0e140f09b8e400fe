"""`retain serve`: the serving API under uvicorn, in one process or several, with the webhook and autopilot
workers beside it."""

from __future__ import annotations

import os
import tempfile
from typing import Annotated, Any

import typer

from core.errors import RetainError
from core.logs import log_retain_lines
from core.settings import Settings
from retain import api
from retain.cli.common import StoreOpt, one_date, open_store, stage


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
    # one OpenMP thread per LightGBM call, set before LightGBM loads: a request scores one row, and threads
    # spinning beside the other requests' (and workers') made two workers serve 1.2x one worker, not 2.6x
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    # deferred: the server stack, only this command needs it
    import uvicorn

    from products.autopilot.worker import piloting
    from serving.app import create_app, worker_environment
    from serving.webhooks.delivery import delivering

    overrides: dict[str, Any] = {"host": host, "port": port, "workers": workers}
    if as_of is not None:
        overrides["as_of"] = one_date(as_of, "--as-of")
    settings = _serve_settings(overrides, cookie_secure)
    opened = open_store(store)
    api.check_playbook(store=opened, settings=settings)  # a file that does not read stops here, at its line
    log_retain_lines()
    serving = settings.serve
    base = f"http://{serving.host}:{serving.port}"
    stage(f"serving on {base}: the API's docs at {base}/docs, the cockpit at {base}/ui (Ctrl-C stops it)")
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
