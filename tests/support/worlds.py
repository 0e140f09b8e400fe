"""Simulated worlds shared by the tests, built once per session."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from core.settings import Settings
from features.run import build_and_publish
from ingest.run import ingest_path
from registry.tracking import log_and_register
from simulate import Drift, SimConfig, simulate_to
from store.delta import Store
from training.causal.design import Design, store_design
from training.causal.run import train_uplift
from training.config import TrainConfig, UpliftConfig
from training.result import TrainResult
from training.run import train_model


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
    #: the design the model was trained on, as it was then
    design: Design

    @property
    def end(self) -> date:
        """The day the simulation ends (its last events are the day before)."""
        return self.config.start + timedelta(days=self.config.days)


def make_uplift_world(root: Path) -> UpliftWorld:
    """600 accounts over 420 days, published, with an uplift model trained, judged and registered."""
    simulation, config = root / "sim", SimConfig(accounts=600, days=420, seed=11, start=date(2024, 7, 1))
    store, settings = published_store(root, config)
    asked = UpliftConfig(truth_dir=simulation, min_effective_treated=20)
    result = train_uplift(store, settings, asked)
    log_and_register(store, settings, result, "uplift")
    # the design training read (from the store's cache), kept: later tests record plans into this store
    resolved = asked.resolved(settings)
    horizon = int(resolved.horizon_days or settings.horizon_days)
    design = store_design(store, settings, horizon, resolved.threads)
    return UpliftWorld(store, settings, simulation, result, config, design)


#: the drifted world's release relabels two product features; its churn champion's window ends months before
RELEASE = date(2025, 5, 20)


@dataclass(frozen=True)
class DriftedWorld:
    """The served world's simulation with a release on `RELEASE`, and a churn champion trained before it."""

    store: Store
    settings: Settings
    simulation: Path


def make_drifted_world(root: Path) -> DriftedWorld:
    config = SimConfig(
        accounts=400, days=420, seed=5, start=date(2024, 7, 1), drift=Drift("release", RELEASE)
    )
    store, settings = published_store(root, config)
    churn = TrainConfig(n_trials=2, plots=False, min_train_rows=200, min_window_positives=5)
    log_and_register(store, settings, train_model(store, settings, "churn", churn), "churn")
    return DriftedWorld(store, settings, root / "sim")
