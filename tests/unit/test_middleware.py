"""What every request passes through: an error nothing caught is still a JSON answer with its id."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import requests
import uvicorn
from fastapi import FastAPI

from serving.metrics import Metrics
from serving.middleware import RequestMiddleware


@pytest.fixture
def failing_app_url() -> Iterator[str]:
    """A route that raises what nothing catches, behind the middleware, under a real uvicorn."""
    app = FastAPI()

    @app.get("/boom")
    def boom() -> None:
        raise OverflowError("int too large to convert to float")

    app.add_middleware(RequestMiddleware, metrics=Metrics(), max_body=1_000)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_an_uncaught_error_is_a_json_500_carrying_the_request_id(failing_app_url: str) -> None:
    """An OverflowError in a route was Starlette's plain-text 500 without `X-Request-ID` (issue 35)."""
    answer = requests.get(f"{failing_app_url}/boom", headers={"X-Request-ID": "req-42"}, timeout=10)
    assert answer.status_code == 500 and answer.headers["X-Request-ID"] == "req-42"
    assert answer.json()["request_id"] == "req-42" and answer.json()["error"]["code"] == "internal_error"
    assert "int too large" not in answer.text  # the cause goes to the log, not to the caller


@pytest.mark.parametrize("path", ["/docs", "/boom", "/nowhere"])
def test_every_answer_may_not_be_framed_or_sniffed(failing_app_url: str, path: str) -> None:
    """`/docs` is a page, and sent no security headers: any site could frame it (issue 51)."""
    answer = requests.get(f"{failing_app_url}{path}", timeout=10)
    assert answer.headers["X-Frame-Options"] == "DENY"
    assert answer.headers["Content-Security-Policy"] == "frame-ancestors 'none'"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert answer.headers["Referrer-Policy"] == "no-referrer"
