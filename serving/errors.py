"""Every answer other than 2xx has one JSON shape (`ErrorBody`) with a stable code a playbook engine can
branch on; the app's exception handlers and the request middleware all render it here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi.responses import JSONResponse

from serving.schemas import ErrorBody, ErrorDetail


class ApiError(Exception):
    """An answer other than 200, with a stable code a playbook engine can branch on."""

    def __init__(
        self, status: int, code: str, message: str, fields: list[dict[str, str]] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        #: the fields at fault, as a 422 for the request's own shape names them
        self.fields = fields or []


#: the error answers any endpoint may give, as the OpenAPI document lists them (FastAPI's own shape)
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in (
        (400, "a body that cannot be read as text (not UTF-8)"),
        (401, "no valid API key"),
        (403, "the key lacks the scope"),
        (404, "unknown account or recommendation"),
        (413, "request body too large"),
        (422, "a field is invalid; `error.fields` names it"),
        (503, "a store the answer needs is unavailable"),
    )
}


def error_response(
    status: int,
    code: str,
    message: str,
    request_id: str,
    fields: list[dict[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """The error as sent, with the `headers` its status calls for (a 405's `Allow`); a 401 also says how
    to authenticate (`WWW-Authenticate: Bearer`)."""
    body = ErrorBody(
        request_id=request_id, error=ErrorDetail(code=code, message=message, fields=fields or [])
    )
    sent = {**(headers or {}), **({"WWW-Authenticate": "Bearer"} if status == 401 else {})}
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=sent or None)


def field_location(location: Sequence[int | str]) -> str:
    """`("body", "accounts", 0, "account_id")` -> `body.accounts[0].account_id`."""
    out = ""
    for part in location:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
