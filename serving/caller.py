"""Who asked: the request's id and the API key that acted, as the decision log records them with every
decision, feedback and action taken (a caller can name any `actor`, but not another key)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Caller:
    request_id: str
    #: the acting key's public id; None only for calls made without HTTP (tests, tools)
    key_id: str | None = None
