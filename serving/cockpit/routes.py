"""The cockpit's pages, mounted at `/ui`: the book, an account, feedback, sign-in. Server-rendered, no
script: every control is a link or a form, so the keyboard and a screen reader get what the mouse gets.

Pages sit behind the API's keys (`serving/cockpit/access.py`); they are left out of the OpenAPI document.
Every form carries a token (the sign-in form its own, the others the session's) and every post must come
from the cockpit's own pages (`posted_here`).
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from core.catalogue import ACTIONS
from core.contract import Tier
from serving.auth import check_key
from serving.autopilot_log import AutopilotLog
from serving.caller import Caller
from serving.cockpit.access import Actor, BookKeeperDep, Reader, SessionsDep, cockpit_page, posted_here
from serving.cockpit.book import (
    RENEWAL_WINDOWS,
    RISK_BANDS,
    UNSCORABLE,
    filtered,
    parse_filters,
    select_page,
)
from serving.cockpit.export import book_csv, csv_filename
from serving.cockpit.pages import (
    FALLBACK_WORDS,
    FORM_ERRORS,
    STATUSES,
    STYLESHEET,
    build_account_page,
    render,
)
from serving.cockpit.sessions import COOKIE, LOGIN_COOKIE, SessionsUnavailable, new_token, same_token
from serving.cockpit.timeline import action_label
from serving.deps import RequestId, ServiceDep
from serving.errors import ApiError
from serving.schemas import FeedbackIn
from serving.service import Service
from store.decision_log import DecisionLogUnavailable

router = APIRouter(prefix="/ui", include_in_schema=False, dependencies=[Depends(posted_here)])
#: what a failed sign-in says, by the status of the key check
SIGN_IN_ERRORS = {
    401: "That key is not valid: check it, or ask for a new one.",
    403: "That key cannot read scores (it lacks scores:read).",
}
#: what a sign-in without its form's token says (an old page, or a post from another site)
SIGN_IN_EXPIRED = "This sign-in form had expired or came from another page: reload the page, then sign in."
#: what the account page confirms after a CSM stopped the autopilot there, or let it act again
AUTOPILOT_FLASH = {
    "stopped": "Recorded: the autopilot is stopped for this account.",
    "resumed": "Recorded: the autopilot may act on this account again.",
}
#: what a sign-out without the session's token says
SIGN_OUT_EXPIRED = "The sign-out form had expired or came from another page: reload the page, then sign out."


@router.get("/static/cockpit.css")
async def stylesheet() -> Response:
    return Response(STYLESHEET, media_type="text/css", headers={"Cache-Control": "max-age=3600"})


@router.get("/login")
async def login_page(request: Request, service: ServiceDep) -> HTMLResponse:
    back = cockpit_page(request.query_params.get("next", "/ui"))
    return _sign_in_form(service, back)


@router.post("/login")
async def login(request: Request, service: ServiceDep, sessions: SessionsDep) -> Response:
    """Check the form's token, then the key, then open a session: the browser keeps only its cookie, the
    session only the key's id. Without the token nothing is opened (another site cannot sign a browser in)."""
    form = await _form(request)
    back = cockpit_page(form.get("next", "/ui"))
    if not same_token(request.cookies.get(LOGIN_COOKIE, ""), form.get("csrf", "")):
        return _sign_in_form(service, back, SIGN_IN_EXPIRED, status=403)
    try:
        key = check_key(service, form.get("key", "").strip(), "scores:read")
    except ApiError as e:
        return _sign_in_form(service, back, SIGN_IN_ERRORS.get(e.status, e.message), e.status)
    token, _ = await sessions.open(key.key_id, key.name or key.key_id)
    response = RedirectResponse(back, status_code=303)
    _set_cookie(response, service, COOKIE, token, max_age=int(sessions.idle))
    response.delete_cookie(LOGIN_COOKIE, path="/ui")
    return response


@router.post("/logout")
async def logout(request: Request, sessions: SessionsDep) -> Response:
    """Only with the session's own token, so another site cannot sign a CSM out; without a live session
    there is nothing to close."""
    form = await _form(request)
    token = request.cookies.get(COOKIE, "")
    session = await sessions.get(token)
    if session is not None and not session.echoed(form.get("csrf", "")):
        return render("error.html", status=403, viewer=None, title="Not signed out", message=SIGN_OUT_EXPIRED)
    await sessions.close(token)
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(COOKIE, path="/ui")
    return response


async def sessions_down_page(request: Request, exc: SessionsUnavailable) -> Response:
    """The app's handler for `SessionsUnavailable`: a 503 page that says why, not a 500."""
    message = f"Sign-ins cannot be checked: the session store is unreachable ({exc}). Try again shortly."
    return render("error.html", status=503, viewer=None, title="Cockpit unavailable", message=message)


def _sign_in_form(service: Service, back: str, error: str | None = None, status: int = 200) -> HTMLResponse:
    """The sign-in page with a fresh token, in its hidden field and in a cookie that only this site's
    pages send back (SameSite=Strict): a form posted from another site cannot carry both."""
    token = new_token()
    response = render("login.html", status=status, back=back, error=error, csrf=token)
    _set_cookie(response, service, LOGIN_COOKIE, token, max_age=None)
    return response


def _set_cookie(response: Response, service: Service, name: str, value: str, max_age: int | None) -> None:
    """A cockpit cookie: HttpOnly, SameSite=Strict, only for `/ui`, and Secure when `cookie_secure`."""
    secure = service.resources.settings.cockpit.cookie_secure
    response.set_cookie(
        name, value, max_age=max_age, path="/ui", secure=secure, httponly=True, samesite="strict"
    )


@router.get("")
async def book_page(
    request: Request, who: Reader, service: ServiceDep, keeper: BookKeeperDep
) -> HTMLResponse:
    """The book, filtered and paged; a filter it does not understand is named (422) and ignored."""
    try:
        book = await run_in_threadpool(keeper.get)
    except UNSCORABLE as e:
        return render("error.html", status=503, viewer=who, title="Book unavailable", message=str(e))
    filters, problems = parse_filters(dict(request.query_params))
    rows, matching, pages = select_page(book, filters, service.resources.settings.cockpit.page_size)
    query = {k: v for k, v in request.query_params.items() if k != "page" and v}
    return render(
        "book.html",
        status=422 if problems else 200,
        viewer=who,
        book=book,
        stale=keeper.stale,
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


@router.get("/book.csv")
async def book_export(request: Request, who: Reader, keeper: BookKeeperDep) -> Response:
    """The filtered book as a CSV download: every matching account, not one page. A filter it does not
    understand is named (422), not ignored as on the page: a download would hold more than was asked."""
    try:
        book = await run_in_threadpool(keeper.get)
    except UNSCORABLE as e:
        return render("error.html", status=503, viewer=who, title="Book unavailable", message=str(e))
    filters, problems = parse_filters(dict(request.query_params))
    if problems:
        message = "Not exported: " + "; ".join(map(str, problems))
        return render("error.html", status=422, viewer=who, title="Filters not understood", message=message)
    disposition = f'attachment; filename="{csv_filename(book.as_of, filters)}"'
    return Response(
        book_csv(filtered(book, filters)),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": disposition},
    )


@router.get("/accounts/{account_id}")
async def account_page(
    request: Request,
    account_id: str,
    who: Reader,
    service: ServiceDep,
    keeper: BookKeeperDep,
    request_id: RequestId,
) -> HTMLResponse:
    """One account: its risk and why, health, trend, actions with feedback forms, decisions, timeline.
    `?recorded=status:action` confirms feedback just given; `?error=` says why it was sent back."""
    try:
        page = await run_in_threadpool(build_account_page, service, keeper, account_id, who, request_id)
    except ApiError as e:
        return render("error.html", status=e.status, viewer=who, title="Not found", message=e.message)
    except UNSCORABLE as e:  # no book has been scored yet, or a table the page reads cannot be read
        return render("error.html", status=503, viewer=who, title="Account unavailable", message=str(e))
    done, error = request.query_params.get("recorded", ""), request.query_params.get("error", "")
    status, _, action = done.partition(":")
    flash = (
        f"Recorded: {action_label(action)} marked {status}."
        if status in STATUSES and action in ACTIONS
        else AUTOPILOT_FLASH.get(request.query_params.get("autopilot", ""))
    )
    return render(
        "account.html",
        status=422 if error in FORM_ERRORS else 200,
        viewer=who,
        flash=flash,
        error=FORM_ERRORS.get(error),
        fallback_words=FALLBACK_WORDS,
        **page.context(),
    )


@router.post("/accounts/{account_id}/feedback")
async def feedback(
    request: Request, account_id: str, who: Actor, service: ServiceDep, request_id: RequestId
) -> Response:
    """Feedback on an action from its form, then back to the account page (Post/Redirect/Get); a form
    without the session's token is refused, so another site cannot post in a CSM's name."""
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
    recommendation = form.get("recommendation_id", "")
    body = FeedbackIn(status=status, reason=reason, actor=who.name)
    try:
        await run_in_threadpool(_check_account, service, recommendation, account_id)
        await run_in_threadpool(service.feedback, recommendation, body, Caller(request_id, who.key.key_id))
    except ApiError as e:
        return render("error.html", status=e.status, viewer=who, title="Not recorded", message=e.message)
    action = form.get("action", "")
    return RedirectResponse(f"{page}?{urlencode({'recorded': f'{status}:{action}'})}", status_code=303)


def _check_account(service: Service, recommendation_id: str, account_id: str) -> None:
    """Feedback posted from one account's page is on that account's recommendations: another account's
    (a stale or hand-made form) is refused as unknown here. While the decision log cannot say, the
    service queues it unchecked, as it does for the API."""
    try:
        found = service.resources.log.recommendation(recommendation_id)
    except DecisionLogUnavailable:
        return
    if found is not None and found.account_id != account_id:
        raise ApiError(
            404,
            "recommendation_not_found",
            f"recommendation {recommendation_id!r} is not one of {account_id}'s: give feedback on its page",
        )


@router.post("/accounts/{account_id}/autopilot")
async def autopilot_stop(request: Request, account_id: str, who: Actor, service: ServiceDep) -> Response:
    """Stop the autopilot for the account (`stopped=true`) or let it act there again, in the CSM's name;
    the stop holds from now, even for a run under way. Back to the account page."""
    form = await _form(request)
    page = f"/ui/accounts/{account_id}"
    if who.session is not None and not who.session.echoed(form.get("csrf", "")):
        return RedirectResponse(f"{page}?error=expired_form", status_code=303)
    stopped = form.get("stopped") == "true"
    pilot = AutopilotLog(service.resources.log)
    await run_in_threadpool(pilot.set_stop, account_id, stopped, who.name, who.key.key_id)
    return RedirectResponse(f"{page}?{urlencode({'autopilot': 'stopped' if stopped else 'resumed'})}", 303)


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded form's fields (the first value of each); the body is small, capped by the app."""
    fields = parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
    return {name: values[0] for name, values in fields.items()}
