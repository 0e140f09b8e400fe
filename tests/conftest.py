"""Shared fixtures. Service-backed tests skip locally when a service is down, but fail in CI."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.support.served import Server, World, make_world
from tests.support.services import require_service
from tests.support.shared import built_once
from tests.support.worlds import DriftedWorld, UpliftWorld, make_drifted_world, make_uplift_world


@pytest.fixture(scope="session")
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


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.service)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database on each back end SQLAlchemy serves here: an SQLite file in the test's folder, and a fresh
    real PostgreSQL database (the decision log's, or one a reverse-ETL tool reads)."""
    if request.param == "postgresql":
        url: str = request.getfixturevalue("postgres_database")
        return url
    return f"sqlite:///{tmp_path}/decisions.db"


@pytest.fixture(scope="session")
def uplift_world(tmp_path_factory: pytest.TempPathFactory) -> UpliftWorld:
    """Also the store the causal walkthrough notebook reads, and the end-to-end check of the features
    against the simulator's truth."""
    return built_once("uplift", tmp_path_factory, make_uplift_world)


@pytest.fixture(scope="session")
def served_world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """A store trained, published and keyed once for the modules that run `retain serve` over it (the
    cockpit's end-to-end tests too) and the model review notebook; each starts its own servers, and a
    test that breaks a file puts it back."""
    return built_once("served", tmp_path_factory, make_world)


@pytest.fixture
def serve(served_world: World, tmp_path: Path) -> Iterator[Any]:
    """Start `retain serve` processes on the shared served world, each with its own settings; all are
    stopped after the test."""
    started: list[Server] = []

    def start(**env: str) -> Server:
        server = Server(served_world, tmp_path / f"server-{len(started)}.log", served_world.latest, **env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def drifted_world(tmp_path_factory: pytest.TempPathFactory) -> DriftedWorld:
    """A world with a release drift and a churn champion from before it: what `retain monitor` and
    `retain retrain` are tested on, and the store the monitoring notebook reads."""
    return built_once("drifted", tmp_path_factory, make_drifted_world)
