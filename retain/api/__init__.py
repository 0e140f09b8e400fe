"""The Python API: every step of the pipeline as one call, typed in and typed out.

The CLI is a thin shell over these verbs, and a notebook calls them the same way::

    from retain import api

    api.simulate(Path("sim"), accounts=500, days=365)
    api.ingest(Path("sim"), store=Path("store"))
    api.build_features(store=Path("store"))
    trained = api.train("churn", store=Path("store"), truth=Path("sim"))
    trained.mlflow.version

Each verb takes the store (a `Store`, or its folder; default: the settings' `home`) and the settings
(default: `RETAIN_*` environment variables), and returns a frozen dataclass: the figures a person reads,
which the CLI prints as a summary or, with `--json`, as JSON (`as_json`). Bad input raises `RetainError`
with a one-line message.

Each verb imports its layer when called: `retain --help` and the light verbs then start in a second,
not in the many seconds MLflow, LightGBM and Feast take to import.

The verbs live one module per stage, as the CLI's command groups do (`common` holds what they all start
from); this package is their one face.
"""

from core.errors import RetainError
from retain.api.autopilot import autopilot_pause, autopilot_resume, autopilot_run, autopilot_switches
from retain.api.common import Json, StoreLike, as_json, open_store, settings_or_default
from retain.api.data import build_features, ingest, simulate
from retain.api.models import (
    ModelKind,
    Retrained,
    Trained,
    evaluate_policies,
    load_model,
    promote,
    retrain,
    rollback,
    train,
    train_table,
)
from retain.api.outbox import (
    add_webhook,
    alerts,
    deliver_webhooks,
    failed_deliveries,
    record_alerts,
    remove_webhook,
    retry_deliveries,
    rotate_webhook_secret,
    run_webhook_worker,
    webhooks,
)
from retain.api.plans import plan
from retain.api.playbook import check_playbook
from retain.api.reports import digest, monitor, report_causal, report_causal_table
from retain.api.scores import example_account, score, score_table
from retain.api.store import check_store, compact_store, migrate_store, store_history

__all__ = [
    "Json",
    "ModelKind",
    "RetainError",
    "Retrained",
    "StoreLike",
    "Trained",
    "add_webhook",
    "alerts",
    "as_json",
    "autopilot_pause",
    "autopilot_resume",
    "autopilot_run",
    "autopilot_switches",
    "build_features",
    "check_playbook",
    "check_store",
    "compact_store",
    "deliver_webhooks",
    "digest",
    "evaluate_policies",
    "example_account",
    "failed_deliveries",
    "ingest",
    "load_model",
    "migrate_store",
    "monitor",
    "open_store",
    "plan",
    "promote",
    "record_alerts",
    "remove_webhook",
    "report_causal",
    "report_causal_table",
    "retrain",
    "retry_deliveries",
    "rollback",
    "rotate_webhook_secret",
    "run_webhook_worker",
    "score",
    "score_table",
    "settings_or_default",
    "simulate",
    "store_history",
    "train",
    "train_table",
    "webhooks",
]
