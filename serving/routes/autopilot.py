"""The autopilot's kill switch over HTTP, as `retain autopilot pause|resume|status`: for admin keys only,
since it decides whether Retain acts on accounts by itself. A pause holds from the moment it is set, even
for a run under way (`serving.autopilot_log`)."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool

from serving.auth import KeyRequired
from serving.autopilot_log import AutopilotLog, Switch, UnknownScope, switch_scope
from serving.caller import Caller
from serving.deps import CallerDep, ServiceDep
from serving.errors import ApiError
from serving.schemas import AutopilotSwitches, AutopilotSwitchIn, AutopilotSwitchOut, AutopilotSwitchResponse
from serving.service import Service

router = APIRouter(tags=["autopilot"], dependencies=[Depends(KeyRequired("admin"))])


@router.get("/v1/autopilot", summary="the kill switches as last set: the whole autopilot's and each action's")
async def switches(service: ServiceDep, caller: CallerDep) -> AutopilotSwitches:
    found = await run_in_threadpool(AutopilotLog(service.resources.log).switches)
    listed = [AutopilotSwitchOut(**asdict(s)) for _, s in sorted(found.items())]
    return AutopilotSwitches(request_id=caller.request_id, switches=listed)


@router.post("/v1/autopilot/pause", summary="pause the autopilot, or one of its actions, until resumed")
async def pause(body: AutopilotSwitchIn, service: ServiceDep, caller: CallerDep) -> AutopilotSwitchResponse:
    return await run_in_threadpool(_switch, service, caller, body, True)


@router.post("/v1/autopilot/resume", summary="let the autopilot, or one of its actions, execute again")
async def resume(body: AutopilotSwitchIn, service: ServiceDep, caller: CallerDep) -> AutopilotSwitchResponse:
    return await run_in_threadpool(_switch, service, caller, body, False)


def _switch(
    service: Service, caller: Caller, body: AutopilotSwitchIn, paused: bool
) -> AutopilotSwitchResponse:
    """Set the switch the body names, in the acting key's name; 422 naming an action it never takes."""
    try:
        scope = switch_scope(body.action, service.resources.playbook)
    except UnknownScope as e:
        raise ApiError(422, "unknown_action", str(e), [{"field": "body.action", "message": str(e)}]) from e
    actor = f"key {caller.key_id}"
    switch: Switch = AutopilotLog(service.resources.log).set_switch(scope, paused, actor, body.reason)
    return AutopilotSwitchResponse(request_id=caller.request_id, **asdict(switch))
