"""`simulate_to`: run every chunk, stream its output to disk, and summarise the run.

Chunks are independent given the seed, the shared calendar and the plan schedule, so they run in worker
processes and are written back in chunk order: the bytes do not depend on how many workers ran.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from functools import partial
from pathlib import Path

import numpy as np
from tqdm import tqdm

from core.contract import HOLDOUT
from simulate.calendar import Calendar, build_calendar
from simulate.config import Drift, SimConfig
from simulate.engine import ChunkResult, simulate_chunk
from simulate.events import TYPE_NAMES
from simulate.plans import PlanSchedule
from simulate.population import SEGMENTS, TIERS
from simulate.writer import (
    PLAN_TABLES,
    TABLES,
    TableWriters,
    prepare,
    write_drift,
    write_partition,
)


def _run_chunk(
    config: SimConfig, cal: Calendar, out: Path, plans: PlanSchedule | None, chunk: int
) -> ChunkResult:
    return simulate_chunk(
        config, cal, chunk, lambda day, table: write_partition(out, cal.date_of(day), chunk, table), plans
    )


@contextlib.contextmanager
def _results(run: Callable[[int], ChunkResult], chunks: int, workers: int) -> Iterator[Iterator[ChunkResult]]:
    """Chunk results in chunk order, computed inline or by `workers` forked processes.

    All chunks are submitted on entry, so the workers fork before this process starts any thread
    (Parquet writers, the progress bar): a fork never copies a lock another thread holds.
    """
    if workers == 1:
        yield map(run, range(chunks))
        return
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        yield pool.map(run, range(chunks))


@dataclass
class _Totals:
    type_counts: np.ndarray = field(default_factory=lambda: np.zeros(len(TYPE_NAMES), np.int64))
    tiers: np.ndarray = field(default_factory=lambda: np.zeros(len(TIERS), np.int64))
    churned: np.ndarray = field(default_factory=lambda: np.zeros(len(TIERS), np.int64))
    expanded: np.ndarray = field(default_factory=lambda: np.zeros(len(TIERS), np.int64))
    interventions: int = 0
    random: int = 0
    held_out: int = 0
    plan_actions: int = 0

    def add(self, result: ChunkResult) -> None:
        self.type_counts += result.type_counts
        self.tiers += result.tiers
        self.churned += result.churned
        self.expanded += result.expanded
        assignment = result.interventions.column("assignment").to_numpy(zero_copy_only=False)
        held = int((assignment == HOLDOUT).sum())
        self.held_out += held
        self.interventions += len(assignment) - held
        self.random += int((assignment == "random").sum())
        self.plan_actions += result.plan_effects.num_rows


@dataclass(frozen=True)
class TierOutcomes:
    accounts: int
    churned: int
    expanded: int


@dataclass(frozen=True)
class Simulation:
    """A simulated customer base: telemetry under `out`, and the truth apart under `out/truth`."""

    out: Path
    accounts: int
    days: int
    seed: int
    start: date
    events: int
    #: actions taken (the holdout rows of the interventions table are not)
    interventions: int
    #: holdout rows: accounts held out for a quarter, counted once per quarter
    held_out: int
    #: the share of interventions assigned by the experiment arm (at random)
    random_share: float
    churned: int
    expanded: int
    by_tier: dict[str, TierOutcomes]
    event_types: dict[str, int]
    seconds: float
    #: the drift the world went through, if any (described in truth/drift.json)
    drift: Drift | None = None
    #: plan actions executed (each a targeted intervention row, its effect in truth/plan_effects.parquet)
    plan_actions: int = 0


def simulate_to(
    config: SimConfig, out: Path, workers: int | None = None, plans: PlanSchedule | None = None
) -> Simulation:
    """Write a whole simulation to `out` and summarise it. `workers` defaults to the cores. With `plans`,
    the CS team follows them in the weeks they cover (simulate/plans.py)."""
    started = time.perf_counter()
    if plans is not None:
        plans.check(config)
    prepare(out)
    cal = build_calendar(config, len(SEGMENTS))
    workers = max(1, min(workers or os.cpu_count() or 1, config.chunks))
    totals = _Totals()
    names = [*TABLES, *(PLAN_TABLES if plans is not None else ())]
    with _results(partial(_run_chunk, config, cal, out, plans), config.chunks, workers) as results:
        writers = TableWriters(out, names)
        try:
            with tqdm(total=config.chunks, desc="simulate", unit="chunk", disable=None) as bar:
                for result in results:
                    writers.append(result)
                    totals.add(result)
                    bar.update()
        finally:
            writers.close()
    write_drift(out, config.drift)
    return Simulation(
        out=Path(out),
        accounts=config.accounts,
        days=config.days,
        seed=config.seed,
        start=config.start,
        events=int(totals.type_counts.sum()),
        interventions=totals.interventions,
        held_out=totals.held_out,
        random_share=round(totals.random / totals.interventions, 4) if totals.interventions else 0.0,
        churned=int(totals.churned.sum()),
        expanded=int(totals.expanded.sum()),
        by_tier={
            t.value: TierOutcomes(accounts=int(n), churned=int(c), expanded=int(e))
            for t, n, c, e in zip(TIERS, totals.tiers, totals.churned, totals.expanded, strict=True)
        },
        event_types={name: int(c) for name, c in zip(TYPE_NAMES, totals.type_counts, strict=True)},
        seconds=round(time.perf_counter() - started, 2),
        drift=config.drift,
        plan_actions=totals.plan_actions,
    )
