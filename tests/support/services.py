"""Real services the tests talk to: a missing one fails in CI and skips elsewhere, never passes."""

from __future__ import annotations

import os
import socket

import pytest


def unavailable(message: str) -> None:
    """Fail in CI (RETAIN_REQUIRE_SERVICES=1), skip elsewhere: a missing dependency is never a pass."""
    if os.environ.get("RETAIN_REQUIRE_SERVICES") == "1":
        pytest.fail(message)
    pytest.skip(message)


def require_service(name: str, host: str, port: int) -> None:
    try:
        with socket.create_connection((host, port), timeout=2):
            return
    except OSError as e:
        unavailable(f"{name} is not reachable on {host}:{port} ({e})")
