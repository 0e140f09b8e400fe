"""The weekly plan: which action each account gets this week, so that CSM hours go where the uplift champion
expects the most dollars, and a random holdout keeps the effects measurable.

The rules, in order:

1. Holdout first. `holdout_share` of the week's active accounts (rounded to whole accounts) is drawn at
   random, from an RNG seeded by the settings' seed and the week, so the same store, week and seed give
   the same plan. Held-out accounts get no action: they are the untreated comparison.
2. Exploration next. `explore_share` of the other accounts that have an allowed action is drawn at random
   too, and each gets the action that is best under a draw from the posterior effects (Thompson
   sampling, `training.causal.thompson`), logged with the probability it was drawn with. An action the
   evidence is unsure of keeps being tried where it might be best, so the plans' own data settle it.
   Explored actions take their CSM's hours first; one that no longer fits is dropped (the account gets
   none that week). The rest are the plan's own choice:
3. Candidates. An account may get an action that is eligible now (the store's playbook: triggers and
   gates, its contact limit, and the cool-down since the action was last taken before the week), that the
   uplift model can rank (`UpliftModel.usable()`: the others have too little overlap to trust; a playbook
   action it has not learnt is never planned) and whose expected value is positive: uplift x value less
   the action's cash cost (`core.value`), not its CSM hours, which are the budget of rule 5 and
   paid for either way. An account past its renewal date (the grace week) gets none: its
   churn is already decided and the uplift model never saw such rows.
4. One action per account per week.
5. Capacity: each CSM has `capacity_hours` a week for the accounts they own (`accounts.csm_id`); an
   action's `cost_hours` count against its account's CSM. Zero-hour actions (the automated in-app nudge)
   use no capacity; an account without a CSM can only get those.

Maximising the total expected value under these rules is a multiple-choice knapsack per CSM. It is solved
with the standard greedy heuristic, not exactly: every account starts at its best zero-hour action, then
upgrades to costed actions are taken in order of extra value per extra hour while the CSM's hours allow.
It is easy to explain, and on a simulated store it found 93-100% of the optimum an exact search found.

Every plan made from a store is also recorded in its `plans` table: each active account of the week with
its arm (chosen, explore, holdout, none), so that once the labels mature `retain monitor` can compare the
plan's accounts with its random holdout and say what the plans kept.

Over 500 lines: one procedure, the rules above applied in order, from the week read to the plan recorded.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from core.catalogue import Action
from core.contract import TS
from core.csv_cells import safe_cells
from core.errors import RetainError
from core.files import atomic_path
from core.settings import Settings
from core.sql_out import BatchTable, SqlTable, batch_table
from core.value import expected_values
from features.alerts import Alerted
from features.cutoffs import cutoff_instant
from features.playbook_file import Playbook, store_playbook
from features.run import actions_last_taken, build_feature_table, register_store
from registry.models import VersionInfo, load_uplift_model
from store.delta import Store, commit_with_retry
from store.plan_table import (
    CHOSEN,
    EXPLORE,
    HELD_OUT,
    NO_ACTION,
    PLANS,
    PLANS_SCHEMA,
)
from training.causal import policy, recency, thompson
from training.causal.thompson import ValueOf
from training.causal.uplift import Inputs, UpliftModel

COLUMNS = ["account_id", "action", "csm_id", "expected_value", "holdout", "arm", "propensity"]
#: the CSV's columns typed, as a database table holds a week's plan (after its `week`)
TABLE_ROWS = pa.schema(
    [
        pa.field("account_id", pa.string(), nullable=False),
        ("action", pa.string()),
        ("csm_id", pa.string()),
        ("expected_value", pa.float64()),
        pa.field("holdout", pa.bool_(), nullable=False),
        ("arm", pa.string()),
        ("propensity", pa.float64()),
    ]
)
#: the exploration's random stream, apart from the holdout's
_EXPLORE_STREAM = 1
PLAN_STEP = "plan"
#: hours are quarter hours; this only absorbs float rounding in the capacity check
_SLACK = 1e-9


@dataclass(frozen=True)
class Week:
    """What planning one week needs: the active accounts (sorted), their CSMs, and per action what it is
    worth and whether it may be planned."""

    week: date
    account_ids: list[str]
    csm_ids: list[str | None]
    actions: list[str]
    #: each account's ARR at the week's start
    arr: np.ndarray
    #: (accounts, actions) expected value in dollars
    values: np.ndarray
    #: (accounts, actions) eligible now, cool-downs included, and rankable by uplift
    allowed: np.ndarray
    #: actions the uplift model cannot rank (poor overlap): never planned
    excluded: list[str]
    #: the uplift version the values come from
    model: VersionInfo
    #: that version's model: how sure the evidence is that each action helps
    uplift: UpliftModel
    #: the playbook's actions: their hours and approval
    catalogue: Mapping[str, Action]
    #: the playbook's actions no uplift model has been trained for yet (never taken): never planned
    unmodelled: list[str]
    #: the accounts as the uplift model reads them: what exploration draws posterior effects for
    inputs: Inputs
    #: what an action is worth in dollars, from its changes in churn and expansion and the account's ARR
    value_of: ValueOf


#: how sure the evidence must be that the most planned action helps before the summary stops explaining it
SURE = 0.9


@dataclass(frozen=True)
class MostPlanned:
    """The week's most planned action and the posterior probability that it lowers churn risk."""

    action: str
    count: int
    p_helps: float
    #: why it was chosen though the evidence is under `SURE`; None when it is not
    why_anyway: str | None


def most_planned(by_action: Mapping[str, int], model: UpliftModel) -> MostPlanned | None:
    """The most planned action with how sure its help is; below `SURE`, the reason the plan took it anyway:
    it had the highest expected value for those accounts, the posterior already weighing its uncertainty."""
    if not by_action:
        return None
    action = max(sorted(by_action), key=lambda a: by_action[a])
    churn, expansion = model.effect(action, "churn"), model.effect(action, "expansion")
    p = churn.p_helps
    why = None
    if p < SURE:
        side = (
            "it still had the highest expected value for these accounts, with the chance it raises expansion "
            f"at {100 * expansion.p_helps:.0f}%"
            if expansion.p_helps > p
            else "it still had the highest expected value for these accounts, which counts its effect only "
            "as far as the evidence supports it"
        )
        why = (
            f"{action} was planned {by_action[action]} times though the chance that it lowers churn risk is "
            f"{100 * churn.p_helps:.0f}% (below {100 * SURE:.0f}%): {side}; the holdout will tell"
        )
    return MostPlanned(action, by_action[action], round(p, 3), why)


@dataclass(frozen=True)
class Exploration:
    """The week's exploration: which accounts could be explored, which were, and what each drew."""

    #: accounts not held out with an allowed action worth more than nothing that fits their CSM's week
    pool: np.ndarray
    #: each explored account's action column; -1 for the others, and for a draw its CSM's hours no longer
    #: fitted (dropped)
    choice: np.ndarray
    #: explored accounts, whether kept or dropped
    explored: np.ndarray
    #: each explored account's probability of the action it drew (NaN elsewhere)
    drawn_with: np.ndarray

    @property
    def rate(self) -> float:
        """The probability that an account of the pool was explored: the draw's count over the pool's size."""
        members = int(self.pool.sum())
        return int(self.explored.sum()) / members if members else 0.0


def propensities(held: np.ndarray, exploration: Exploration) -> np.ndarray:
    """Each account's probability of its arm and action, logged so an off-policy estimate can weight by
    it. The holdout and the explored accounts are uniform draws of fixed counts: an account was held out
    with probability count / accounts and explored with the pool's rate; an explored account's action was
    drawn with its Thompson probability; the plan's own choice is deterministic given its arm (its
    probability within the arm, 1)."""
    share = float(held.mean()) if len(held) else 0.0
    rate = exploration.rate
    within = np.where(
        exploration.explored, rate * exploration.drawn_with, np.where(exploration.pool, 1 - rate, 1)
    )
    return np.where(held, share, (1.0 - share) * within)


@dataclass(frozen=True)
class PlanSummary:
    """The week's plan in figures: actions planned, holdout, expected dollars, hours used per CSM."""

    week: date
    accounts: int
    rows: int
    planned_actions: int
    holdout: int
    holdout_share: float
    no_action: int
    expected_value: float
    by_action: dict[str, int]
    needs_approval: int
    capacity_hours_per_csm: float
    hours_used: dict[str, float]
    excluded_actions: list[str]
    model: VersionInfo
    seed: int
    #: the playbook's actions no uplift model knows yet: serving ranks them by the rules, the plan skips them
    unmodelled_actions: list[str] = field(default_factory=list)
    #: the action planned most often, how sure the evidence is that it helps, and why it was chosen anyway
    #: where that is below `SURE` (None: nothing planned)
    most_planned: MostPlanned | None = None
    #: actions drawn by exploration (`explore`), and the share of the pool it was asked to draw
    explored: int = 0
    explore_share: float = 0.0
    #: the CSV, or the database table as its URL with the password redacted, once written
    out: Path | str | None = None
    #: accounts whose top recommendation is new or changed, recorded for the webhooks (set by `retain.api`)
    alerts: Alerted | None = None


@dataclass(frozen=True)
class Plan:
    rows: pd.DataFrame
    summary: PlanSummary
    #: every active account of the week in PLANS_SCHEMA: what the store records
    arms: pa.Table


def allowed_actions(
    records: Sequence[Mapping[str, Any]],
    last_taken: Mapping[str, Mapping[str, datetime]],
    as_of: datetime,
    actions: Sequence[str],
    usable: Sequence[str],
    playbook: Playbook,
) -> np.ndarray:
    """(records, actions): eligible at `as_of` under the playbook (cool-downs included) and usable; nothing
    for an account past its renewal date."""
    taken = [last_taken.get(row["account_id"], {}) for row in records]
    verdicts = policy.verdicts(records, taken, [as_of] * len(records), playbook)
    out = policy.eligible_mask(verdicts, actions)
    out &= np.isin(np.asarray(actions), list(usable))[None, :]
    past_renewal = [(row.get("days_to_renewal") or 0) < 0 for row in records]
    out[np.asarray(past_renewal, bool)] = False
    return out


def draw_plan_holdout(account_ids: Sequence[str], share: float, seed: int, week: date) -> np.ndarray:
    """A random `share` of the accounts (rounded), reproducible from the seed and the week; the ids'
    order does not matter."""
    order = np.argsort(np.asarray(account_ids, dtype=object), kind="stable")
    rng = np.random.default_rng([seed % 2**64, week.toordinal()])
    held = np.zeros(len(account_ids), bool)
    held[order[rng.permutation(len(account_ids))[: round(share * len(account_ids))]]] = True
    return held


def action_hours(actions: Sequence[str], catalogue: Mapping[str, Action]) -> np.ndarray:
    """Each action's CSM hours; none for an action the playbook no longer has (it is never allowed)."""
    return np.array([catalogue[a].cost_hours if a in catalogue else 0.0 for a in actions], float)


def assign(
    values: np.ndarray,
    allowed: np.ndarray,
    hours: np.ndarray,
    owners: Sequence[str | None],
    capacity: float,
    used: Mapping[str | None, float] | None = None,
) -> np.ndarray:
    """Each account's action column, or -1: the greedy of the module docstring, in the hours each CSM has
    left after `used`. Queued upgrades are priced against the account's action when queued; one popped
    after the account moved is re-priced and re-queued."""
    n = len(values)
    worth = np.where(allowed & (values > 0), values, 0.0)
    choice = np.full(n, -1)
    gained = np.zeros(n)
    free = np.flatnonzero(hours == 0)
    if free.size:
        best = free[worth[:, free].argmax(axis=1)]
        start = worth[np.arange(n), best] > 0
        choice[start], gained[start] = best[start], worth[start, best[start]]
    left = {
        owner: (capacity if owner is not None else 0.0) - (used or {}).get(owner, 0.0) for owner in owners
    }

    def step(i: int, j: int) -> tuple[float, float, float]:
        """Moving account i to action j: (extra value, extra hours, extra value per extra hour)."""
        more_value = worth[i, j] - gained[i]
        more_hours = hours[j] - (hours[choice[i]] if choice[i] >= 0 else 0.0)
        return more_value, more_hours, (more_value / more_hours if more_hours > 0 else math.inf)

    queue = [(-step(i, j)[2], i, j) for i, j in zip(*np.nonzero((worth > 0) & (hours > 0)), strict=True)]
    heapq.heapify(queue)
    while queue:
        queued, i, j = heapq.heappop(queue)
        more_value, more_hours, ratio = step(i, j)
        if more_value <= 0:
            continue
        if ratio != -queued:
            heapq.heappush(queue, (-ratio, i, j))
            continue
        if more_hours > left[owners[i]] + _SLACK:
            continue
        left[owners[i]] -= more_hours
        choice[i], gained[i] = j, worth[i, j]
    return choice


def _check_capacity(hours: float) -> None:
    if not hours > 0:  # NaN included
        raise RetainError(f"capacity must be a positive number of hours per CSM per week, got {hours}")


def explore(
    week: Week, held: np.ndarray, hours: np.ndarray, capacity: float, share: float, seed: int
) -> Exploration:
    """`share` of the pool (rounded), drawn at random from the seed and the week, each account given a
    Thompson draw among its allowed actions that fit its CSM's week; the drawn actions take their CSM's
    hours in the draw's order, and one that no longer fits is dropped."""
    n = len(week.account_ids)
    full = np.array([capacity if owner is not None else 0.0 for owner in week.csm_ids])
    fits = week.allowed & (hours[None, :] <= full[:, None] + _SLACK)
    pool = ~held & (fits & (week.values > 0)).any(axis=1)
    members = np.flatnonzero(pool)
    members = members[np.argsort(np.asarray(week.account_ids, dtype=object)[members], kind="stable")]
    rng = np.random.default_rng([seed % 2**64, week.week.toordinal(), _EXPLORE_STREAM])
    picked = members[rng.permutation(len(members))[: round(share * len(members))]]
    choice, drawn_with = np.full(n, -1), np.full(n, np.nan)
    if picked.size:
        inputs = Inputs(week.inputs.values[picked], {o: r[picked] for o, r in week.inputs.risks.items()})
        drawn = thompson.explore(week.uplift, inputs, week.arr[picked], fits[picked], week.value_of, rng)
        drawn_with[picked] = drawn.probability
        left = dict(zip(week.csm_ids, full, strict=True))
        for i, j in zip(picked, drawn.action, strict=True):
            if hours[j] <= left[week.csm_ids[i]] + _SLACK:
                left[week.csm_ids[i]] -= hours[j]
                choice[i] = j
    explored = np.zeros(n, bool)
    explored[picked] = True
    return Exploration(pool, choice, explored, drawn_with)


def make_plan(
    week: Week, capacity_hours: float, holdout_share: float, seed: int, explore_share: float = 0.0
) -> Plan:
    """The plan's rows (actions by CSM, best first; then the holdout) and its summary."""
    _check_capacity(capacity_hours)
    held = draw_plan_holdout(week.account_ids, holdout_share, seed, week.week)
    hours = action_hours(week.actions, week.catalogue)
    exploration = explore(week, held, hours, capacity_hours, explore_share, seed)
    used: dict[str | None, float] = {}
    for i in np.flatnonzero(exploration.choice >= 0):
        used[week.csm_ids[i]] = used.get(week.csm_ids[i], 0.0) + hours[exploration.choice[i]]
    free = week.allowed & ~(held | exploration.explored)[:, None]
    choice = assign(week.values, free, hours, week.csm_ids, capacity_hours, used)
    choice = np.where(exploration.explored, exploration.choice, choice)
    arm = np.where(
        held, HELD_OUT, np.where(choice < 0, NO_ACTION, np.where(exploration.explored, EXPLORE, CHOSEN))
    )
    propensity = propensities(held, exploration)
    planned = np.flatnonzero(choice >= 0)
    ids, csms = np.asarray(week.account_ids, dtype=object), np.asarray(week.csm_ids, dtype=object)
    value = week.values[planned, choice[planned]]
    work = pd.DataFrame(
        {
            "account_id": ids[planned],
            "action": np.asarray(week.actions, dtype=object)[choice[planned]],
            "csm_id": csms[planned],
            "expected_value": value.round(2),
            "holdout": False,
            "arm": arm[planned],
            "propensity": propensity[planned],
            "hours": hours[choice[planned]],
        }
    ).sort_values(["csm_id", "expected_value", "account_id"], ascending=[True, False, True])
    holdout = pd.DataFrame(
        {
            "account_id": ids[held],
            "action": "",
            "csm_id": csms[held],
            "expected_value": np.nan,
            "holdout": True,
            "arm": HELD_OUT,
            "propensity": propensity[held],
        }
    ).sort_values(["csm_id", "account_id"])
    rows = pd.concat([work[COLUMNS], holdout], ignore_index=True)
    summary = _summary(week, work, held, capacity_hours, holdout_share, explore_share, seed)
    return Plan(rows, summary, _arms(week, choice, arm, propensity))


def _summary(
    week: Week,
    work: pd.DataFrame,
    held: np.ndarray,
    capacity_hours: float,
    holdout_share: float,
    explore_share: float,
    seed: int,
) -> PlanSummary:
    used = work.groupby("csm_id")["hours"].sum()
    by_action = {str(a): int(n) for a, n in work["action"].value_counts().sort_index().items()}
    return PlanSummary(
        week=week.week,
        accounts=len(week.account_ids),
        rows=len(work) + int(held.sum()),
        planned_actions=len(work),
        holdout=int(held.sum()),
        holdout_share=holdout_share,
        no_action=len(week.account_ids) - len(work) - int(held.sum()),
        expected_value=round(float(work["expected_value"].sum()), 2),
        by_action=by_action,
        needs_approval=int(sum(week.catalogue[a].needs_approval for a in work["action"])),
        capacity_hours_per_csm=capacity_hours,
        hours_used={
            str(c): round(float(used.get(c, 0.0)), 2) for c in sorted({c for c in week.csm_ids if c})
        },
        excluded_actions=week.excluded,
        model=week.model,
        seed=seed,
        unmodelled_actions=week.unmodelled,
        most_planned=most_planned(by_action, week.uplift),
        explored=int((work["arm"] == EXPLORE).sum()),
        explore_share=explore_share,
    )


def _arms(week: Week, choice: np.ndarray, arm: np.ndarray, propensity: np.ndarray) -> pa.Table:
    """Every account of the week with its arm, action, value and ARR, as the `plans` table holds them."""
    planned = choice >= 0
    actions = np.asarray(week.actions, dtype=object)[np.maximum(choice, 0)]
    values = week.values[np.arange(len(choice)), np.maximum(choice, 0)]
    n = len(choice)
    return pa.Table.from_pydict(
        {
            "week": pa.array([cutoff_instant(week.week)] * n, TS),
            "account_id": week.account_ids,
            "arm": arm.tolist(),
            "action": [a if p else None for a, p in zip(actions, planned, strict=True)],
            "csm_id": week.csm_ids,
            "expected_value": pa.array(np.where(planned, values.round(2), np.nan), mask=~planned),
            "arr": week.arr.astype(float),
            "model_version": [week.model.version] * n,
            "propensity": propensity,
        },
        schema=PLANS_SCHEMA,
    )


# -- the I/O edge -------------------------------------------------------------------------------------


def check_week(con: duckdb.DuckDBPyConnection, store: Store, week: date, step: str = "plan") -> None:
    """The week needs history before it, and may start at most the day after the last event (planning
    the coming week), over the `events` view `register_store` made; `step` names what the message asks
    for (plan, digest)."""
    span = con.execute("SELECT min(ts), max(ts) FROM events").fetchall()[0]
    if span[0] is None:
        raise RetainError(f"no events in the store {store.location}; run `retain ingest` first")
    first, last = (ts.astimezone(UTC).date() for ts in span)
    earliest, latest = first + timedelta(days=1), last + timedelta(days=1)
    if not earliest <= week <= latest:
        raise RetainError(
            f"week {week.isoformat()} is outside the store's data (events from {first} to {last}): "
            f"{step} a week starting from {earliest} to {latest}"
        )


def _uplift_champion(store: Store, settings: Settings) -> tuple[UpliftModel, VersionInfo]:
    try:
        return load_uplift_model(store, settings)
    except RetainError as e:
        raise RetainError(
            f"the plan needs an uplift champion ({e}): run `retain train --model uplift`"
        ) from e


def read_week(store: Store, settings: Settings, week: date) -> Week:
    """The week's active accounts with features at its first midnight (UTC), their CSMs and cool-downs,
    valued by the registered uplift champion."""
    if not store.holds_events():
        raise RetainError(f"no events in the store {store.location}: run `retain ingest` into it first")
    as_of = cutoff_instant(week)
    playbook = store_playbook(store, settings)
    with duckdb.connect() as con:
        register_store(con, store)
        check_week(con, store, week)
        model, info = _uplift_champion(store, settings)
        table = build_feature_table(con, [week], settings)
        taken = actions_last_taken(con, as_of)
        owners = dict(
            con.execute(
                "SELECT account_id, arg_max(csm_id, contract_start) FROM accounts GROUP BY account_id"
            ).fetchall()
        )
    if table.num_rows == 0:
        raise RetainError(f"no account is active in the week of {week.isoformat()}")
    rows = table.to_pandas()
    days_since = [recency.for_account(taken.get(a, {}), as_of, model.actions) for a in rows["account_id"]]
    inputs = model.inputs(rows.join(pd.DataFrame(days_since, index=rows.index)))
    uplift = model.scaled(inputs)
    arr = rows["arr"].to_numpy(float)

    # the week's CSM hours are the plan's budget, rationed by the solver, not a cost: the team has them
    # either way, and charging for them left them idle where an action would still have helped
    budgeted = settings.value.model_copy(update={"csm_hour_usd": 0.0})

    def value_of(churn: np.ndarray, expansion: np.ndarray, arr: np.ndarray) -> np.ndarray:
        return expected_values(churn, expansion, arr, model.actions, budgeted, playbook.actions)

    usable = model.usable()
    return Week(
        week=week,
        account_ids=rows["account_id"].tolist(),
        csm_ids=[owners.get(a) for a in rows["account_id"]],
        actions=list(model.actions),
        arr=arr,
        values=value_of(uplift["churn"], uplift["expansion"], arr),
        allowed=allowed_actions(table.to_pylist(), taken, as_of, model.actions, usable, playbook),
        excluded=[a for a in model.actions if a not in usable and a in playbook.actions],
        model=info,
        uplift=model,
        catalogue=playbook.actions,
        unmodelled=[a for a in playbook.names if a not in model.actions],
        inputs=inputs,
        value_of=value_of,
    )


def write_plan(rows: pd.DataFrame, out: Path | BatchTable, week: date) -> None:
    """CSV, replaced atomically; `holdout` as true/false, empty cells for the holdout's action and value,
    text a spreadsheet would run as a formula made inert (an ingested `csm_id` is anyone's text).
    Or the week's rows of a database table, replaced in one transaction (the holdout's action NULL)."""
    if isinstance(out, BatchTable):
        no_holdout_action = rows.assign(action=rows["action"].mask(rows["holdout"]))
        typed = pa.Table.from_pandas(no_holdout_action, TABLE_ROWS, preserve_index=False)
        out.replace(week, typed.to_batches())
        return
    with atomic_path(out) as tmp:
        text = safe_cells(rows.assign(holdout=rows["holdout"].map({True: "true", False: "false"})))
        text.to_csv(tmp, index=False)


def record_plan(store: Store, plan: Plan) -> int:
    """Replace the week's rows of the store's `plans` table with this plan's, in one transaction; the new
    table version. A week planned again keeps only its latest plan: the one the team was given."""
    instant = cutoff_instant(plan.summary.week)
    note = {"step": PLAN_STEP, "week": plan.summary.week.isoformat(), "model": plan.summary.model.version}
    return commit_with_retry(
        PLANS,
        lambda: store.write(
            PLANS,
            plan.arms,
            "overwrite",
            json.dumps(note, sort_keys=True),
            replace_where=f"week = '{instant.isoformat()}'",
        ),
    )


def plan_store(
    store: Store, settings: Settings, week: date, capacity_hours: float, out: Path | SqlTable
) -> PlanSummary:
    """Plan the week from the store and the uplift champion, write the CSV to `out` (or the week's rows of
    a database table) and record the plan in the store's `plans` table; returns the summary."""
    _check_capacity(capacity_hours)  # before the slow part, as is reaching a database table
    with contextlib.ExitStack() as stack:
        target = (
            stack.enter_context(batch_table(out, "week", TABLE_ROWS, unique="account_id"))
            if isinstance(out, SqlTable)
            else out
        )
        plan = make_plan(
            read_week(store, settings, week),
            capacity_hours,
            settings.value.holdout_share,
            settings.seed,
            settings.value.explore_share,
        )
        write_plan(plan.rows, target, week)
    record_plan(store, plan)
    return replace(plan.summary, out=out if isinstance(out, Path) else str(out))
