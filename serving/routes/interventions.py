"""What was done: actions taken (the interventions uplift models learn from) and feedback on
recommendations (accepted, rejected with a reason, or done, which records the intervention)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response

from serving.auth import KeyRequired
from serving.deps import CallerDep, ServiceDep
from serving.schemas import ErrorBody, FeedbackIn, FeedbackOut, InterventionIn, InterventionOut

router = APIRouter(tags=["actions"], dependencies=[Depends(KeyRequired("actions:write"))])


@router.post(
    "/v1/interventions",
    summary="record an action taken (feeds the interventions table uplift models learn from)",
    response_model=InterventionOut,
    status_code=201,
)
def interventions(body: InterventionIn, service: ServiceDep, caller: CallerDep) -> InterventionOut:
    return service.record_intervention(body, caller)


@router.post(
    "/v1/recommendations/{recommendation_id}/feedback",
    summary="accepted, rejected (with reason) or done; done records the intervention",
    response_model=FeedbackOut,
    responses={
        202: {"model": FeedbackOut, "description": "accepted into the queue while the decision log is away"},
        410: {"model": ErrorBody, "description": "served, but its decision-log entry was lost"},
    },
    status_code=201,
)
def feedback(
    recommendation_id: Annotated[str, Path(min_length=1, max_length=200)],
    body: FeedbackIn,
    service: ServiceDep,
    caller: CallerDep,
    response: Response,
) -> FeedbackOut:
    given = service.feedback(recommendation_id, body, caller)
    if given.queued:
        response.status_code = 202
    return given
