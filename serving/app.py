"""The FastAPI app: the API's routers and the cockpit's, behind one middleware. `retain serve` runs it
under uvicorn: built here with `create_app` for one process, or in each worker by `app_from_environment`.

Heavy resources load in `lifespan`, never at import, and reach the routes as dependencies
(`serving/deps.py`).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.logs import log_retain_lines
from core.settings import Settings
from ingest.column_mapping import settings_adoption
from serving.auth import bearer, check_key, scopes_of
from serving.cockpit import routes as cockpit
from serving.cockpit.access import SignIn, sign_in_redirect
from serving.cockpit.headers import CockpitHeaders
from serving.cockpit.keeper import BookKeeper
from serving.cockpit.sessions import SessionsUnavailable, session_store
from serving.errors import ERROR_RESPONSES, ApiError, error_response, field_location
from serving.metrics import Metrics
from serving.middleware import RequestMiddleware, request_id
from serving.resources import Resources
from serving.routes import accounts, actions, autopilot, interventions, operations, scores, webhooks
from serving.schemas import API_VERSION
from serving.service import Service, model_refs
from store.decision_log import DecisionLogUnavailable
from store.delta import Store
from store.gauges import read_gauges

#: the settings `retain serve` resolved (flags over environment), as JSON, for its worker processes
SETTINGS_VARIABLE = "RETAIN_WORKER_SETTINGS"
#: the store `retain serve` opened (`Store.location`), for its worker processes
STORE_VARIABLE = "RETAIN_WORKER_STORE"


def worker_environment(store: Store, settings: Settings) -> dict[str, str]:
    """What a worker process needs to build the same app as `create_app(store, settings)`: uvicorn starts
    workers from an import string, so the settings travel whole, not re-read with the flags lost."""
    return {SETTINGS_VARIABLE: settings.model_dump_json(), STORE_VARIABLE: store.location}


def app_from_environment() -> FastAPI:
    """uvicorn's factory in each worker: the app over the store and settings `worker_environment` gave."""
    log_retain_lines()
    settings = Settings.model_validate_json(os.environ[SETTINGS_VARIABLE])
    store = Store.at(os.environ[STORE_VARIABLE], settings.home, settings_adoption(settings))
    return create_app(store, settings)


def create_app(store: Store, settings: Settings) -> FastAPI:
    metrics = Metrics()
    app = FastAPI(
        title="Retain",
        version=API_VERSION,
        summary="Churn risk explained in words, next-best actions, and the rules fallback that says so.",
        lifespan=partial(_lifespan, store=store, settings=settings, metrics=metrics),
        responses=ERROR_RESPONSES,
        exception_handlers={
            ApiError: _api_error,
            DecisionLogUnavailable: _decision_log_unavailable,
            RequestValidationError: _invalid_request,
            StarletteHTTPException: _http_error,
            SignIn: sign_in_redirect,
            SessionsUnavailable: cockpit.sessions_down_page,
        },
    )
    app.add_middleware(RequestMiddleware, metrics=metrics, max_body=settings.serve.max_body_bytes)
    app.add_middleware(CockpitHeaders)  # outermost: a 413 under /ui carries the headers too
    for routes in (operations, scores, accounts, actions, interventions, webhooks, autopilot):
        app.include_router(routes.router)
    app.include_router(cockpit.router)
    return app


@asynccontextmanager
async def _lifespan(
    app: FastAPI, *, store: Store, settings: Settings, metrics: Metrics
) -> AsyncIterator[None]:
    """Load the champions, the feature store and the logs; share them on `app.state`; close them at exit."""
    # Requests hold the GIL for most of their ~2 ms; forty threads (anyio's default) only take turns and
    # switch, so throughput fell as concurrency rose. A few threads keep both cores busy.
    anyio.to_thread.current_default_thread_limiter().total_tokens = settings.serve.threads
    resources = Resources(store, settings)
    await run_in_threadpool(resources.open)
    metrics.watch(
        lambda: {k: (ref.version if ref else None) for k, ref in model_refs(resources.loaded).items()},
        lambda: resources.log.stats,
        lambda: read_gauges(store),
        settings.serve.reload_seconds,
    )
    app.state.metrics = metrics
    app.state.service = Service(resources, metrics)
    app.state.sessions = session_store(settings)
    app.state.book = BookKeeper(resources)
    app.state.book.warm()
    try:
        yield
    finally:
        await app.state.sessions.shut()
        await run_in_threadpool(resources.close)


async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    return error_response(exc.status, exc.code, exc.message, request_id(request), exc.fields)


async def _decision_log_unavailable(request: Request, exc: DecisionLogUnavailable) -> JSONResponse:
    """503 with the reason, for a read of the log a route did not expect to fail."""
    return error_response(503, "decision_log_unavailable", str(exc), request_id(request))


async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 naming the fields; but first the route's key check, which a malformed body would skip."""
    service: Service = request.app.state.service
    try:
        for scope in scopes_of(request.scope.get("route")):
            check_key(service, bearer(request), scope)
    except ApiError as e:
        return await _api_error(request, e)
    fields = [{"field": field_location(e["loc"]), "message": str(e["msg"])} for e in exc.errors()]
    names = ", ".join(f["field"] for f in fields)
    return error_response(422, "invalid_request", f"invalid field(s): {names}", request_id(request), fields)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), request_id(request), headers=exc.headers)
