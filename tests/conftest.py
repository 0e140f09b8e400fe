"""Shared fixtures. Service-backed tests skip locally when a service is down, but fail in CI."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator

import psycopg
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


@pytest.fixture
def redis_url() -> str:
    require_service("Redis", "127.0.0.1", 6379)
    return "redis://127.0.0.1:6379/0"


@pytest.fixture
def postgres_dsn() -> str:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    return "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
def postgres_database(postgres_dsn: str) -> Iterator[str]:
    """A fresh database for this test, dropped afterwards (pooled connections left open included)."""
    name = f"retain_test_{uuid.uuid4().hex[:10]}"
    admin = postgres_dsn.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{postgres_dsn.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
