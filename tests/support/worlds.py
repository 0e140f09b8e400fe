"""Simulated worlds shared by the tests, built once per session."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from retain.core.settings import Settings
from retain.core.store import Store
from training.result import TrainResult


@dataclass(frozen=True)
class UpliftWorld:
    """A small simulated store with features, and an uplift model trained, judged and registered."""

    store: Store
    settings: Settings
    simulation: Path
    result: TrainResult
