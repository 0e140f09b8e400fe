"""The cockpit's pages (`/ui`): the book, an account, feedback, sign-in. Server-rendered with Jinja2, one
stylesheet served from the package, no script: every control is a link or a form, so the keyboard and a
screen reader get what the mouse gets.

Pages sit behind the API's keys: a bearer token as for the API, or a session opened by signing in with a
key. Viewing needs `scores:read`, the actions need `actions:read`, feedback needs `actions:write`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from importlib.resources import files
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from retain.core.catalogue import ACTIONS
from retain.core.contract import Tier
from retain.core.settings import Settings
from serving.auth import bearer, check_key
from serving.cockpit.book import (
    RENEWAL_WINDOWS,
    RISK_BANDS,
    BookKeeper,
    Filters,
    days_between,
    select,
    trends,
)
from serving.cockpit.charts import line_chart
from serving.cockpit.sessions import COOKIE, Session, Sessions
from serving.cockpit.timeline import action_label, recent
from serving.decision_log import DecisionLogUnavailable
from serving.keys import ApiKey
from serving.schemas import ActionsRequest, FeedbackIn
from serving.service import ApiError, Service

#: why an answer came from the rules, in a CSM's words
FALLBACK_WORDS = {
    "inactive_account": "the account is no longer active",
    "no_champion": "no churn model is promoted",
    "no_feature_row": "it has no feature row yet",
    "stale_features": "its features are too old",
    "out_of_range": "an input is outside what the model was trained on",
    "model_error": "the model failed on its inputs",
}
STATUSES = ("done", "accepted", "rejected")
ERRORS = {
    "reason_required": "Say why you rejected the action: the reason is required.",
    "bad_status": "Choose done, accepted or rejected.",
    "expired_form": "The form had expired; the page is fresh now, try again.",
}
TEMPLATES = Environment(
    loader=PackageLoader("serving.cockpit", "templates"),
    autoescape=select_autoescape(default=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
TEMPLATES.filters["action_label"] = action_label
TEMPLATES.filters["money"] = lambda v: "—" if v is None else f"${v:,.0f}"
TEMPLATES.filters["pct"] = lambda v, digits=0: "—" if v is None else f"{100 * v:.{digits}f}%"
TEMPLATES.filters["day"] = lambda v: "—" if v is None else f"{v:%Y-%m-%d}"
TEMPLATES.filters["words"] = lambda v: "—" if v is None else str(v).replace("_", " ")
STYLESHEET = files("serving.cockpit").joinpath("static/cockpit.css").read_bytes()


class SignIn(Exception):
    """No usable credentials: the browser goes to the sign-in page and comes back."""

    def __init__(self, back: str) -> None:
        self.back = back


@dataclass(frozen=True)
class Viewer:
    key: ApiKey
    session: Session | None

    @property
    def name(self) -> str:
        return self.key.name or self.key.key_id

    @property
    def csrf(self) -> str:
        return self.session.csrf if self.session else ""


def _back(request: Request) -> str:
    query = f"?{request.url.query}" if request.url.query else ""
    return f"{request.url.path}{query}"


def _safe_back(value: str) -> str:
    """Only back into the cockpit: `next` must not send a signed-in CSM to another site."""
    return value if value.startswith("/ui") and not value.startswith("//") else "/ui"


def _render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(TEMPLATES.get_template(name).render(**context), status_code=status)


def _filters(query: dict[str, str]) -> tuple[Filters, list[str]]:
    """The book's filters from the query string; a bad value is named and ignored."""
    problems = []

    def pick(name: str, allowed: tuple[str, ...]) -> str:
        value = query.get(name, "")
        if value and value not in allowed:
            problems.append(f"{name}: {value!r} is not one of {', '.join(allowed)}")
            return ""
        return value

    renewal = pick("renewal", tuple(str(d) for d in RENEWAL_WINDOWS))
    page = query.get("page", "1")
    if not page.isdigit() or int(page) < 1:
        problems.append(f"page: {page!r} is not a page number")
        page = "1"
    filters = Filters(
        tier=pick("tier", tuple(t.value for t in Tier)),
        band=pick("band", RISK_BANDS),
        csm=query.get("csm", "")[:200],
        renewal_days=int(renewal) if renewal else None,
        source=pick("source", ("model", "rules")),
        page=int(page),
    )
    return filters, problems


def install(app: FastAPI, settings: Settings) -> None:
    """Add the cockpit's routes to the app; `app.state.book` is set in the app's lifespan."""
    sessions = Sessions(settings.cockpit.session_hours)

    def viewer(request: Request, scope: str) -> Viewer:
        service: Service = request.app.state.service
        token = bearer(request)
        session = None
        if not token:
            session = sessions.get(request.cookies.get(COOKIE, ""))
            if session is None:
                raise SignIn(_back(request))
            token = session.key
        try:
            return Viewer(check_key(service, token, scope), session)
        except ApiError as e:
            if e.status == 401 and session is not None:
                raise SignIn(_back(request)) from e
            raise

    @app.exception_handler(SignIn)
    async def sign_in(request: Request, exc: SignIn) -> Response:
        return RedirectResponse(f"/ui/login?{urlencode({'next': exc.back})}", status_code=303)

    @app.get("/ui/static/cockpit.css", include_in_schema=False)
    async def stylesheet() -> Response:
        return Response(STYLESHEET, media_type="text/css", headers={"Cache-Control": "max-age=3600"})

    @app.get("/ui/login", include_in_schema=False)
    async def login_page(request: Request) -> HTMLResponse:
        back = _safe_back(request.query_params.get("next", "/ui"))
        return _render("login.html", back=back, error=None)

    @app.post("/ui/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        form = await _form(request)
        back = _safe_back(form.get("next", "/ui"))
        service: Service = request.app.state.service
        try:
            key = check_key(service, form.get("key", "").strip(), "scores:read")
        except ApiError as e:
            error = {
                401: "That key is not valid: check it, or ask for a new one.",
                403: "That key cannot read scores (it lacks scores:read).",
            }.get(e.status, e.message)
            return _render("login.html", status=e.status, back=back, error=error)
        token, _ = sessions.open(form["key"].strip(), key.name or key.key_id)
        response = RedirectResponse(back, status_code=303)
        response.set_cookie(
            COOKIE, token, httponly=True, samesite="strict", path="/ui", max_age=int(sessions.idle)
        )
        return response

    @app.post("/ui/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        sessions.close(request.cookies.get(COOKIE, ""))
        response = RedirectResponse("/ui/login", status_code=303)
        response.delete_cookie(COOKIE, path="/ui")
        return response

    @app.get("/ui", include_in_schema=False)
    async def book_page(request: Request) -> HTMLResponse:
        who = viewer(request, "scores:read")
        keeper: BookKeeper = request.app.state.book
        book = await run_in_threadpool(keeper.get)
        filters, problems = _filters(dict(request.query_params))
        rows, matching, pages = select(book, filters, settings.cockpit.page_size)
        query = {k: v for k, v in request.query_params.items() if k != "page" and v}
        return _render(
            "book.html",
            status=422 if problems else 200,
            viewer=who,
            book=book,
            rows=rows,
            matching=matching,
            pages=pages,
            page=min(filters.page, pages),
            filters=filters,
            problems=problems,
            query=query,
            urlencode=urlencode,
            tiers=[t.value for t in Tier],
            bands=RISK_BANDS,
            csms=sorted({e.csm_id for e in book.entries if e.csm_id}),
            windows=RENEWAL_WINDOWS,
            fallback_words=FALLBACK_WORDS,
        )

    @app.get("/ui/accounts/{account_id}", include_in_schema=False)
    async def account_page(request: Request, account_id: str) -> HTMLResponse:
        who = viewer(request, "scores:read")
        service: Service = request.app.state.service
        try:
            context = await run_in_threadpool(
                _account,
                service,
                request.app.state.book,
                account_id,
                who,
                request.scope["state"]["request_id"],
            )
        except ApiError as e:
            return _render("error.html", status=e.status, viewer=who, title="Not found", message=e.message)
        done, error = request.query_params.get("recorded", ""), request.query_params.get("error", "")
        status, _, action = done.partition(":")
        flash = (
            f"Recorded: {action_label(action)} marked {status}."
            if status in STATUSES and action in ACTIONS
            else None
        )
        return _render(
            "account.html",
            status=422 if error in ERRORS else 200,
            viewer=who,
            flash=flash,
            error=ERRORS.get(error),
            fallback_words=FALLBACK_WORDS,
            **context,
        )

    @app.post("/ui/accounts/{account_id}/feedback", include_in_schema=False)
    async def feedback(request: Request, account_id: str) -> Response:
        who = viewer(request, "actions:write")
        form = await _form(request)
        page = f"/ui/accounts/{account_id}"
        if who.session is not None and not who.session.echoed(form.get("csrf", "")):
            return RedirectResponse(f"{page}?error=expired_form", status_code=303)
        status = form.get("status", "")
        if status not in STATUSES:
            return RedirectResponse(f"{page}?error=bad_status", status_code=303)
        reason = form.get("reason", "").strip() or None
        if status == "rejected" and reason is None:
            return RedirectResponse(f"{page}?error=reason_required", status_code=303)
        service: Service = request.app.state.service
        rid = request.scope["state"]["request_id"]
        recommendation = form.get("recommendation_id", "")
        body = FeedbackIn(status=status, reason=reason, actor=who.name)
        try:
            await run_in_threadpool(service.feedback, recommendation, body, rid)
        except ApiError as e:
            return _render("error.html", status=e.status, viewer=who, title="Not recorded", message=e.message)
        action = form.get("action", "")
        return RedirectResponse(f"{page}?{urlencode({'recorded': f'{status}:{action}'})}", status_code=303)


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded form's fields (the first value of each); the body is small, capped by the app."""
    fields = parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
    return {name: values[0] for name, values in fields.items()}


def _account(
    service: Service, keeper: BookKeeper, account_id: str, who: Viewer, request_id: str
) -> dict[str, Any]:
    """Everything the account page shows, from one assessment, the trend (the book's, or for an account
    the book leaves out, its own last month ends), the store's events and the decision log."""
    risk, actions = service.account(account_id, request_id, ActionsRequest(limit=5, include_ineligible=True))
    book = keeper.get()
    account = service.res.loaded.accounts.get(account_id, {})
    entry = book.entry(account_id)
    renewal = entry.renewal_date if entry else account.get("renewal_date")
    settings = service.res.settings
    points = book.trends.get(account_id)
    if points is None:
        points = trends(
            service.res.store.feature_table,
            service.res.loaded,
            {account_id},
            service.res.as_of(),
            settings.cockpit.trend_cutoffs,
        ).get(account_id, ())
    charts = [
        line_chart(
            "trend-churn",
            "Churn probability at recent month ends",
            [(p.cutoff, p.churn_probability) for p in points],
            low=0.0,
            high=max([0.5, *(p.churn_probability or 0.0 for p in points)]),
            label="{:.0%}",
        ),
        line_chart(
            "trend-health",
            "Health score at recent month ends",
            [(p.cutoff, p.health_score) for p in points],
            low=0.0,
            high=100.0,
            label="{:.0f}",
        ),
    ]
    timeline = recent(service.res.store, book.stories, account_id, service.res.as_of(), limit=40)
    try:
        recorded, log_note = service.res.log.feedback(account_id, limit=10), None
    except DecisionLogUnavailable as e:
        recorded, log_note = [], f"The decision log cannot be read: {e}"
    return {
        "account_id": account_id,
        "account": account,
        "risk": risk,
        "actions": actions,
        "points": points,
        "charts": [c for c in charts if c],
        "churn_trend": bool(charts[0]),
        "timeline": timeline,
        "timeline_days": settings.cockpit.timeline_days,
        "recorded": recorded,
        "log_note": log_note,
        "can_see_actions": who.key.allows("actions:read"),
        "can_act": who.key.allows("actions:write"),
        "renewal": renewal,
        "renewal_in": days_between(renewal, service.res.as_of()),
        "left": actions is None,
    }


def warm(keeper: BookKeeper) -> threading.Thread:
    """Score the book in the background as the server starts, so the first page does not wait."""
    thread = threading.Thread(target=keeper.refresh, name="retain-book-warm", daemon=True)
    thread.start()
    return thread
