"""Who is calling: an API key, presented as a bearer token (the API) or held by a cockpit session."""

from __future__ import annotations

from fastapi import Request
from fastapi.dependencies.models import Dependant

from core.errors import RetainError
from serving.deps import ServiceDep
from serving.errors import ApiError
from serving.keys import ApiKey
from serving.service import Service


def bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    return header[7:].strip() if header[:7].lower() == "bearer " else ""


def check_key(service: Service, token: str, scope: str) -> ApiKey:
    """The live key `token` is, which must carry `scope` (401 without a valid key, 403 without it)."""
    try:
        key = service.resources.keys.authenticate(token) if token else None
    except RetainError as e:
        raise ApiError(503, "keys_unavailable", f"API keys cannot be read: {e}") from e
    if key is None:
        raise ApiError(401, "unauthorized", "send a valid API key as `Authorization: Bearer <key>`")
    return require_scope(key, scope)


def require_scope(key: ApiKey, scope: str) -> ApiKey:
    """`key`, which must carry `scope` (403 without it)."""
    if not key.allows(scope):
        raise ApiError(403, "forbidden", f"this key lacks the scope {scope!r}")
    return key


class KeyRequired:
    """A dependency: the caller's bearer key, which must carry `scope`. A class, not a closure, so the
    app can find which scope a route needs when it answers before the dependencies ran (`scopes_of`)."""

    def __init__(self, scope: str) -> None:
        self.scope = scope

    async def __call__(self, request: Request, service: ServiceDep) -> ApiKey:
        key = check_key(service, bearer(request), self.scope)
        request.state.key_id = key.key_id  # for `CallerDep`: the decision log records which key acted
        request.state.key = key  # for a route's further scopes (`request_key`): one check a request
        return key


def request_key(request: Request) -> ApiKey:
    """The key `KeyRequired` checked for this request."""
    key: ApiKey = request.state.key
    return key


def scopes_of(route: object) -> list[str]:
    """The scopes a route's dependencies require: FastAPI parses a JSON body before it runs them, and a
    caller without a valid key must hear 401 for that route, not how its body is malformed."""
    dependant: Dependant | None = getattr(route, "dependant", None)
    pending = [dependant] if dependant is not None else []
    scopes = []
    while pending:
        current = pending.pop()
        if isinstance(current.call, KeyRequired):
            scopes.append(current.call.scope)
        pending.extend(current.dependencies)
    return scopes
