"""`retain digest`: read one week's scores, plans and alerts from the store and the decision log, write
the email page and its JSON, and with `--send` mail and post them (`products.digest.send`).

The I/O edge of the digest: scores from the store's `scores` table (one batch per cutoff), ARR and tier
from the feature rows at those cutoffs, names and CSMs from the accounts table, plans from the `plans`
table with the monitor's measure of what they kept, alerts from the decision log's outbox. The computing
is done by the pure modules beside this one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.compute as pc

from core.contract import ACCOUNT_SCHEMA
from core.errors import RetainError
from core.files import atomic_path
from core.settings import Settings
from features.run import register_store
from features.stored import read_features, stored_cutoffs
from products.delivery import DeliveryError
from products.digest import risk
from products.digest.headlines import headlines
from products.digest.html import render
from products.digest.schema import AlertsSection, ArrAtRisk, DigestReport, PlanSection, RiskMoves
from products.digest.send import DigestSent, destinations, send
from products.digest.week import alert_counts, week_bounds, week_plan
from products.monitor.run import plan_section
from products.plan import check_week
from serving.batch import SCORES, SCORES_SCHEMA, scored_cutoffs
from serving.webhooks.outbox import Outbox
from store.decision_log import DecisionLog, DecisionLogUnavailable
from store.delta import Store
from store.plan_table import recorded_plans


@dataclass(frozen=True)
class DigestFiles:
    """Where a digest was written, and the week in a few sentences."""

    week: date
    html: Path
    json: Path
    headlines: list[str]
    #: where `--send` sent it; None when it was not sent
    sent: DigestSent | None = None


def _check_in_data(store: Store, week: date) -> None:
    """The week starts within the store's events, as a plan's must (`products.plan.check_week`)."""
    with duckdb.connect() as con:
        register_store(con, store)
        check_week(con, store, week, "digest")


def compared_cutoffs(store: Store, end: datetime) -> list[datetime]:
    """The two latest cutoffs scored before `end` (one, if only one is), oldest first."""
    cutoffs = scored_cutoffs(store)
    if not cutoffs:
        raise RetainError(
            f"no scores in the store {store.location} yet: run `retain score --cutoff DATE --out FILE` first"
        )
    earlier = [c for c in cutoffs if c < end]
    if not earlier:
        last_day = (end - timedelta(days=1)).date()
        built = [c for c in stored_cutoffs(store) if c <= last_day]
        cutoff = built[-1].isoformat() if built else "DATE"
        raise RetainError(
            f"no cutoff scored on or before {last_day} (the first is {cutoffs[0].date()}): run "
            f"`retain score --cutoff {cutoff} --out FILE` first"
        )
    return earlier[-2:]


def scored_frames(store: Store, cutoffs: list[datetime]) -> list[pd.DataFrame]:
    """Per cutoff, the accounts scored then with their probability, top reason, ARR and tier at the
    cutoff (the feature row), name and CSM (the accounts table)."""
    at = pc.field("cutoff").isin(cutoffs)
    columns = ["account_id", "cutoff", "churn_probability", "reasons"]
    scores = store.read(SCORES, SCORES_SCHEMA, columns=columns, where=at).to_pandas()
    rows = read_features(store, columns=["account_id", "cutoff", "arr", "tier"], where=at).to_pandas()
    accounts = store.read("accounts", ACCOUNT_SCHEMA, ["account_id", "name", "csm_id"]).to_pandas()
    frame = scores.merge(rows, on=["account_id", "cutoff"], how="left").merge(
        accounts, on="account_id", how="left"
    )
    frame["reason"] = frame.pop("reasons").map(risk.top_reason)
    return [frame[frame["cutoff"] == pd.Timestamp(c)].reset_index(drop=True) for c in cutoffs]


def _risk_sections(store: Store, settings: Settings, cutoffs: list[datetime]) -> tuple[RiskMoves, ArrAtRisk]:
    frames = scored_frames(store, cutoffs)
    now, before = frames[-1], frames[0] if len(frames) > 1 else None
    cutoff, previous = str(cutoffs[-1].date()), str(cutoffs[0].date()) if before is not None else None
    entering, leaving = ([], []) if before is None else risk.moves(before, now, settings)
    moves = RiskMoves(
        cutoff=cutoff,
        previous_cutoff=previous,
        high_from=settings.serve.risk_bands.high,
        entering=entering,
        leaving=leaving,
    )
    arr = ArrAtRisk(
        cutoff=cutoff,
        previous_cutoff=previous,
        total=risk.risk_by(now, before, None)[0],
        by_tier=risk.risk_by(now, before, "tier"),
        by_csm=risk.risk_by(now, before, "csm_id"),
    )
    return moves, arr


def _plan_section(store: Store, settings: Settings, start: datetime, end: datetime) -> PlanSection:
    plans = recorded_plans(store)
    this_week = plans[(plans["week"] >= pd.Timestamp(start)) & (plans["week"] < pd.Timestamp(end))]
    return PlanSection(week=week_plan(this_week), impact=plan_section(store, settings, before=end))


def _alerts_section(store: Store, settings: Settings, start: datetime, end: datetime) -> AlertsSection:
    """The alerts about the week; a store that never served has no decision log, and says so."""
    log = DecisionLog.for_store(store, settings)
    try:
        if not log.exists():
            return AlertsSection(logged=False, total=0, by_type=[])
        found = Outbox(log).recorded(start, end)
    except DecisionLogUnavailable as e:
        raise RetainError(f"the digest reads the week's alerts from the decision log: {e}") from e
    finally:
        log.close()
    return AlertsSection(logged=True, total=len(found), by_type=alert_counts(found))


def compose(store: Store, settings: Settings, week: date) -> DigestReport:
    """Every section of the week's digest, from the store and the decision log."""
    start, end = week_bounds(week)
    _check_in_data(store, week)
    moves, arr = _risk_sections(store, settings, compared_cutoffs(store, end))
    report = DigestReport(
        store=store.location,
        computed_at=datetime.now(UTC).isoformat(timespec="seconds"),
        week=week.isoformat(),
        week_end=(week + timedelta(days=6)).isoformat(),
        risk=moves,
        arr_at_risk=arr,
        plan=_plan_section(store, settings, start, end),
        alerts=_alerts_section(store, settings, start, end),
        headlines=[],
    )
    return report.model_copy(update={"headlines": headlines(report)})


def digest_store(
    store: Store, settings: Settings, week: date, out: Path, send_it: bool = False
) -> DigestFiles:
    """Compose the week's digest and write `out/digest-WEEK.html` and `out/digest-WEEK.json`, each
    replacing its file whole: a folder keeps one pair per week. With `send_it`, then mail and post it
    where the delivery settings say; having nowhere to send it is refused before anything is composed."""
    if send_it:
        destinations(settings.delivery)
    report = compose(store, settings, week)
    page, data = out / f"digest-{week.isoformat()}.html", out / f"digest-{week.isoformat()}.json"
    html = render(report)
    with atomic_path(data) as tmp:
        tmp.write_text(report.model_dump_json(indent=2))
    with atomic_path(page) as tmp:
        tmp.write_text(html, encoding="utf-8")
    try:
        sent = send(report, html, settings.delivery) if send_it else None
    except DeliveryError as e:
        raise DeliveryError(f"{e} (the page is written all the same: {page})") from None
    return DigestFiles(week=week, html=page, json=data, headlines=report.headlines, sent=sent)
