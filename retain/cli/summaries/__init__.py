"""What each command tells a person: a few lines and, where a comparison helps, a table.

One function per result of `retain.api`; the full result is `--json`. Each summary says what was done,
the headline figures and where the outputs are. They live one module per command group, named as the
group's commands are (`retain/cli/models.py`'s in `summaries/models.py`); this package is their one face.
"""

from retain.cli.summaries.autopilot import autopilot_ran, autopilot_switched, autopilot_switches
from retain.cli.summaries.common import alerted
from retain.cli.summaries.data import features_built, ingested, simulation
from retain.cli.summaries.keys import key_created, key_revoked, keys_imported, keys_listed
from retain.cli.summaries.models import policies, promotion, retrained, rolled_back, trained
from retain.cli.summaries.plans import planned
from retain.cli.summaries.playbook import playbook_checked
from retain.cli.summaries.reports import digested, monitored, report_written
from retain.cli.summaries.scores import example_account, scored, table_scored
from retain.cli.summaries.store import compacted, history, migrated, store_checked
from retain.cli.summaries.webhooks import (
    alerts_recorded,
    deliveries_failed,
    deliveries_retried,
    delivery_round,
    webhook_added,
    webhook_removed,
    webhook_rotated,
    webhooks_listed,
)

__all__ = [
    "alerted",
    "alerts_recorded",
    "autopilot_ran",
    "autopilot_switched",
    "autopilot_switches",
    "compacted",
    "deliveries_failed",
    "deliveries_retried",
    "delivery_round",
    "digested",
    "example_account",
    "features_built",
    "history",
    "ingested",
    "key_created",
    "key_revoked",
    "keys_imported",
    "keys_listed",
    "migrated",
    "monitored",
    "planned",
    "playbook_checked",
    "policies",
    "promotion",
    "report_written",
    "retrained",
    "rolled_back",
    "scored",
    "simulation",
    "store_checked",
    "table_scored",
    "trained",
    "webhook_added",
    "webhook_removed",
    "webhook_rotated",
    "webhooks_listed",
]
