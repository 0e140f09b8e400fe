"""The tables other parts of serving keep in the decision log's database, beside its own: API keys
(`serving.keys`), webhook subscriptions and their outbox (`serving.webhooks`), and the autopilot's records
(`serving.autopilot_log`). Each module queries its own tables; they live on the log's `METADATA`, so the
migrations and the schema check cover them.
"""

from __future__ import annotations

import sqlalchemy as sa

from store.decision_log.tables import METADATA, UTCDateTime

#: API keys when `serve.keys` is `database` (`serving.keys.KeyTable`): hosts that share this database share
#: them. Scopes comma-separated; only a SHA-256 digest of each key.
API_KEYS = sa.Table(
    "api_keys",
    METADATA,
    sa.Column("key_id", sa.String, primary_key=True),
    sa.Column("name", sa.String),
    sa.Column("scopes", sa.String, nullable=False),
    sa.Column("sha256", sa.String, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("revoked_at", UTCDateTime),
)

#: webhook subscriptions (`serving.webhooks`): where alerts of the listed types (comma-separated, or `*`)
#: are pushed, and the current secret that signs them, which is kept as it is: a signature needs it;
#: `legacy_signature` marks a secret from before Standard Webhooks (its deliveries carry Retain-Signature)
WEBHOOKS = sa.Table(
    "webhooks",
    METADATA,
    sa.Column("webhook_id", sa.String, primary_key=True),
    sa.Column("url", sa.String, nullable=False),
    sa.Column("events", sa.String, nullable=False),
    sa.Column("secret", sa.String, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("removed_at", UTCDateTime),
    sa.Column("legacy_signature", sa.Boolean, nullable=False, server_default=sa.false()),
)

#: the secrets a rotation replaced: each still signs beside the webhook's current one until `expires_at`
WEBHOOK_RETIRING_SECRETS = sa.Table(
    "webhook_retiring_secrets",
    METADATA,
    sa.Column("webhook_id", sa.String, primary_key=True),
    sa.Column("secret", sa.String, primary_key=True),
    sa.Column("legacy_signature", sa.Boolean, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
)

#: alerts recorded for delivery, each once by its stable id; `payload` is the exact JSON body sent, so
#: every attempt sends and signs the same bytes
ALERTS = sa.Table(
    "alerts",
    METADATA,
    sa.Column("alert_id", sa.String, primary_key=True),
    sa.Column("type", sa.String, nullable=False),
    sa.Column("account_id", sa.String),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("recorded_at", UTCDateTime, nullable=False),
)

#: the outbox: one row per alert and subscription, written with the alert; a worker claims due rows
#: for `claimed_until` (a lease) and marks each delivered, pending again later, or dead
DELIVERIES = sa.Table(
    "deliveries",
    METADATA,
    sa.Column("alert_id", sa.String, primary_key=True),
    sa.Column("webhook_id", sa.String, primary_key=True),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", UTCDateTime, nullable=False),
    sa.Column("claimed_until", UTCDateTime),
    sa.Column("last_error", sa.String),
    sa.Column("delivered_at", UTCDateTime),
    sa.Index("ix_deliveries_due", "status", "next_attempt_at"),
)

#: what the autopilot executed (`serving.autopilot_log`): one row per plan week, account and action, keyed by
#: the execution id that is also its outbox event's id (every delivery's idempotency key) and its row in
#: `interventions_taken`; who acted (`actor`, and the API key), from which policy and with what propensity
AUTOPILOT_EXECUTIONS = sa.Table(
    "autopilot_executions",
    METADATA,
    sa.Column("execution_id", sa.String, primary_key=True),
    sa.Column("week", UTCDateTime, nullable=False),
    sa.Column("account_id", sa.String, nullable=False),
    sa.Column("action", sa.String, nullable=False),
    sa.Column("channel", sa.String, nullable=False),
    sa.Column("arm", sa.String, nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("actor", sa.String, nullable=False),
    sa.Column("key_id", sa.String),
    sa.Column("policy_version", sa.String, nullable=False),
    sa.Column("propensity", sa.Float),
    sa.Column("run_id", sa.String, nullable=False),
    sa.Index("ix_autopilot_executions_account", "account_id", "at"),
    sa.Index("ix_autopilot_executions_at", "at"),
)

#: the held-out accounts each run found that the autopilot would have executed an action for: the
#: comparison its harm check holds the executions against
AUTOPILOT_COMPARISONS = sa.Table(
    "autopilot_comparisons",
    METADATA,
    sa.Column("week", UTCDateTime, primary_key=True),
    sa.Column("account_id", sa.String, primary_key=True),
    sa.Column("action", sa.String, primary_key=True),
    sa.Column("recorded_at", UTCDateTime, nullable=False),
)

#: the kill switch: per scope (`*` for the whole autopilot, or an action), paused or not, by whom and why;
#: an automatic pause keeps the figures that caused it in `evidence`
AUTOPILOT_SWITCHES = sa.Table(
    "autopilot_switches",
    METADATA,
    sa.Column("scope", sa.String, primary_key=True),
    sa.Column("paused", sa.Boolean, nullable=False),
    sa.Column("reason", sa.String),
    sa.Column("actor", sa.String, nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("evidence", sa.JSON),
)

#: accounts a CSM stopped the autopilot for (from the cockpit), and who let it act again
AUTOPILOT_STOPS = sa.Table(
    "autopilot_stops",
    METADATA,
    sa.Column("account_id", sa.String, primary_key=True),
    sa.Column("stopped", sa.Boolean, nullable=False),
    sa.Column("actor", sa.String, nullable=False),
    sa.Column("key_id", sa.String),
    sa.Column("at", UTCDateTime, nullable=False),
)
