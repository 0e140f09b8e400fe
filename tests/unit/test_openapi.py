"""The API's OpenAPI document, as `/docs` and `/openapi.json` serve it: every endpoint names its typed
answer, errors share one shape, and the cockpit's pages stay out of it. Building the app loads nothing
(that happens at startup), so this needs no store."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import pytest

from core.catalogue import Channel
from core.settings import Settings
from serving.app import create_app
from serving.cockpit.book import FILTER_VALUES
from store.delta import Store

SCHEMAS = "#/components/schemas/"
#: (method, path, status) -> the response model's schema
ANSWERS = {
    ("get", "/healthz", "200"): "Liveness",
    ("get", "/readyz", "200"): "Readiness",
    ("get", "/readyz", "503"): "Readiness",
    ("get", "/v1/accounts/{account_id}/risk", "200"): "RiskResponse",
    ("post", "/v1/score", "200"): "ScoreResponse",
    ("get", "/v1/accounts", "200"): "AccountsResponse",
    ("get", "/v1/accounts/{account_id}/next-best-actions", "200"): "ActionsResponse",
    ("post", "/v1/accounts/{account_id}/next-best-actions", "200"): "ActionsResponse",
    ("post", "/v1/interventions", "201"): "InterventionOut",
    ("post", "/v1/recommendations/{recommendation_id}/feedback", "201"): "FeedbackOut",
    ("post", "/v1/admin/reload", "200"): "ReloadOut",
    ("get", "/v1/webhooks", "200"): "WebhookList",
    ("post", "/v1/webhooks", "201"): "WebhookCreated",
    ("delete", "/v1/webhooks/{webhook_id}", "200"): "WebhookResponse",
    ("post", "/v1/webhooks/{webhook_id}/rotate", "200"): "WebhookRotated",
    ("get", "/v1/webhooks/failed", "200"): "FailedDeliveries",
    ("post", "/v1/webhooks/retry", "200"): "RetryOut",
    ("get", "/v1/autopilot", "200"): "AutopilotSwitches",
    ("post", "/v1/autopilot/pause", "200"): "AutopilotSwitchResponse",
    ("post", "/v1/autopilot/resume", "200"): "AutopilotSwitchResponse",
}


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    home: Path = tmp_path_factory.mktemp("openapi")
    openapi: dict[str, Any] = create_app(Store(home / "store"), Settings(home=home / "store")).openapi()
    return openapi


def _answer(document: dict[str, Any], method: str, path: str, status: str) -> str | None:
    response = document["paths"][path][method]["responses"].get(status, {})
    ref: str | None = response.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref")
    return ref


def test_every_endpoint_names_its_typed_answer(document: dict[str, Any]) -> None:
    for (method, path, status), model in ANSWERS.items():
        assert _answer(document, method, path, status) == SCHEMAS + model, (method, path, status)
    assert {(method, path) for method, path, _ in ANSWERS} | {("get", "/metrics")} == {
        (method, path) for path, operations in document["paths"].items() for method in operations
    }, "every API endpoint is listed above, and the cockpit's pages are not in the document"


def test_errors_share_one_shape(document: dict[str, Any]) -> None:
    for path, operations in document["paths"].items():
        for method in operations:
            for status in ("401", "403", "422"):
                assert _answer(document, method, path, status) == SCHEMAS + "ErrorBody", (method, path)


def test_a_risk_reason_is_named_apart_from_the_trainings_reason(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert "Reason" not in schemas
    assert schemas["Risk"]["properties"]["reasons"]["items"] == {"$ref": SCHEMAS + "RiskReason"}
    assert list(schemas["Readiness"]["properties"]) == [
        "ready",
        "model",
        "uplift",
        "store",
        "tables",
        "errors",
        "decision_log",
        "decision_log_writable",
    ]


def test_the_document_lists_the_400_a_body_not_in_utf8_answers(document: dict[str, Any]) -> None:
    """A body that is not UTF-8 answers 400, which no endpoint documented (issue 51)."""
    for path, operations in document["paths"].items():
        for method in operations:
            assert _answer(document, method, path, "400") == SCHEMAS + "ErrorBody", (method, path)


def test_an_action_s_channel_is_one_of_the_catalogue_s(document: dict[str, Any]) -> None:
    """The schema said only `string` for the four channels an action can be on (issue 51)."""
    channel = document["components"]["schemas"]["ActionOut"]["properties"]["channel"]
    assert channel["enum"] == list(get_args(Channel))


def test_the_book_s_filters_list_their_values(document: dict[str, Any]) -> None:
    """`GET /v1/accounts` named its filters' values only in prose (issue 51)."""
    parameters = {p["name"]: p["schema"] for p in document["paths"]["/v1/accounts"]["get"]["parameters"]}
    for name in ("tier", "band", "renewal", "source"):
        assert parameters[name]["enum"] == ["", *FILTER_VALUES[name]], name
