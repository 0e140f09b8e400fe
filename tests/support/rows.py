"""Feature rows for the playbook and plan tests."""

from __future__ import annotations

from typing import Any

#: A neutral mid-market account with every input known and no trigger firing.
QUIET: dict[str, Any] = {
    "tier": "mid_market",
    "health_band": "neutral",
    "days_to_renewal": 300.0,
    "open_p1p2_tickets": 0,
    "error_spike": 0,
    "tickets_created_30d": 1,
    "sponsor_disengaged": 0,
    "onboarding_stalled": 0.0,
    "first_value_reached": 1.0,
    "integrations_failing": 0,
    "usage_drop_alert": 0,
    "seat_utilisation": 0.5,
    "core_feature_share_30d": 1.0,
    "core_features_unused_7d": 0.0,
    "invoices_overdue": 0,
    "invoices_failed": 0,
    "seat_limit_near": 0.0,
    "nps_last": 7.0,
}
