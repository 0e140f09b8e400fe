"""The FastAPI app: routes, auth, errors, metrics. `retain serve` runs it under uvicorn.

Endpoints that touch a model are plain `def`: FastAPI runs them in its threadpool and LightGBM releases
the GIL, so both cores work (an `async def` would block the event loop; FIELD_NOTES.md). Heavy
resources load in `lifespan` and reach the routes through `ServiceDep`.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import anyio.to_thread
from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from retain.core.settings import Settings
from retain.core.store import Store
from serving.auth import authorise, require
from serving.cockpit.book import BookKeeper
from serving.cockpit.routes import install, warm
from serving.metrics import Metrics
from serving.resources import Resources
from serving.schemas import (
    API_VERSION,
    ActionsRequest,
    ActionsResponse,
    ErrorBody,
    FeedbackIn,
    FeedbackOut,
    InterventionIn,
    InterventionOut,
    ReloadOut,
    RiskResponse,
    ScoreRequest,
    ScoreResponse,
)
from serving.service import ApiError, Service, model_refs

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in (
        (401, "no valid API key"),
        (403, "the key lacks the scope"),
        (404, "unknown account or recommendation"),
        (413, "request body too large"),
        (422, "a field is invalid; `error.fields` names it"),
        (503, "a store the answer needs is unavailable"),
    )
}
AccountId = Annotated[str, Path(min_length=1, max_length=200, examples=["acc-00042"])]


def _error(
    status: int, code: str, message: str, request_id: str, fields: list[dict[str, str]] | None = None
) -> JSONResponse:
    body = {
        "api_version": API_VERSION,
        "request_id": request_id,
        "error": {"code": code, "message": message, "fields": fields or []},
    }
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers)


class Edge:
    """Pure ASGI middleware (cheaper than BaseHTTPMiddleware on every request): a request id in and out,
    a cap on the body size, and per-route request counts and latency."""

    def __init__(self, app: ASGIApp, metrics: Metrics, max_body: int) -> None:
        self.app, self.metrics, self.max_body = app, metrics, max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = dict(scope["headers"])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            response = _error(413, "body_too_large", f"the body exceeds {self.max_body} bytes", request_id)
            await response(scope, receive, send)
            self._observe(scope, 413, started)
            return
        seen = 0

        async def capped_receive() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_body:
                raise _TooLarge
            return message

        async def tagged_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, capped_receive, tagged_send)
        except _TooLarge:
            response = _error(413, "body_too_large", f"the body exceeds {self.max_body} bytes", request_id)
            await response(scope, receive, send)
            status = 413
        finally:
            self._observe(scope, status, started)

    def _observe(self, scope: Scope, status: int, started: float) -> None:
        route = getattr(scope.get("route"), "path", "unmatched")
        method = scope["method"]
        self.metrics.requests.labels(route=route, method=method, status=str(status)).inc()
        self.metrics.latency.labels(route=route, method=method).observe(time.perf_counter() - started)


class _TooLarge(Exception):
    pass


def _json(body: BaseModel, status: int = 200) -> Response:
    """The body rendered by pydantic in one step; FastAPI would validate and encode it again (~1 ms for a
    risk answer). The routes still declare `response_model`, so the docs and schema are unchanged."""
    return Response(body.model_dump_json(), status_code=status, media_type="application/json")


# Dependencies are `async def` although they never await: FastAPI runs a plain `def` dependency in its
# threadpool, a thread hop (~0.2 ms) each, for work that takes microseconds.


async def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def request_id(request: Request) -> str:
    return str(request.scope["state"]["request_id"])


async def _request_id(request: Request) -> str:
    return request_id(request)


ServiceDep = Annotated[Service, Depends(_service)]
RequestId = Annotated[str, Depends(_request_id)]


def _actions_allowed(request: Request, actions: int) -> None:
    if actions:
        authorise(request, "actions:read")


def create_app(store: Store, settings: Settings) -> FastAPI:
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Requests hold the GIL for most of their ~5 ms; forty threads (anyio's default) only take turns
        # and switch, so throughput fell as concurrency rose. A few threads keep both cores busy.
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.serve.threads
        resources = Resources(store, settings)
        await run_in_threadpool(resources.open)
        service = Service(resources, metrics)
        metrics.watch(
            lambda: {k: (ref.version if ref else None) for k, ref in model_refs(resources.loaded).items()},
            lambda: resources.log.stats,
        )
        app.state.service = service
        app.state.book = BookKeeper(resources)
        warm(app.state.book)
        try:
            yield
        finally:
            await run_in_threadpool(resources.close)

    app = FastAPI(
        title="Retain",
        version=API_VERSION,
        summary="Churn risk explained in words, next-best actions, and the rules fallback that says so.",
        lifespan=lifespan,
        responses=ERRORS,
    )
    app.add_middleware(Edge, metrics=metrics, max_body=settings.serve.max_body_bytes)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.message, request_id(request))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [{"field": _location(e["loc"]), "message": str(e["msg"])} for e in exc.errors()]
        names = ", ".join(f["field"] for f in fields)
        return _error(422, "invalid_request", f"invalid field(s): {names}", request_id(request), fields)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error(exc.status_code, code, str(exc.detail), request_id(request))

    @app.get("/healthz", tags=["operations"], summary="the process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"], summary="model and feature store loaded (503 otherwise)")
    def readyz(service: ServiceDep) -> JSONResponse:
        state = service.res.ready()
        ready = state["model"] and state["store"]
        return JSONResponse({"ready": ready, **state}, status_code=200 if ready else 503)

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics", response_class=Response)
    def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get(
        "/v1/accounts/{account_id}/risk",
        tags=["scores"],
        summary="an account's explained churn risk",
        response_model=RiskResponse,
        dependencies=[Depends(require("scores:read"))],
    )
    def risk(
        account_id: AccountId,
        request: Request,
        service: ServiceDep,
        rid: RequestId,
        actions: Annotated[int, Query(ge=0, le=12, description="also rank this many next-best actions")] = 0,
    ) -> Response:
        _actions_allowed(request, actions)
        answer = service.risk(account_id, rid, actions)
        return _json(RiskResponse.model_construct(request_id=rid, api_version=API_VERSION, **dict(answer)))

    @app.post(
        "/v1/score",
        tags=["scores"],
        summary="explained risk for up to 1,000 accounts, by id or with your own features",
        response_model=ScoreResponse,
        dependencies=[Depends(require("scores:read"))],
    )
    def score(body: ScoreRequest, request: Request, service: ServiceDep, rid: RequestId) -> Response:
        if len(body.accounts) > settings.serve.max_batch:
            raise ApiError(
                422,
                "batch_too_large",
                f"accounts: at most {settings.serve.max_batch} per call, got {len(body.accounts)}",
            )
        _actions_allowed(request, body.actions)
        results, errors = service.score(body.accounts, rid, body.actions)
        return _json(ScoreResponse(request_id=rid, results=results, errors=errors))

    def _actions(account_id: str, ask: ActionsRequest, service: Service, rid: str) -> ActionsResponse:
        return ActionsResponse(request_id=rid, **service.next_best_actions(account_id, rid, ask))

    @app.get(
        "/v1/accounts/{account_id}/next-best-actions",
        tags=["actions"],
        summary="eligible actions, ranked, with rationale",
        response_model=ActionsResponse,
        dependencies=[Depends(require("actions:read"))],
    )
    def next_best_actions(
        account_id: AccountId,
        service: ServiceDep,
        rid: RequestId,
        limit: Annotated[int, Query(ge=1, le=12)] = 5,
        include_ineligible: bool = False,
    ) -> ActionsResponse:
        return _actions(
            account_id, ActionsRequest(limit=limit, include_ineligible=include_ineligible), service, rid
        )

    @app.post(
        "/v1/accounts/{account_id}/next-best-actions",
        tags=["actions"],
        summary="the same, with channel and exclusion filters",
        response_model=ActionsResponse,
        dependencies=[Depends(require("actions:read"))],
    )
    def next_best_actions_post(
        account_id: AccountId, body: ActionsRequest, service: ServiceDep, rid: RequestId
    ) -> ActionsResponse:
        return _actions(account_id, body, service, rid)

    @app.post(
        "/v1/interventions",
        tags=["actions"],
        summary="record an action taken (feeds the interventions table uplift models learn from)",
        response_model=InterventionOut,
        status_code=201,
        dependencies=[Depends(require("actions:write"))],
    )
    def interventions(body: InterventionIn, service: ServiceDep, rid: RequestId) -> InterventionOut:
        return InterventionOut(request_id=rid, **service.record_intervention(body, rid))

    @app.post(
        "/v1/recommendations/{recommendation_id}/feedback",
        tags=["actions"],
        summary="accepted, rejected (with reason) or done; done records the intervention",
        response_model=FeedbackOut,
        status_code=201,
        dependencies=[Depends(require("actions:write"))],
    )
    def feedback(
        recommendation_id: Annotated[str, Path(min_length=1, max_length=200)],
        body: FeedbackIn,
        service: ServiceDep,
        rid: RequestId,
    ) -> FeedbackOut:
        return FeedbackOut(request_id=rid, **service.feedback(recommendation_id, body, rid))

    @app.post(
        "/v1/admin/reload",
        tags=["operations"],
        summary="load the current champions and feature registry now",
        response_model=ReloadOut,
        dependencies=[Depends(require("admin"))],
    )
    def reload(service: ServiceDep, rid: RequestId) -> ReloadOut:
        changed, errors = service.res.reload()
        return ReloadOut(
            request_id=rid, models=model_refs(service.res.loaded), changed=changed, errors=errors
        )

    install(app, settings)
    return app


def _location(loc: tuple[Any, ...] | list[Any]) -> str:
    """`("body", "accounts", 0, "account_id")` -> `body.accounts[0].account_id`."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
