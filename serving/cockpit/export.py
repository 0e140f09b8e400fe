"""The book as a CSV file a CSM opens in a spreadsheet: every account of the filtered view, not one page.

Figures are plain numbers (a probability as 0.3125, dollars unrounded to cents) so a spreadsheet can sort
and sum them. A text cell that a spreadsheet would run as a formula (an account name comes from a CRM) is
made inert by `core.csv_cells`, as every CSV Retain writes.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import datetime

from core.csv_cells import safe_cell
from serving.cockpit.book import Entry, Filters

COLUMNS = (
    "account_id",
    "name",
    "tier",
    "segment",
    "csm_id",
    "churn_probability",
    "risk_band",
    "arr",
    "arr_at_risk",
    "health_score",
    "health_band",
    "renewal_date",
    "days_to_renewal",
    "source",
    "fallback_reason",
)


def _text(value: str | None) -> str:
    return "" if value is None else safe_cell(value)


def _number(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _row(e: Entry) -> list[str]:
    return [
        _text(e.account_id),
        _text(e.name),
        _text(e.tier),
        _text(e.segment),
        _text(e.csm_id),
        _number(e.churn_probability, 4),
        _text(e.risk_band),
        _number(e.arr, 2),
        _number(e.arr_at_risk, 2),
        _number(e.health_score, 1),
        _text(e.health_band),
        "" if e.renewal_date is None else e.renewal_date.date().isoformat(),
        "" if e.days_to_renewal is None else str(e.days_to_renewal),
        _text(e.source),
        _text(e.fallback.code if e.fallback else None),
    ]


def book_csv(entries: Sequence[Entry]) -> str:
    """The entries as CSV, a header row first."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    writer.writerows(_row(e) for e in entries)
    return out.getvalue()


def csv_filename(as_of: datetime, filters: Filters) -> str:
    """`book-2025-11-30.csv`, with the filters set: `book-2025-11-30-tier-enterprise.csv`. Only letters,
    digits, `-` and `_` (a CSM's id is free text), so the header needs no quoting rules."""
    parts = ["book", f"{as_of:%Y-%m-%d}", *(p for item in filters.query().items() for p in item)]
    name = "-".join(parts)
    return "".join(c if c.isascii() and (c.isalnum() or c in "-_") else "_" for c in name)[:150] + ".csv"
