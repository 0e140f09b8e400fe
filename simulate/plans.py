"""Plans the simulated CS team applies: a schedule of weekly plans, each naming an action per account or
holding the account out, as `retain plan` writes them.

In a planned week the plan replaces the team's own targeting and the randomised arm on the week's
intervention day: each planned account that is live and not in the simulator's quarterly holdout gets its
action, nobody else gets anything that week, and other weeks run as usual. The truth records what each
executed action changed and every account's arm (truth.py), so that a monitor comparing the plan's accounts
with its holdout can be checked against what the plan really prevented.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from core.catalogue import ACTIONS
from core.errors import RetainError
from simulate.config import CHUNK_ACCOUNTS, SimConfig
from simulate.interventions import ACTION_INDEX, INTERVENTION_WEEKDAY
from simulate.population import id_width

COLUMNS = ("week", "account_id", "action", "holdout")


@dataclass(frozen=True)
class ScheduledWeek:
    """One plan week as a chunk applies it on the week's intervention day."""

    #: the plan's week start, in days from the run's start (earlier than the intervention day, or it)
    week_day: int
    #: the chunk's local account indices, ascending
    account: np.ndarray
    #: each account's catalogue index, -1 for a holdout row
    action: np.ndarray


@dataclass(frozen=True)
class PlanSchedule:
    """Weekly plans for the simulated CS team: one row per (week, account), sorted by both. `week` is the
    plan's week start (its intervention day is the first Monday on or after it), `action` a catalogue
    action, null on a holdout row."""

    rows: pa.Table

    @classmethod
    def from_frame(cls, frame: pa.Table | pd.DataFrame) -> PlanSchedule:
        """A schedule from a table with columns week, account_id, action and holdout (others are ignored)."""
        table = frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame, preserve_index=False)
        missing = [c for c in COLUMNS if c not in table.column_names]
        if missing:
            raise RetainError(f"a plan schedule needs the columns {', '.join(COLUMNS)}; missing {missing}")
        rows = pa.table(
            {
                "week": _weeks(table["week"]),
                "account_id": _required(table["account_id"], pa.string(), "account_id"),
                "action": _actions(table["action"]),
                "holdout": _required(table["holdout"], pa.bool_(), "holdout"),
            }
        ).sort_by([("week", "ascending"), ("account_id", "ascending")])
        _check_rows(rows.to_pandas())
        return cls(rows)

    def check(self, config: SimConfig) -> None:
        """Raise RetainError unless every account is the simulation's and every week has its own
        intervention day inside the run."""
        ids, width = self.rows["account_id"], id_width(config.accounts)
        shaped = pc.match_substring_regex(ids, f"^acc-[0-9]{{{width}}}$").to_numpy(zero_copy_only=False)
        unknown = ~shaped | (self._numbers() >= config.accounts)
        if unknown.any():
            raise RetainError(
                f"the plan schedule names {len(pc.unique(ids.filter(pa.array(unknown))))} account(s) this "
                f"simulation does not have, e.g. {ids[int(np.argmax(unknown))]} (its ids run from "
                f"acc-{0:0{width}d} to acc-{config.accounts - 1:0{width}d})"
            )
        weeks = sorted(set(self.rows["week"].to_pylist()))
        acting = {w: _intervention_day(w) for w in weeks}
        last = config.start + timedelta(days=config.days - 1)
        for w, monday in acting.items():
            if not config.start <= monday <= last:
                raise RetainError(
                    f"plan week {w} has no intervention day (Monday {monday}) inside the run, "
                    f"{config.start} to {last}"
                )
        for a, b in itertools.pairwise(weeks):
            if acting[a] == acting[b]:
                raise RetainError(f"plan weeks {a} and {b} share the intervention day {acting[a]}")

    def for_chunk(self, config: SimConfig, chunk: int) -> dict[int, ScheduledWeek]:
        """The chunk's share of every plan week, by intervention day (days from the run's start)."""
        local = self._numbers() - chunk * CHUNK_ACCOUNTS
        mine = (local >= 0) & (local < CHUNK_ACCOUNTS)
        start = np.datetime64(config.start, "D")
        week_day = (self.rows["week"].to_numpy().astype("datetime64[D]") - start).astype(np.int64)
        action = _codes(self.rows["action"])
        plans = {}
        for day in np.unique(week_day).tolist():
            sel = mine & (week_day == day)
            acting = _intervention_day(config.start + timedelta(days=day))
            plans[(acting - config.start).days] = ScheduledWeek(day, local[sel], action[sel])
        return plans

    def _numbers(self) -> np.ndarray:
        """Each row's account number, -1 where the id is not `acc-<digits>`."""
        ids = self.rows["account_id"]
        digits = pc.utf8_slice_codeunits(ids, 4)
        shaped = pc.and_(pc.starts_with(ids, "acc-"), pc.match_substring_regex(digits, "^[0-9]{1,18}$"))
        numbers = pc.if_else(shaped, digits, "-1")
        return pc.cast(numbers, pa.int64()).to_numpy()


def _weeks(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Plan weeks as dates: from dates, timestamps (their UTC day) or ISO date strings."""
    try:
        if pa.types.is_timestamp(column.type):
            column = column.cast(pa.timestamp("us"))
        weeks = column.cast(pa.date32())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise RetainError(f"plan weeks must be dates like 2025-09-01: {e}") from e
    if weeks.null_count:
        raise RetainError(f"plan weeks must be dates like 2025-09-01; {weeks.null_count} are missing")
    return weeks


def _required(column: pa.ChunkedArray, to: pa.DataType, name: str) -> pa.ChunkedArray:
    try:
        values = column.cast(to)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise RetainError(f"plan column {name} must be {to}: {e}") from e
    if values.null_count:
        raise RetainError(f"plan column {name} must be {to}; {values.null_count} values are missing")
    return values


def _actions(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Action names, an empty name read as none (a holdout row)."""
    names = column.cast(pa.string())
    return pc.if_else(pc.equal(names, ""), pa.scalar(None, pa.string()), names)


def _check_rows(frame: pd.DataFrame) -> None:
    """Known actions, none on a holdout row and one on every other, one row per (week, account)."""
    unknown = sorted(set(frame.action.dropna()) - set(ACTIONS))
    if unknown:
        raise RetainError(f"the plan schedule has actions not in the catalogue: {', '.join(unknown)}")
    for bad, say in (
        (frame.holdout & frame.action.notna(), "holdout rows must have no action"),
        (~frame.holdout & frame.action.isna(), "rows not held out need an action"),
        (frame.duplicated(["week", "account_id"]), "only one row per (week, account_id) is allowed"),
    ):
        if bad.any():
            first = frame[bad].iloc[0]
            raise RetainError(
                f"{say}: {int(bad.sum())} row(s) break this, e.g. {first.account_id} in week {first.week}"
            )


def _codes(actions: pa.ChunkedArray) -> np.ndarray:
    """Catalogue indices, -1 for a holdout row."""
    return np.array([-1 if a is None else ACTION_INDEX[a] for a in actions.to_pylist()], np.int64)


def _intervention_day(week: date) -> date:
    """The first intervention day (a Monday) on or after `week`."""
    return week + timedelta(days=(INTERVENTION_WEEKDAY - week.weekday()) % 7)
