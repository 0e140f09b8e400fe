"""Explained churn risk: one account's, or a batch's (by id, or with the caller's own features).

Endpoints that touch a model are plain `def`: FastAPI runs them in its threadpool and LightGBM releases
the GIL, so both cores work (an `async def` would block the event loop).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from serving.auth import KeyRequired, request_key, require_scope
from serving.deps import CallerDep, ServiceDep
from serving.errors import ApiError
from serving.routes.common import AccountId, json_response
from serving.schemas import RiskResponse, ScoreRequest, ScoreResponse

router = APIRouter(tags=["scores"], dependencies=[Depends(KeyRequired("scores:read"))])


@router.get(
    "/v1/accounts/{account_id}/risk",
    summary="an account's explained churn risk",
    response_model=RiskResponse,
)
def risk(
    account_id: AccountId,
    request: Request,
    service: ServiceDep,
    caller: CallerDep,
    actions: Annotated[int, Query(ge=0, le=12, description="also rank this many next-best actions")] = 0,
) -> Response:
    _actions_allowed(request, actions)
    return json_response(service.risk(account_id, caller, actions))


@router.post(
    "/v1/score",
    summary="explained risk for up to 1,000 accounts, by id or with your own features",
    response_model=ScoreResponse,
)
def score(body: ScoreRequest, request: Request, service: ServiceDep, caller: CallerDep) -> Response:
    most = service.resources.settings.serve.max_batch
    if len(body.accounts) > most:
        raise ApiError(422, "batch_too_large", f"accounts: at most {most} per call, got {len(body.accounts)}")
    _actions_allowed(request, body.actions)
    return json_response(service.score(body.accounts, caller, body.actions))


def _actions_allowed(request: Request, actions: int) -> None:
    """Asking for next-best actions with a score also needs `actions:read`, of the key already checked."""
    if actions:
        require_scope(request_key(request), "actions:read")
