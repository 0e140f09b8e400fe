"""Running the service: liveness, readiness, Prometheus metrics, and loading new champions now."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from serving.auth import KeyRequired
from serving.deps import MetricsDep, RequestId, ServiceDep
from serving.routes.common import json_response
from serving.schemas import Liveness, Readiness, ReloadOut

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="the process is up")
async def healthz() -> Liveness:
    return Liveness()


@router.get(
    "/readyz",
    summary="model and feature store loaded (503 otherwise)",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "not ready: what is missing, and why"}},
)
def readyz(service: ServiceDep) -> Response:
    readiness = service.resources.readiness()
    return json_response(readiness, 200 if readiness.ready else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def prometheus(metrics: MetricsDep) -> Response:
    return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


@router.post(
    "/v1/admin/reload",
    summary="load the current champions and feature registry now",
    response_model=ReloadOut,
    dependencies=[Depends(KeyRequired("admin"))],
)
def reload(service: ServiceDep, request_id: RequestId) -> ReloadOut:
    return service.reload(request_id)
