"""A simulation stepped forward a few days at a time, with the CS team's plans decided between steps.

A closed-loop experiment runs Retain's own pipeline on what the world has produced so far and has the team
follow the plan it makes, so the plan of a week can only be known once the weeks before it are simulated.
`SteppedSimulation` keeps every chunk's state between steps (engine.Chunk steps a day at a time) and
writes each step's output as an increment that `retain ingest` takes on top of the earlier ones:

    DIR/increments/<first day>_<last day>/events/date=YYYY-MM-DD/part-<chunk>.parquet   (arrived that day)
    DIR/increments/<first day>_<last day>/accounts.parquet   (contracts started in the step's days)
    DIR/increments/<first day>_<last day>/interventions.parquet   (actions and holdout draws of those days)
    DIR/truth/*.parquet   (the truth so far, when asked: `write_truth`)

Ingest appends events and interventions by id and merges accounts by id, so ingesting the increments one
after another gives the store of the whole run's output. The days run through the same code in the same
order as `simulate_to`, so a stepped run following the same plans is the same world, byte for byte.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from core.errors import RetainError
from simulate.calendar import Calendar, build_calendar
from simulate.config import SimConfig
from simulate.engine import Chunk, ChunkResult
from simulate.plans import PlanSchedule
from simulate.population import SEGMENTS
from simulate.writer import (
    OUTPUTS,
    PLAN_TABLES,
    TABLES,
    TableWriters,
    clear,
    write_drift,
    write_partition,
    write_table,
)

INCREMENTS = "increments"
INCREMENT_OUTPUTS = ("events", "accounts.parquet", "interventions.parquet")
TRUTH_TABLES = [*(name for name in TABLES if name.startswith("truth/")), *PLAN_TABLES]


@dataclass(frozen=True)
class Increment:
    """One step's output: the folder to ingest, the days it simulated (`start` to `end`, exclusive), and
    the rows it holds."""

    path: Path
    start: date
    end: date
    events: int
    accounts: int
    interventions: int


@dataclass(frozen=True)
class TruthSoFar:
    """The truth of the days simulated so far, as `truth/` holds it: the month-end probabilities and
    action effects, each account's churn and expansion if it happened yet, the holdout draws (each to the
    next quarter's start), and each followed plan week's executed actions and arms."""

    probabilities: pa.Table
    action_effects: pa.Table
    outcomes: pa.Table
    holdouts: pa.Table
    plan_effects: pa.Table
    plan_arms: pa.Table


class SteppedSimulation:
    """A simulation run forward by `advance`, following the plans given by `follow` before their week."""

    def __init__(self, config: SimConfig, out: Path, cal: Calendar, chunks: list[Chunk]) -> None:
        self.config, self.out, self.cal, self.chunks = config, Path(out), cal, chunks
        #: the first day not simulated yet, in days from the run's start
        self.day = 0
        #: each chunk's actions and holdout rows that earlier increments hold
        self.logged = [(0, 0) for _ in chunks]

    @classmethod
    def start(cls, config: SimConfig, out: Path) -> SteppedSimulation:
        """Every chunk on day 0, nothing simulated; clears a previous simulation's outputs from `out`."""
        out = Path(out)
        clear(out, (*OUTPUTS, INCREMENTS))
        (out / INCREMENTS).mkdir()
        (out / "truth").mkdir()
        write_drift(out, config.drift)
        cal = build_calendar(config, len(SEGMENTS))
        return cls(config, out, cal, [Chunk.start(config, cal, i, None) for i in range(config.chunks)])

    @property
    def today(self) -> date:
        """The first date not simulated yet: the next increment starts here."""
        return self.cal.date_of(self.day)

    @property
    def end(self) -> date:
        """The day after the run's last day."""
        return self.cal.date_of(self.config.days)

    def advance(self, to: date) -> Increment:
        """Simulate the days from `today` up to `to` (exclusive) and write what they produced as an
        increment: the events that arrived on those days (late ones included, on their arrival day), the
        accounts whose contract started, and the interventions logged."""
        end = (to - self.config.start).days
        if not self.day < end <= self.config.days:
            raise RetainError(f"the run stands at {self.today}; advance to a date after it, up to {self.end}")
        first, last = self.today, self.cal.date_of(end - 1)
        path = self.out / INCREMENTS / f"{first}_{last}"
        clear(path, INCREMENT_OUTPUTS)
        (path / "events").mkdir()
        arrived = sum(int(c.type_counts.sum()) for c in self.chunks)
        for chunk in self.chunks:
            sink = functools.partial(self._arrived, path, chunk.index)
            for day in range(self.day, end):
                chunk.simulate_day(day, sink)
        accounts, interventions = self._new_rows(end)
        write_table(path, "accounts.parquet", accounts)
        write_table(path, "interventions.parquet", interventions)
        self.day = end
        return Increment(
            path=path,
            start=first,
            end=to,
            events=sum(int(c.type_counts.sum()) for c in self.chunks) - arrived,
            accounts=accounts.num_rows,
            interventions=interventions.num_rows,
        )

    def follow(self, week: date, rows: pa.Table | pd.DataFrame) -> None:
        """Have the team follow a plan in `week` (its intervention day is the first Monday on or after it):
        rows with account_id, action (None on a holdout row) and holdout, checked as a `PlanSchedule`'s.
        Refused for a week whose intervention day is simulated already or has a plan, and for no rows."""
        table = rows if isinstance(rows, pa.Table) else pa.Table.from_pandas(rows, preserve_index=False)
        if "week" not in table.column_names:
            table = table.append_column("week", pa.array([week] * table.num_rows, pa.date32()))
        schedule = PlanSchedule.from_frame(table)
        if set(schedule.rows["week"].to_pylist()) != {week}:
            raise RetainError(f"a plan for the week of {week} needs rows, all of that week")
        schedule.check(self.config)
        weeks = [schedule.for_chunk(self.config, c.index) for c in self.chunks]
        [acting] = weeks[0].keys()
        if acting < self.day or acting in self.chunks[0].plan:
            why = "is simulated already" if acting < self.day else "has a plan already"
            raise RetainError(f"the plan week {week} acts on {self.cal.date_of(acting)}, which {why}")
        for chunk, plan in zip(self.chunks, weeks, strict=True):
            chunk.plan.update(plan)

    def truth(self) -> TruthSoFar:
        """The truth tables of the days simulated so far, over every chunk."""
        results = self._results()
        return TruthSoFar(
            probabilities=pa.concat_tables([r.probabilities for r in results]),
            action_effects=pa.concat_tables([r.effects for r in results]),
            outcomes=pa.concat_tables([r.outcomes for r in results]),
            holdouts=pa.concat_tables([r.holdouts for r in results]),
            plan_effects=pa.concat_tables([r.plan_effects for r in results]),
            plan_arms=pa.concat_tables([r.plan_arms for r in results]),
        )

    def write_truth(self) -> None:
        """The truth so far into `truth/`, as `simulate_to` writes it (plan tables included)."""
        writers = TableWriters(self.out, TRUTH_TABLES)
        try:
            for result in self._results():
                writers.append(result)
        finally:
            writers.close()

    def _results(self) -> list[ChunkResult]:
        return [c.result() for c in self.chunks]

    def _arrived(self, path: Path, chunk: int, day: int, table: pa.Table) -> None:
        write_partition(path, self.cal.date_of(day), chunk, table)

    def _new_rows(self, end: int) -> tuple[pa.Table, pa.Table]:
        """The accounts whose contract started in the step (those started before the run, in the first),
        and the interventions logged since the last step."""
        accounts, interventions = [], []
        for i, chunk in enumerate(self.chunks):
            started = np.maximum(chunk.pop.start_day, 0)
            accounts.append(chunk.accounts.filter(pa.array((started >= self.day) & (started < end))))
            actions, holdouts = chunk.logged()
            done_actions, done_holdouts = self.logged[i]
            interventions += [actions.slice(done_actions), holdouts.slice(done_holdouts)]
            self.logged[i] = (actions.num_rows, holdouts.num_rows)
        return pa.concat_tables(accounts), pa.concat_tables(interventions)
