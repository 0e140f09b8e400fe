"""What routes are given rather than reach for: the service, the metrics, the request's id and caller.

`create_app` and its lifespan put the shared objects on `app.state`; routes name them as annotated
parameters (`service: ServiceDep`), so a route's signature says everything it uses.

The dependencies are `async def` although they never await: FastAPI runs a plain `def` dependency in its
threadpool, a thread hop (~0.2 ms) each, for work that takes microseconds.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from serving.caller import Caller
from serving.metrics import Metrics
from serving.middleware import request_id
from serving.service import Service


async def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


async def _metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


async def _request_id(request: Request) -> str:
    return request_id(request)


async def _caller(request: Request) -> Caller:
    """The request's id and the key `KeyRequired` checked (a route's key check runs before its own
    parameters are resolved)."""
    return Caller(request_id(request), getattr(request.state, "key_id", None))


ServiceDep = Annotated[Service, Depends(_service)]
MetricsDep = Annotated[Metrics, Depends(_metrics)]
RequestId = Annotated[str, Depends(_request_id)]
CallerDep = Annotated[Caller, Depends(_caller)]
