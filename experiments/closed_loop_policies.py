"""The closed loop's five policies as weekly plans, all made by `products.plan.make_plan` from the same Week.

Every policy plans the same accounts under the same rules (eligibility and cool-downs, one action per account,
each CSM's hours, the plan's random holdout drawn by `draw_plan_holdout` from the same seed and week), so they
differ only in how they score an (account, action) pair, and every plan is judged by its holdout alike:

- `retain`, `retain_explore`: the uplift champion's expected value, as `retain plan` (exploration off / on);
- `oracle`: the churn each pair truly averts (the simulator's effect at the latest month end), as the
  judge's oracle (`training.causal.policy`) chooses: the most churn the same hours can avert, whatever it
  costs, where Retain spends an hour only where it expects more dollars than the hour costs;
- `rules`, `highest_risk`: the judge's plain orders (`training.causal.policy.plain_orders`): accounts by
  lowest health score or by the uplift champion's baseline churn risk, each with its band's play. A list
  is worked from the top, not by dollars per hour: each account gets its first eligible action that fits
  what its CSM has left. Their plan rows carry a value of 1.0 (chosen by order, not by dollars).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from core.settings import Settings
from features.cutoffs import cutoff_instant
from features.playbook_file import store_playbook
from features.run import actions_last_taken, build_feature_table, register_store
from products.plan import Plan, Week, action_hours, draw_plan_holdout, make_plan
from store.delta import Store
from training.causal import policy

RULES, HIGHEST_RISK, RETAIN, RETAIN_EXPLORE, ORACLE = (
    "rules",
    "highest_risk",
    "retain",
    "retain_explore",
    "oracle",
)
POLICIES = (RULES, HIGHEST_RISK, RETAIN, RETAIN_EXPLORE, ORACLE)
#: the policies that read the uplift champion's effects, so retrain it monthly on their own world's data
LEARNING = (RETAIN, RETAIN_EXPLORE)
_SLACK = 1e-9


@dataclass(frozen=True)
class PlanRules:
    """What every policy's plan shares: each CSM's weekly hours, the holdout, the plan's seed."""

    capacity_hours: float
    holdout_share: float
    explore_share: float
    seed: int


def plan_week(
    name: str, week: Week, rules: PlanRules, store: Store, settings: Settings, effects: pa.Table | None
) -> Plan:
    """The policy `name`'s plan of the week; `effects` is the truth's month-end action effects so far (only
    the oracle reads them)."""
    if name in (RETAIN, RETAIN_EXPLORE):
        share = rules.explore_share if name == RETAIN_EXPLORE else 0.0
        return make_plan(week, rules.capacity_hours, rules.holdout_share, rules.seed, share)
    if name == ORACLE:
        if effects is None:
            raise ValueError("the oracle plans from the truth's action effects")
        told = dataclasses.replace(week, values=-true_churn_effects(effects, week))
        return make_plan(told, rules.capacity_hours, rules.holdout_share, rules.seed)
    gains = plain_gains(week, store, settings)[name]
    held = draw_plan_holdout(week.account_ids, rules.holdout_share, rules.seed, week.week)
    hours = action_hours(week.actions, week.catalogue)
    choice = work_down(gains, week.allowed & ~held[:, None], hours, week.csm_ids, rules.capacity_hours)
    picked = np.zeros_like(week.values)
    rows = np.flatnonzero(choice >= 0)
    picked[rows, choice[rows]] = 1.0
    return make_plan(
        dataclasses.replace(week, values=picked), rules.capacity_hours, rules.holdout_share, rules.seed
    )


def true_churn_effects(effects: pa.Table, week: Week) -> np.ndarray:
    """(accounts, actions) true changes in churn probability at the latest month end before the week, in
    the week's account and action order; none for an account that month end did not see."""
    instant = pa.scalar(cutoff_instant(week.week), effects.schema.field("cutoff").type)
    before = effects.filter(pc.less_equal(effects["cutoff"], instant))
    churn = np.zeros((len(week.account_ids), len(week.actions)))
    if before.num_rows == 0:
        return churn
    latest = before.filter(pc.equal(before["cutoff"], pc.max(before["cutoff"]))).to_pandas()
    rows = pd.Index(week.account_ids).get_indexer(latest["account_id"])
    columns = pd.Index(week.actions).get_indexer(latest["action"])
    known = (rows >= 0) & (columns >= 0)
    churn[rows[known], columns[known]] = latest["churn_effect"].to_numpy()[known]
    return churn


def plain_gains(week: Week, store: Store, settings: Settings) -> dict[str, np.ndarray]:
    """(accounts, actions) gains of the rules and of the riskiest first, as the judge defines them: the
    week's feature rows (health score and band), each account's play over its eligible actions, and the
    uplift champion's baseline churn risk."""
    as_of = cutoff_instant(week.week)
    with duckdb.connect() as con:
        register_store(con, store)
        table = build_feature_table(con, [week.week], settings)
        taken = actions_last_taken(con, as_of)
    rows = table.to_pandas().set_index("account_id").reindex(week.account_ids).reset_index()
    records = cast(list[dict[str, Any]], rows.to_dict("records"))
    playbook = store_playbook(store, settings)
    verdicts = policy.verdicts(
        records, [taken.get(a, {}) for a in week.account_ids], [as_of] * len(records), playbook
    )
    places = policy.play_places(rows["health_band"].tolist(), verdicts, week.actions)
    return policy.plain_orders(rows["health_score"], week.inputs.risks["churn"], places)


def work_down(
    gain: np.ndarray, allowed: np.ndarray, hours: np.ndarray, owners: Sequence[str | None], capacity: float
) -> np.ndarray:
    """Each account's action column, or -1: allowed pairs taken highest gain first, one action per account,
    each only if its hours fit what its CSM has left (an account without a CSM: zero-hour actions only)."""
    masked = np.where(allowed & np.isfinite(gain), gain, -np.inf)
    left = {owner: capacity if owner is not None else 0.0 for owner in owners}
    choice = np.full(len(gain), -1)
    for flat in np.argsort(-masked, axis=None, kind="stable"):
        i, j = divmod(int(flat), masked.shape[1])
        if not np.isfinite(masked[i, j]):
            break
        if choice[i] >= 0 or hours[j] > left[owners[i]] + _SLACK:
            continue
        left[owners[i]] -= hours[j]
        choice[i] = j
    return choice


def schedule_rows(plan: Plan) -> pd.DataFrame:
    """The plan as the simulated team follows it: account, action (None when held out), holdout."""
    rows = plan.rows
    return pd.DataFrame(
        {
            "account_id": rows["account_id"],
            "action": rows["action"].mask(rows["holdout"].astype(bool)),
            "holdout": rows["holdout"].astype(bool),
        }
    )
