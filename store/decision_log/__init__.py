"""The decision log: every answer the API serves, the recommendations and the feedback on them, and the
actions taken, in SQLite under the store or in PostgreSQL.

`writer.py` holds `DecisionLog`: its queue and writer thread, its readiness within `bounds.py`, and the
spill and replay of what a stopping process could not write (`spill.py`); `queries.py` its synchronous
reads; `connection.py` the database; `records.py` what it holds; `tables.py` its schema, and
`other_tables.py` the tables API keys, webhooks and the autopilot keep in the same database. The names
below are the package's API.
"""

from store.decision_log.bounds import LogBounds
from store.decision_log.connection import DecisionLogUnavailable
from store.decision_log.other_tables import (
    ALERTS,
    API_KEYS,
    AUTOPILOT_COMPARISONS,
    AUTOPILOT_EXECUTIONS,
    AUTOPILOT_STOPS,
    AUTOPILOT_SWITCHES,
    DELIVERIES,
    WEBHOOK_RETIRING_SECRETS,
    WEBHOOKS,
)
from store.decision_log.records import (
    AnswerSource,
    Decision,
    FeedbackCount,
    FeedbackOnAction,
    FeedbackStatus,
    LogEntry,
    LoggedDecision,
    LoggedFeedback,
    LoggedRecommendation,
    Recommendation,
    TakenAction,
)
from store.decision_log.tables import (
    DECISIONS,
    FEEDBACK,
    METADATA,
    RECOMMENDATIONS,
    SPILLS_REPLAYED,
    TAKEN,
    WRITE_PROBE,
    UTCDateTime,
    upsert_into,
)
from store.decision_log.writer import DecisionLog

__all__ = [
    "ALERTS",
    "API_KEYS",
    "AUTOPILOT_COMPARISONS",
    "AUTOPILOT_EXECUTIONS",
    "AUTOPILOT_STOPS",
    "AUTOPILOT_SWITCHES",
    "DECISIONS",
    "DELIVERIES",
    "FEEDBACK",
    "METADATA",
    "RECOMMENDATIONS",
    "SPILLS_REPLAYED",
    "TAKEN",
    "WEBHOOKS",
    "WEBHOOK_RETIRING_SECRETS",
    "WRITE_PROBE",
    "AnswerSource",
    "Decision",
    "DecisionLog",
    "DecisionLogUnavailable",
    "FeedbackCount",
    "FeedbackOnAction",
    "FeedbackStatus",
    "LogBounds",
    "LogEntry",
    "LoggedDecision",
    "LoggedFeedback",
    "LoggedRecommendation",
    "Recommendation",
    "TakenAction",
    "UTCDateTime",
    "upsert_into",
]
