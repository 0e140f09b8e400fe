"""The scored book as the API lists it: every active account by ARR at risk, narrowed by the cockpit's
filters (`serving/cockpit/book.py` parses and applies them, for both) and paged, for a CRM or a BI tool.

Plain `def`: the first call after a reload may score the book (a second or two), in FastAPI's threadpool.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from serving.auth import KeyRequired
from serving.cockpit.access import BookKeeperDep
from serving.cockpit.book import FILTER_VALUES, Entry, parse_filters, select_page
from serving.deps import RequestId
from serving.errors import ApiError
from serving.online import OnlineStoreUnavailable
from serving.routes.common import json_response
from serving.schemas import AccountsResponse, ScoredAccount
from serving.tables import TableUnreadable

router = APIRouter(tags=["accounts"], dependencies=[Depends(KeyRequired("scores:read"))])
MAX_PAGE_SIZE = 500


def _filter(name: str, what: str = "") -> Any:
    """A filter's query parameter, its values listed in the schema; `parse_filters` judges what is sent,
    so a wrong value is the book's own 422 naming the field."""
    allowed = FILTER_VALUES[name]
    described = f"{what}one of {', '.join(allowed)}; empty: any"
    return Query(description=described, json_schema_extra={"enum": ["", *allowed]})


@router.get(
    "/v1/accounts",
    summary="the scored book: active accounts by ARR at risk, filtered as the cockpit's book, paged",
    response_model=AccountsResponse,
)
def accounts(
    keeper: BookKeeperDep,
    request_id: RequestId,
    tier: Annotated[str, _filter("tier")] = "",
    band: Annotated[str, _filter("band", "the risk band: ")] = "",
    csm: Annotated[str, Query(max_length=200, description="the CSM's id; empty: any")] = "",
    renewal: Annotated[str, _filter("renewal", "renewing within these days: ")] = "",
    source: Annotated[str, _filter("source", "what scored it: ")] = "",
    page: Annotated[int, Query(ge=1)] = 1,
    page_size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 100,
) -> Response:
    query = {"tier": tier, "band": band, "csm": csm, "renewal": renewal, "source": source, "page": str(page)}
    filters, problems = parse_filters(query)
    if problems:
        fields = [{"field": f"query.{p.field}", "message": p.message} for p in problems]
        names = ", ".join(f["field"] for f in fields)
        raise ApiError(422, "invalid_request", f"invalid field(s): {names}", fields)
    try:
        book = keeper.get()
    except OnlineStoreUnavailable as e:
        raise ApiError(503, "feature_store_unavailable", str(e)) from e
    except TableUnreadable as e:
        raise ApiError(503, "table_unreadable", str(e)) from e
    rows, total, pages = select_page(book, filters, page_size)
    listed = [_scored(e) for e in rows] if page <= pages else []
    body = AccountsResponse(
        request_id=request_id,
        as_of=book.as_of,
        cutoff=book.cutoff,
        total=total,
        page=page,
        page_size=page_size,
        pages=pages,
        accounts=listed,
    )
    return json_response(body)


def _scored(e: Entry) -> ScoredAccount:
    named = {f.name: getattr(e, f.name) for f in dataclasses.fields(e) if f.name != "fallback"}
    derived = {"fallback_reason": e.fallback, "arr_at_risk": e.arr_at_risk}
    return ScoredAccount.model_validate(named | derived)
