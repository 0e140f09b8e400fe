"""Next-best actions for an account: eligible actions ranked (by expected value or by the rules), each
with its rationale and a recommendation id that feedback quotes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from serving.auth import KeyRequired
from serving.deps import CallerDep, ServiceDep
from serving.routes.common import AccountId
from serving.schemas import MAX_ACTIONS, ActionsRequest, ActionsResponse

router = APIRouter(tags=["actions"], dependencies=[Depends(KeyRequired("actions:read"))])


@router.get(
    "/v1/accounts/{account_id}/next-best-actions",
    summary="eligible actions, ranked, with rationale",
    response_model=ActionsResponse,
)
def next_best_actions(
    account_id: AccountId,
    service: ServiceDep,
    caller: CallerDep,
    limit: Annotated[int, Query(ge=1, le=MAX_ACTIONS)] = 5,
    include_ineligible: bool = False,
) -> ActionsResponse:
    ask = ActionsRequest(limit=limit, include_ineligible=include_ineligible)
    return service.next_best_actions(account_id, caller, ask)


@router.post(
    "/v1/accounts/{account_id}/next-best-actions",
    summary="the same, with channel and exclusion filters",
    response_model=ActionsResponse,
)
def next_best_actions_post(
    account_id: AccountId, body: ActionsRequest, service: ServiceDep, caller: CallerDep
) -> ActionsResponse:
    return service.next_best_actions(account_id, caller, body)
