"""Simulated worlds shared by the tests, built once per session."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from features.build import build_and_publish
from retain.core.settings import Settings
from retain.core.store import Store
from retain.ingest import ingest_path
from retain.simulate import SimConfig, simulate_to
from training.result import TrainResult


def published_store(root: Path, config: SimConfig) -> tuple[Store, Settings]:
    """A simulation in `root/sim` ingested into `root/store`, its features built and published online."""
    simulate_to(config, root / "sim")
    store = Store(root / "store")
    settings = Settings(home=store.root)
    ingest_path(store, root / "sim")
    build_and_publish(store, settings, None, None, online=True)
    return store, settings


@dataclass(frozen=True)
class UpliftWorld:
    """A small simulated store with features, and an uplift model trained, judged and registered."""

    store: Store
    settings: Settings
    simulation: Path
    result: TrainResult
    config: SimConfig

    @property
    def end(self) -> date:
        """The day the simulation ends (its last events are the day before)."""
        return self.config.start + timedelta(days=self.config.days)
