"""Who is calling: an API key, presented as a bearer token (the API) or held by a cockpit session."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request

from retain.core.errors import RetainError
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
    if not key.allows(scope):
        raise ApiError(403, "forbidden", f"this key lacks the scope {scope!r}")
    return key


def require(scope: str) -> Callable[[Request, Service], Awaitable[ApiKey]]:
    """A dependency: the caller's bearer key, which must carry `scope`."""

    async def caller_key(request: Request, service: ServiceDep) -> ApiKey:
        return check_key(service, bearer(request), scope)

    return caller_key
