"""The aliases `champion` and `challenger`, and the history of champions that makes rollback possible.

MLflow keeps only where an alias points now. The versions that held `champion`, oldest first, are kept as
a JSON list in the registered model's tag `champion_history`: promoting appends, rolling back drops the
last entry and points `champion` at the one before. Each version made champion also carries why and when
as version tags, so the MLflow UI tells the same story.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from mlflow import MlflowClient

CHAMPION = "champion"
CHALLENGER = "challenger"
HISTORY_TAG = "champion_history"


def champion_history(client: MlflowClient, name: str) -> list[str]:
    history: list[str] = json.loads(client.get_registered_model(name).tags.get(HISTORY_TAG, "[]"))
    return history


def set_champion(client: MlflowClient, name: str, version: str, reason: str, forced: bool = False) -> None:
    """Make `version` the champion and remember it, with the reason, on top of the history."""
    client.set_model_version_tag(name, version, "promoted_at", datetime.now(UTC).isoformat())
    client.set_model_version_tag(name, version, "promotion_reason", reason)
    client.set_model_version_tag(name, version, "promotion_forced", str(forced).lower())
    client.set_registered_model_alias(name, CHAMPION, version)
    history = champion_history(client, name)
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps([*history, version]))


def restore_previous_champion(client: MlflowClient, name: str) -> tuple[str, str] | None:
    """Drop the current champion from the history and point `champion` at the one before:
    (dropped, restored), or None when there is no earlier champion."""
    history = champion_history(client, name)
    if len(history) < 2:
        return None
    dropped, restored = history[-1], history[-2]
    client.set_registered_model_alias(name, CHAMPION, restored)
    client.set_model_version_tag(name, dropped, "rolled_back_at", datetime.now(UTC).isoformat())
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history[:-1]))
    return dropped, restored
