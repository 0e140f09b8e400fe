"""The book's filters read from a query string and written back into one (the export link), and the book
as CSV: every figure a plain number, no cell a spreadsheet would run as a formula."""

from __future__ import annotations

import csv
import io

import pytest

from serving.cockpit.book import Filters, parse_filters
from serving.cockpit.export import COLUMNS, book_csv, csv_filename
from serving.schemas import Fallback
from tests.support.book import DAY, entry


@pytest.mark.parametrize(
    "query",
    [{}, {"tier": "trial"}, {"band": "critical", "csm": "csm-7", "renewal": "90", "source": "rules"}],
)
def test_filters_written_back_read_as_the_same_filters(query: dict[str, str]) -> None:
    filters, problems = parse_filters({**query, "page": "3"})
    assert not problems and filters.page == 3
    assert filters.query() == query
    assert parse_filters(filters.query()) == (Filters(**{**filters.__dict__, "page": 1}), [])


def test_a_bad_filter_is_named_by_its_field_and_left_out() -> None:
    filters, problems = parse_filters({"tier": "gold", "band": "high", "renewal": "45", "page": "0"})
    assert [p.field for p in problems] == ["renewal", "page", "tier"]
    assert str(problems[2]) == "tier: 'gold' is not one of enterprise, mid_market, small_business, trial"
    assert filters == Filters(band="high")


def test_the_csv_has_plain_figures_and_no_formula_a_spreadsheet_would_run() -> None:
    rules = Fallback(code="stale_features", message="features are 30 days old (limit 14)")
    entries = [
        entry("acc-1", name='=HYPERLINK("http://evil.example")', segment=None),
        entry(
            "acc-2", name="Acme, Inc.", source="rules", fallback=rules, churn_probability=None, risk_band=None
        ),
        entry("-acc-3", name="@home", arr=None, renewal_date=None, days_to_renewal=None, csm_id=None),
    ]
    rows = list(csv.DictReader(io.StringIO(book_csv(entries))))
    assert list(rows[0]) == list(COLUMNS)
    assert [r["name"] for r in rows] == ['\'=HYPERLINK("http://evil.example")', "Acme, Inc.", "'@home"]
    assert rows[0] | {"name": ""} == {
        "account_id": "acc-1",
        "name": "",
        "tier": "enterprise",
        "segment": "",
        "csm_id": "csm-1",
        "churn_probability": "0.3125",
        "risk_band": "high",
        "arr": "120000.50",
        "arr_at_risk": "37500.16",
        "health_score": "55.2",
        "health_band": "at_risk",
        "renewal_date": "2026-01-09",
        "days_to_renewal": "40",
        "source": "model",
        "fallback_reason": "",
    }
    assert rows[1]["churn_probability"] == rows[1]["arr_at_risk"] == "" and rows[1]["fallback_reason"] == (
        "stale_features"
    )
    assert rows[2]["account_id"] == "'-acc-3" and rows[2]["arr"] == rows[2]["renewal_date"] == ""


def test_the_file_is_named_for_the_day_and_filters_in_safe_characters() -> None:
    assert csv_filename(DAY, Filters()) == "book-2025-11-30.csv"
    named = csv_filename(DAY, Filters(tier="trial", csm='csm "7"/\r\nx', renewal_days=30))
    assert named == "book-2025-11-30-tier-trial-csm-csm__7____x-renewal-30.csv"
