"""The CSM cockpit end to end: Debian's Chromium, driven by Playwright, against a real `retain serve` on a
store built by the real pipeline (the session's `served_world`, which the API tests share: what another
module recorded in its decision log is left out of what these tests count). Every page visited is saved
as a screenshot under `test-artifacts/`."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Browser, Page, expect, sync_playwright

from core.contract import INTERVENTION_SCHEMA
from features.stored import read_features
from products.upkeep.run import merge_taken
from serving.cockpit.headers import CONTENT_SECURITY_POLICY
from serving.cockpit.sessions import COOKIE, LOGIN_COOKIE
from serving.keys import KeyFile
from store.decision_log import DecisionLog
from tests.support.served import Server, World
from tests.support.services import unavailable

CHROMIUM = Path(os.environ.get("RETAIN_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(os.environ.get("RETAIN_ARTIFACTS", "test-artifacts")) / "cockpit"
#: the flags a headless Chromium needs on a machine without a network beyond loopback
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CSM = "csm key"


@pytest.fixture(scope="module")
def world(served_world: World) -> World:
    """The shared world, with this module's own keys (a CSM's and a viewer's) added to its key file."""
    ring = KeyFile.for_store(served_world.store)
    keys = {
        CSM: ring.create(["scores:read", "actions:read", "actions:write"], name="csm-007")[1],
        "viewer": ring.create(["scores:read"], name="viewer")[1],
    }
    return dataclasses.replace(served_world, keys={**served_world.keys, **keys})


@pytest.fixture(scope="module")
def server(world: World) -> Iterator[Server]:
    running = Server(world, world.root / "cockpit.log", world.latest)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        unavailable(f"no Chromium at {CHROMIUM}: `make browser` installs Debian's")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, server: Server) -> Iterator[Page]:
    """A fresh browser context, with every request it makes recorded (`page.requested`); a page that
    breaks its Content-Security-Policy (the browser says so on its console) fails the test."""
    context = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    requested: list[str] = []
    refused: list[str] = []
    opened.on("request", lambda r: requested.append(r.url))
    opened.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    opened.requested = requested  # type: ignore[attr-defined]
    yield opened
    context.close()
    assert refused == [], "the policy blocks something a page uses"


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def intervention_ids(world: World) -> set[str]:
    """The ids in the store's interventions table (the Delta table, not the decision log)."""
    rows = world.store.read("interventions", INTERVENTION_SCHEMA, ["intervention_id"])
    return set(rows.column("intervention_id").to_pylist())


def sign_in(page: Page, world: World, key: str = CSM, screenshot: str | None = None) -> None:
    page.goto("/ui")
    expect(page).to_have_url(re.compile(r"/ui/login\?next="))
    if screenshot:
        shot(page, screenshot)
    page.get_by_label("API key").fill(world.keys[key])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Book of accounts")).to_be_visible()


def sign_in_token(session: requests.Session, server: Server) -> str:
    """Show the sign-in page, as a browser would: its cookie goes into `session`, its form's token back."""
    page = session.get(f"{server.url}/ui/login", timeout=30)
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]


def post_sign_in(session: requests.Session, server: Server, key: str, **fields: str) -> requests.Response:
    """Sign in through the form: the page first, then the key with the page's token."""
    token = sign_in_token(session, server)
    return session.post(f"{server.url}/ui/login", data={"csrf": token, "key": key, **fields}, timeout=30)


def money(text: str) -> float:
    return float(text.replace("$", "").replace(",", ""))


def book_rows(page: Page) -> list[dict[str, str]]:
    headers = [h.strip() for h in page.locator("table.book thead th").all_inner_texts()]
    return [
        dict(zip(headers, [c.strip() for c in row.locator("th, td").all_inner_texts()], strict=True))
        for row in page.locator("table.book tbody tr").all()
    ]


def test_the_book_is_sorted_by_arr_at_risk_and_matches_the_api(
    page: Page, server: Server, world: World
) -> None:
    sign_in(page, world, screenshot="login")
    expect(page.get_by_role("heading", name="Book of accounts")).to_be_visible()
    rows = book_rows(page)
    assert len(rows) == 50, "a page of the book holds cockpit.page_size accounts"
    at_risk = [money(r["ARR at risk"]) for r in rows if r["Scored by"] == "model"]
    assert len(at_risk) > 40 and at_risk == sorted(at_risk, reverse=True)
    first = rows[0]
    account_id = first["Account"].split("\n")[-1].strip()
    api = server.call("GET", f"/v1/accounts/{account_id}/risk").json()
    assert first["Churn risk"] == f"{100 * api['churn_probability']:.1f}%"
    total = int(re.search(r"(\d+) active accounts", page.locator(".lede").inner_text()).group(1))  # type: ignore[union-attr]
    assert total == len(world.active)
    assert all(url.startswith(server.url) for url in page.requested), "no CDN or other host"  # type: ignore[attr-defined]
    shot(page, "book")


def test_filters_narrow_the_book(page: Page, world: World) -> None:
    sign_in(page, world)
    everyone = int(page.locator("#book-count").inner_text().split()[0])
    page.get_by_label("Tier").select_option("enterprise")
    page.get_by_label("Renewal").select_option("180")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"tier=enterprise"))
    rows = book_rows(page)
    matching = int(page.locator("#book-count").inner_text().split()[0])
    assert 0 < matching < everyone and len(rows) == min(matching, 50)
    assert {r["Tier"] for r in rows} == {"enterprise"}
    assert all(int(re.search(r"in (\d+) d", r["Renewal"]).group(1)) <= 180 for r in rows)  # type: ignore[union-attr]
    csm = page.locator("#f-csm option").nth(1).get_attribute("value")
    page.get_by_label("CSM").select_option(csm)
    page.get_by_label("Risk band").select_option("")
    page.get_by_role("button", name="Filter").click()
    assert {r["CSM"] for r in book_rows(page)} == {csm}
    shot(page, "book-filtered")


def test_a_bad_filter_is_named_and_ignored(page: Page, world: World) -> None:
    sign_in(page, world)
    response = page.goto("/ui?band=purple")
    assert response is not None and response.status == 422
    expect(page.get_by_role("alert")).to_contain_text("band: 'purple'")
    assert len(book_rows(page)) == 50
    response = page.goto("/ui/accounts/acc-none")
    assert response is not None and response.status == 404
    expect(page.get_by_role("alert")).to_contain_text("no account 'acc-none'")
    shot(page, "not-found")


def test_an_account_that_has_left_shows_its_last_risk_its_own_trend_and_no_action(
    page: Page, world: World
) -> None:
    keys = read_features(world.store, columns=["account_id", "cutoff"]).to_pandas()
    months = (
        keys[keys["account_id"].isin(world.departed)].groupby("account_id")["cutoff"].agg(["count", "max"])
    )
    gone = months.index[months["count"] >= 2][0]
    sign_in(page, world)
    response = page.goto(f"/ui/accounts/{gone}")
    assert response is not None and response.status == 200
    assert page.locator("svg.chart[role=img]").count() == 2, "its month ends before it left, not the newest"
    expect(page.locator("#trend-churn-desc")).to_contain_text(f"{months.loc[gone, 'max']:%b %Y}: ")
    expect(page.locator("#trend-h")).to_have_text("Trend over its last month ends before it left")
    expect(page.locator("#trend-note")).to_contain_text("while the account was active")
    expect(page.locator(".lede")).to_contain_text("no longer active")
    expect(page.locator(".lede")).not_to_contain_text("days)")
    expect(page.locator("#fallback")).to_contain_text("because the account is no longer active")
    expect(page.locator("#ranking-note")).to_contain_text("None: the account is no longer active")
    assert page.locator("ol.actions").count() == 0
    shot(page, "account-inactive")


def open_account_with_actions(page: Page) -> None:
    """The first account of the book with an action eligible now: on the shared world, other modules'
    actions put some accounts' every play in cool-down."""
    links = page.locator("table.book tbody th a")
    for i in range(min(20, links.count())):
        links.nth(i).click()
        expect(page.get_by_role("heading", name=re.compile("Risk over the next 90 days"))).to_be_visible()
        if page.locator("li.action").count():
            return
        page.go_back()
    raise AssertionError("none of the book's first 20 accounts has an action eligible now")


def test_an_account_page_explains_the_risk_and_records_feedback_in_the_decision_log(
    page: Page, server: Server, world: World
) -> None:
    log = DecisionLog.for_store(world.store, world.settings)
    waiting = {t.intervention_id for t in log.taken(pending_only=True)}  # other modules' on the shared world
    sign_in(page, world)
    open_account_with_actions(page)
    account_id = page.url.rsplit("/", 1)[-1]
    given = {f.feedback_id for f in log.feedback(account_id)}  # by other modules, on the shared world
    assert page.locator(".figures dd").first.inner_text().endswith(("low", "medium", "high", "critical"))
    assert page.locator("ol.reasons li").count() >= 1
    assert page.locator("table.components tbody tr").count() == 4
    assert page.locator("svg.chart[role=img]").count() == 2
    assert page.locator("#trend-note").count() == 0, "an active account's trend needs no word on leaving"
    assert page.locator("ol.timeline li").count() >= 1
    shot(page, "account")

    first = page.locator("li.action").first
    action = first.get_attribute("id").removeprefix("action-")  # type: ignore[union-attr]
    first.get_by_role("button", name="Reject").click()
    expect(page.get_by_role("alert")).to_contain_text("the reason is required")

    first = page.locator("li.action").first
    rejected = first.get_attribute("id").removeprefix("action-")  # type: ignore[union-attr]
    first.get_by_label("Reason to reject").fill("customer is on holiday")
    first.get_by_role("button", name="Reject").click()
    expect(page.get_by_role("status")).to_contain_text("marked rejected")

    page.locator(f"#action-{action}").get_by_role("button", name="Done").click()
    expect(page.get_by_role("status")).to_contain_text("marked done")
    expect(page.locator("#recorded")).to_contain_text("done")
    expect(page.locator("#recorded")).to_contain_text("customer is on holiday")
    assert page.locator(f"#action-{action}").count() == 0, "a done action cools down"
    shot(page, "account-feedback")

    recorded = {(f.action, f.status): f for f in log.feedback(account_id) if f.feedback_id not in given}
    assert recorded[(rejected, "rejected")].reason == "customer is on holiday"
    done = recorded[(action, "done")]
    assert done.actor == "csm-007" and done.intervention_id
    pending = {t.intervention_id: t.action for t in log.taken(pending_only=True)}
    new = {i: a for i, a in pending.items() if i not in waiting}
    assert new == {done.intervention_id: action}, "the action waits in the decision log..."
    assert done.intervention_id not in intervention_ids(world)

    merged = merge_taken(world.store, world.settings)
    assert (merged.pending, merged.added) == (len(pending), len(pending))
    assert merged.version == world.store.version("interventions")
    assert done.intervention_id in intervention_ids(world), "...until the store's upkeep merges it in"
    assert not log.taken(pending_only=True)


def test_the_pages_work_from_the_keyboard_alone(page: Page, world: World) -> None:
    sign_in(page, world)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("!!document.activeElement.closest('table.book')"):
            break
    else:
        pytest.fail("no account link is reachable with Tab")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Next best actions")).to_be_visible()


@pytest.mark.parametrize("path", ["/ui", "first-account"])
def test_controls_are_labelled_and_text_has_aa_contrast(page: Page, world: World, path: str) -> None:
    sign_in(page, world)
    if path == "first-account":
        page.locator("table.book tbody th a").first.click()
        expect(page.get_by_role("heading", name="Next best actions")).to_be_visible()
    assert page.evaluate("document.documentElement.lang") == "en"
    unlabelled = page.evaluate(
        """[...document.querySelectorAll('input:not([type=hidden]), select, meter')]
             .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
             .map(e => e.outerHTML)"""
    )
    assert unlabelled == []
    lowest = page.evaluate(CONTRAST)
    assert lowest["ratio"] >= 4.5, lowest


CONTRAST = """
(() => {
  const rgb = s => s.match(/[\\d.]+/g).map(Number);
  const lum = ([r, g, b]) => {
    const f = c => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = e => {
    for (; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length < 4 || c[3] > 0) return c;
    }
    return [255, 255, 255];
  };
  let lowest = {ratio: 21, text: ''};
  for (const e of document.querySelectorAll('body *')) {
    const own = [...e.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    if (!own || !e.getClientRects().length || e.closest('.visually-hidden')) continue;
    const [a, b] = [lum(rgb(getComputedStyle(e).color)), lum(background(e))];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < lowest.ratio) lowest = {ratio, text: e.textContent.trim().slice(0, 60)};
  }
  return lowest;
})()
"""


def test_answers_from_the_rules_fallback_say_so_and_why(browser: Browser, world: World) -> None:
    stale = Server(world, world.root / "stale.log", world.latest + timedelta(days=60))
    try:
        context = browser.new_context(base_url=stale.url)
        page = context.new_page()
        sign_in(page, world)
        banner = page.get_by_role("note")
        expect(banner).to_contain_text("scored by the rules-based health formula")
        expect(banner).to_contain_text("its features are too old")
        assert {r["Scored by"] for r in book_rows(page)} == {"rules: its features are too old"}
        page.locator("table.book tbody th a").first.click()
        expect(page.locator("#fallback")).to_contain_text("days old (limit 14)")
        expect(page.locator("#ranking-note")).to_contain_text("Ranked by the rules")
        shot(page, "account-rules")
        context.close()
    finally:
        stale.stop()


def test_pages_need_a_key_and_forms_need_the_session_token(server: Server, world: World) -> None:
    ui = f"{server.url}/ui"
    assert requests.get(ui, allow_redirects=False, timeout=30).headers["location"].startswith("/ui/login")
    bad = post_sign_in(requests.Session(), server, "rk_nope", next="/ui")
    assert bad.status_code == 401 and "not valid" in bad.text
    scoped = post_sign_in(requests.Session(), server, world.keys["actions:read"])
    assert scoped.status_code == 403 and "scores:read" in scoped.text
    bearer = {"Authorization": f"Bearer {world.keys['scores:read']}"}
    assert requests.get(ui, headers=bearer, timeout=30).status_code == 200

    session = requests.Session()
    signed = post_sign_in(session, server, world.keys[CSM], next="https://evil.example/")
    assert signed.url == ui, "next only leads back into the cockpit"
    account = world.active[0]
    page = session.get(f"{ui}/accounts/{account}", timeout=30).text
    recommendation = re.search(r'name="recommendation_id" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    forged = session.post(
        f"{ui}/accounts/{account}/feedback",
        data={"recommendation_id": recommendation, "status": "accepted", "csrf": "guessed"},
        timeout=30,
    )
    assert "error=expired_form" in forged.url
    log = DecisionLog.for_store(world.store, world.settings)
    assert all(f.recommendation_id != recommendation for f in log.feedback(account))

    viewer = requests.Session()
    post_sign_in(viewer, server, world.keys["viewer"])
    assert "Next best actions" not in viewer.get(f"{ui}/accounts/{account}", timeout=30).text
    assert session.get(f"{ui}/accounts/nope", timeout=30).status_code == 404


def test_every_cockpit_answer_carries_the_security_headers(server: Server, world: World) -> None:
    ui = f"{server.url}/ui"
    browser = requests.Session()
    answers = {
        "redirect to sign in": browser.get(ui, allow_redirects=False, timeout=30),
        "sign-in page": browser.get(f"{ui}/login", timeout=30),
        "refused sign-in": browser.post(f"{ui}/login", data={"key": "rk_nope"}, timeout=30),
        "no such page": browser.get(f"{ui}/nope", timeout=30),
    }
    post_sign_in(browser, server, world.keys[CSM])
    answers["book"] = browser.get(ui, timeout=30)
    answers["no such account"] = browser.get(f"{ui}/accounts/nope", timeout=30)
    for name, answer in answers.items():
        sent = answer.headers
        assert sent.get("content-security-policy") == CONTENT_SECURITY_POLICY, name
        assert (sent["x-frame-options"], sent["x-content-type-options"]) == ("DENY", "nosniff"), name
        assert (sent["referrer-policy"], sent["cache-control"]) == ("same-origin", "no-store"), name
    sheet = requests.get(f"{ui}/static/cockpit.css", timeout=30).headers
    assert (sheet["cache-control"], sheet["x-content-type-options"]) == ("max-age=3600", "nosniff")
    api = requests.get(f"{server.url}/healthz", timeout=30).headers  # the API's own, not the cockpit's
    assert api["content-security-policy"] == "frame-ancestors 'none'"


def test_a_sign_in_needs_the_token_of_this_browsers_form(server: Server, world: World) -> None:
    """Login CSRF: another site's form can carry a key, but not the token of the sign-in page this browser
    was shown; it is refused (403, saying to reload) and opens no session."""
    login, key = f"{server.url}/ui/login", world.keys[CSM]
    browser = requests.Session()
    forged = browser.post(login, data={"key": key}, timeout=30)
    assert forged.status_code == 403 and "reload the page" in forged.text and COOKIE not in browser.cookies
    browser.get(login, timeout=30)
    theirs = sign_in_token(requests.Session(), server)
    forged = browser.post(login, data={"key": key, "csrf": theirs}, timeout=30)
    assert forged.status_code == 403 and COOKIE not in browser.cookies
    assert browser.get(f"{server.url}/ui", allow_redirects=False, timeout=30).status_code == 303

    mine = {"key": key, "csrf": sign_in_token(browser, server)}
    crossed = browser.post(login, data=mine, headers={"Origin": "https://evil.example"}, timeout=30)
    assert crossed.status_code == 403 and crossed.json()["error"]["code"] == "cross_site_post"
    assert COOKIE not in browser.cookies
    signed = browser.post(login, data=mine, headers={"Origin": server.url}, allow_redirects=False, timeout=30)
    assert signed.status_code == 303 and COOKIE in browser.cookies and LOGIN_COOKIE not in browser.cookies
    again = browser.post(login, data=mine, timeout=30)
    assert again.status_code == 403, "a sign-in form's token is spent once it signs in"


def test_a_cross_site_form_cannot_sign_a_browser_in(page: Page, server: Server, world: World) -> None:
    """A real browser on another site's page, posting the attacker's key to the cockpit."""
    trap = f"""<!doctype html><title>Prize</title><form method="post" action="{server.url}/ui/login">
        <input type="hidden" name="key" value="{world.keys[CSM]}">
        <button type="submit">Claim your prize</button></form>"""
    page.route("http://evil.test/**", lambda route: route.fulfill(body=trap, content_type="text/html"))
    page.goto("http://evil.test/prize")
    with page.expect_navigation() as posted:
        page.get_by_role("button", name="Claim your prize").click()
    assert posted.value is not None and posted.value.status == 403
    page.goto("/ui")
    expect(page).to_have_url(re.compile(r"/ui/login\?next="))


def test_signing_out_needs_the_sessions_token(server: Server, world: World) -> None:
    ui = f"{server.url}/ui"
    browser = requests.Session()
    post_sign_in(browser, server, world.keys[CSM])
    held = str(browser.cookies[COOKIE])
    forged = browser.post(f"{ui}/logout", data={"csrf": "guessed"}, timeout=30)
    assert forged.status_code == 403 and "reload the page" in forged.text
    book = browser.get(ui, allow_redirects=False, timeout=30)
    assert book.status_code == 200, "a forged sign-out leaves the CSM signed in"
    form = re.search(r'action="/ui/logout".*?name="csrf" value="([^"]+)"', book.text, re.DOTALL)
    assert form is not None, "the sign-out form echoes the session's token"
    out = browser.post(f"{ui}/logout", data={"csrf": form.group(1)}, allow_redirects=False, timeout=30)
    assert out.status_code == 303 and out.headers["location"] == "/ui/login"
    replayed = requests.get(ui, cookies={COOKIE: held}, allow_redirects=False, timeout=30)
    assert replayed.status_code == 303, "the session is closed on the server, not only in the browser"


def test_signing_out_from_the_page_ends_the_session(page: Page, world: World) -> None:
    sign_in(page, world)
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.goto("/ui")
    expect(page).to_have_url(re.compile(r"/ui/login\?next="))


def test_cookies_are_secure_behind_tls(server: Server, world: World) -> None:
    """`RETAIN_COCKPIT__COOKIE_SECURE`: a browser then sends the cockpit's cookies over HTTPS only."""
    assert "secure" not in requests.get(f"{server.url}/ui/login", timeout=30).headers["set-cookie"].lower()
    tls = Server(world, world.root / "tls.log", world.latest, RETAIN_COCKPIT__COOKIE_SECURE="true")
    try:
        shown = requests.get(f"{tls.url}/ui/login", timeout=30)
        assert shown.cookies[LOGIN_COOKIE] and "; secure" in shown.headers["set-cookie"].lower()
        token = re.search(r'name="csrf" value="([^"]+)"', shown.text).group(1)  # type: ignore[union-attr]
        signed = requests.post(  # the cookie sent by hand: requests keeps a Secure cookie off plain HTTP
            f"{tls.url}/ui/login",
            data={"key": world.keys[CSM], "csrf": token},
            cookies={LOGIN_COOKIE: token},
            allow_redirects=False,
            timeout=30,
        )
        assert signed.status_code == 303
        session = [c for c in signed.raw.headers.getlist("set-cookie") if c.startswith(f"{COOKIE}=")]
        assert len(session) == 1 and "; secure" in session[0].lower()
    finally:
        tls.stop()
