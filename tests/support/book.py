"""Book entries for the cockpit tests: an enterprise account scored high risk, changed where a test says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from serving.cockpit.book import Entry

#: the end of the book's day
DAY = datetime(2025, 11, 30, 23, 59, 59, 999999, tzinfo=UTC)


def entry(account_id: str, **changes: object) -> Entry:
    base: dict[str, object] = {
        "account_id": account_id,
        "name": f"Account {account_id}",
        "tier": "enterprise",
        "segment": "mid_market",
        "csm_id": "csm-1",
        "arr": 120_000.5,
        "renewal_date": DAY + timedelta(days=40),
        "days_to_renewal": 40,
        "source": "model",
        "fallback": None,
        "churn_probability": 0.3125,
        "risk_band": "high",
        "health_score": 55.25,
        "health_band": "at_risk",
    }
    return Entry(**{**base, **changes})  # type: ignore[arg-type]
