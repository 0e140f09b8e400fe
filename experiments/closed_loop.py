"""The closed loop: a simulated year of a CS team following each policy's weekly plan, judged by the truth.

    .venv/bin/python -m experiments.closed_loop [--accounts 2000] [--quarters 1] [--seeds 101]
        [--capacity-hours 8] [--policies rules,highest_risk,retain,retain_explore,oracle] [--out FILE.json]

Per seed, one world is simulated for a warm-up year of the team's own targeting, ingested into a store, and
an uplift champion trained on it. Each policy then gets its own copy of that world and runs it forward a
week at a time (`simulate.stepped`): the week's features and plan from what the store holds so far
(`products.plan.read_week`, `experiments.closed_loop_policies`), the plan recorded and followed by the
simulated team in place of its own targeting, the week simulated and ingested. On the first plan of each
month the learning policies (`retain`, `retain_explore`) retrain the uplift champion on their own world's
data and promote it. After the last plan week the world runs on (the team's own targeting again) until every
plan's 90-day labels have matured, so that each quarter's holdout estimate can be set beside the truth
(`experiments.closed_loop_measure`). Seeds under 100 are the tests'; report on others.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path

from tqdm import tqdm

from core.settings import Settings
from experiments.closed_loop_measure import Quarter, WeekTruth, quarter, weekly_truth
from experiments.closed_loop_policies import (
    HIGHEST_RISK,
    LEARNING,
    ORACLE,
    POLICIES,
    RETAIN,
    RETAIN_EXPLORE,
    RULES,
    PlanRules,
    plan_week,
    schedule_rows,
)
from experiments.results import RESULTS_DIR, record
from ingest.run import ingest_path
from products.plan import PlanSummary, read_week, record_plan
from products.upkeep.run import compact
from registry.aliases import CHAMPION, set_champion
from registry.tracking import client, log_and_register
from simulate import SimConfig, SteppedSimulation
from store.delta import Store
from store.plan_table import recorded_plans
from training.causal.run import train_uplift
from training.config import UpliftConfig

WEEK = timedelta(days=7)
#: after the last plan week: the churn label's horizon and renewal grace (97 days) and a week of late events
TAIL_DAYS = 98
UPLIFT = "uplift"


@dataclass(frozen=True)
class LoopConfig:
    """One closed-loop run: the world's size and start, the plans' rules, and how fast each model learns."""

    accounts: int
    quarters: int
    capacity_hours: float
    holdout_share: float = 0.1
    explore_share: float = 0.05
    weeks_per_quarter: int = 13
    #: days of the team's own targeting before the first plan (a whole number of weeks)
    warmup_days: int = 364
    start: date = date(2024, 7, 1)
    #: the uplift learners' settings (folds, trust threshold); the seed is the run's
    uplift: UpliftConfig = field(default_factory=UpliftConfig)

    @property
    def first_week(self) -> date:
        return self.start + timedelta(days=self.warmup_days)

    @property
    def weeks(self) -> list[date]:
        return [self.first_week + k * WEEK for k in range(self.quarters * self.weeks_per_quarter)]

    def simulation(self, seed: int) -> SimConfig:
        days = self.warmup_days + 7 * len(self.weeks) + TAIL_DAYS
        return SimConfig(accounts=self.accounts, days=days, seed=seed, start=self.start)


@dataclass(frozen=True)
class Timings:
    """Where a policy-seed's wall time went, in seconds (the seed's shared warm-up is counted apart)."""

    total: float
    weeks: float
    slowest_week: float
    #: the months' upkeep: compaction, and the retrains where the policy learns
    monthly: float
    retrains: int
    tail: float
    measure: float


@dataclass(frozen=True)
class PolicyRun:
    """One policy on one seed: its quarters and its weeks, by the truth and by its holdout."""

    policy: str
    seed: int
    quarters: list[Quarter]
    weeks: list[WeekTruth]
    seconds: Timings


@dataclass
class World:
    """A policy's copy of the seed's world: the stepped simulation and the store it feeds."""

    sim: SteppedSimulation
    store: Store
    settings: Settings


def settings_for(store: Store, seed: int) -> Settings:
    return Settings(home=store.root, seed=seed)


def retrain(world: World, config: LoopConfig, seed: int) -> None:
    """Fit the uplift learners on everything the store holds, register the model and make it champion (the
    loop measures what learning gains, so no gate holds it back)."""
    trained = train_uplift(world.store, world.settings, config.uplift.model_copy(update={"seed": seed}))
    registered = log_and_register(world.store, world.settings, trained, UPLIFT)
    if CHAMPION not in registered.aliases:  # a name's first version is champion already
        reason = "closed loop: the monthly retrain"
        set_champion(client(world.store, world.settings), UPLIFT, registered.version, reason, forced=True)


def monthly(name: str, world: World, config: LoopConfig, seed: int) -> None:
    """The month's upkeep before its first plan: the store compacted (a week's ingest adds small files that
    every read pays for), and the uplift champion retrained where the policy learns."""
    compact(world.store, world.settings)
    if name in LEARNING:
        retrain(world, config, seed)


def warm_up(config: LoopConfig, seed: int, root: Path) -> Store:
    """The seed's world up to the first plan week, ingested into `root/store`, with an uplift champion."""
    sim = SteppedSimulation.start(config.simulation(seed), root / "sim")
    store = Store(root / "store")
    world = World(sim, store, settings_for(store, seed))
    ingest_path(store, sim.advance(config.first_week).path)
    retrain(world, config, seed)
    return store


def fork(config: LoopConfig, seed: int, base: Store, root: Path) -> World:
    """A policy's own world: the warm-up store copied, and the simulation replayed to the first plan week
    (the same seed gives the same world, so its warm-up increment is the one the store already holds)."""
    shutil.copytree(base.root, root / "store")
    sim = SteppedSimulation.start(config.simulation(seed), root / "sim")
    sim.advance(config.first_week)
    store = Store(root / "store")
    return World(sim, store, settings_for(store, seed))


def step_week(name: str, world: World, week: date, rules: PlanRules) -> PlanSummary:
    """Plan the week by the policy, record the plan, have the team follow it, simulate and ingest the
    week; the plan's summary."""
    effects = world.sim.truth().action_effects if name == ORACLE else None
    plan = plan_week(
        name, read_week(world.store, world.settings, week), rules, world.store, world.settings, effects
    )
    record_plan(world.store, plan)
    world.sim.follow(week, schedule_rows(plan))
    ingest_path(world.store, world.sim.advance(week + WEEK).path)
    return plan.summary


def run_policy(name: str, config: LoopConfig, seed: int, world: World) -> PolicyRun:
    """The policy's weeks, each month's retrain where it learns, the tail, then its quarters measured."""
    started = time.perf_counter()
    rules = PlanRules(config.capacity_hours, config.holdout_share, config.explore_share, seed)
    monthly_s, retrains, week_s, hours = 0.0, 0, [], []
    bar = tqdm(config.weeks, desc=f"{name} seed {seed}", unit="week", file=sys.stderr, disable=False)
    for k, week in enumerate(bar):
        if k > 0 and week.month != config.weeks[k - 1].month:
            t = time.perf_counter()
            monthly(name, world, config, seed)
            monthly_s, retrains = monthly_s + time.perf_counter() - t, retrains + (name in LEARNING)
        t = time.perf_counter()
        planned = step_week(name, world, week, rules)
        week_s.append(time.perf_counter() - t)
        used = sum(planned.hours_used.values())
        hours.append((week, used, config.capacity_hours * len(planned.hours_used)))
        bar.set_postfix_str(f"{week}: {planned.planned_actions} actions, {used:.0f} h, {week_s[-1]:.1f} s")
    t = time.perf_counter()
    ingest_path(world.store, world.sim.advance(world.sim.end).path)
    tail = time.perf_counter() - t
    world.sim.write_truth()
    t = time.perf_counter()
    truth = weekly_truth(world.sim.truth().plan_effects, recorded_plans(world.store), hours)
    size = config.weeks_per_quarter
    quarters = [
        quarter(q + 1, truth[q * size : (q + 1) * size], world.store, world.settings, seed)
        for q in range(config.quarters)
    ]
    seconds = Timings(
        total=round(time.perf_counter() - started, 1),
        weeks=round(sum(week_s), 1),
        slowest_week=round(max(week_s), 1),
        monthly=round(monthly_s, 1),
        retrains=retrains,
        tail=round(tail, 1),
        measure=round(time.perf_counter() - t, 1),
    )
    return PolicyRun(name, seed, quarters, truth, seconds)


def run_seed(config: LoopConfig, seed: int, policies: list[str], root: Path) -> tuple[list[PolicyRun], float]:
    """Every policy on the seed's world, one after another; and the shared warm-up's seconds."""
    t = time.perf_counter()
    base = warm_up(config, seed, root / "warm-up")
    warm = round(time.perf_counter() - t, 1)
    print(f"seed {seed}: warm-up {warm:.0f} s", file=sys.stderr)
    runs = []
    for name in policies:
        runs.append(run_policy(name, config, seed, fork(config, seed, base, root / name)))
        shutil.rmtree(root / name / "sim" / "increments", ignore_errors=True)
    return runs, warm


@dataclass(frozen=True)
class PolicySummary:
    """A policy over every seed: what it truly kept, its share of the oracle, how often its holdout held."""

    policy: str
    #: per seed, summed over the quarters
    true_churn_averted: list[float]
    true_arr_kept: list[float]
    #: per quarter, its true churn averted over the oracle's on the same seeds (None: no oracle run)
    share_of_oracle_by_quarter: list[float | None]
    #: quarters whose holdout 95% interval holds the true churn averted, of those with an interval
    covered: int
    judged: int


@dataclass(frozen=True)
class MustHold:
    """The issue's bar as measured (None where a policy it needs was not run): retain_explore's churn
    averted over the baselines' and the oracle's, whether it learns (last quarter's share of the oracle above
    the first's), the holdout's coverage, and what exploration gained over the same plan without it."""

    explore_over_rules: float | None
    explore_over_highest_risk: float | None
    explore_share_of_oracle: float | None
    explore_learns: bool | None
    coverage: float | None
    #: retain_explore minus retain, per seed: churn averted and ARR kept (positive: exploration paid)
    exploration_gain_churn: list[float] | None
    exploration_gain_arr: list[float] | None
    holds: bool | None


def _total(runs: list[PolicyRun], name: str) -> float | None:
    """The policy's true churn averted over every seed and quarter; None when it did not run."""
    mine = [q for r in runs if r.policy == name for q in r.quarters]
    return float(sum(q.true_churn_averted for q in mine)) if mine else None


def _ratio(top: float | None, bottom: float | None) -> float | None:
    return None if top is None or bottom is None or bottom <= 0 else round(top / bottom, 3)


def policy_summary(runs: list[PolicyRun], name: str, quarters: int) -> PolicySummary:
    """The policy's figures over the seeds, and its share of the oracle quarter by quarter."""
    mine = [r for r in runs if r.policy == name]
    shares = [
        _ratio(
            sum(r.quarters[q].true_churn_averted for r in mine),
            sum(r.quarters[q].true_churn_averted for r in runs if r.policy == ORACLE) or None,
        )
        for q in range(quarters)
    ]
    judged = [q.covered for r in mine for q in r.quarters if q.covered is not None]
    return PolicySummary(
        policy=name,
        true_churn_averted=[round(sum(q.true_churn_averted for q in r.quarters), 2) for r in mine],
        true_arr_kept=[round(sum(q.true_arr_kept for q in r.quarters), 0) for r in mine],
        share_of_oracle_by_quarter=shares,
        covered=sum(judged),
        judged=len(judged),
    )


def must_hold(runs: list[PolicyRun], summaries: list[PolicySummary]) -> MustHold:
    explore = _total(runs, RETAIN_EXPLORE)
    by_name = {s.policy: s for s in summaries}
    shares = by_name[RETAIN_EXPLORE].share_of_oracle_by_quarter if RETAIN_EXPLORE in by_name else []
    first, last = (shares[0], shares[-1]) if len(shares) > 1 else (None, None)
    learns = None if first is None or last is None else last > first
    judged = sum(s.judged for s in summaries)
    coverage = round(sum(s.covered for s in summaries) / judged, 3) if judged else None
    gains = {}
    if RETAIN in by_name and RETAIN_EXPLORE in by_name:
        for f in ("true_churn_averted", "true_arr_kept"):
            pairs = zip(getattr(by_name[RETAIN_EXPLORE], f), getattr(by_name[RETAIN], f), strict=True)
            gains[f] = [round(a - b, 2) for a, b in pairs]
    found = MustHold(
        explore_over_rules=_ratio(explore, _total(runs, RULES)),
        explore_over_highest_risk=_ratio(explore, _total(runs, HIGHEST_RISK)),
        explore_share_of_oracle=_ratio(explore, _total(runs, ORACLE)),
        explore_learns=learns,
        coverage=coverage,
        exploration_gain_churn=gains.get("true_churn_averted"),
        exploration_gain_arr=gains.get("true_arr_kept"),
        holds=None,
    )
    checks = [
        (found.explore_over_rules, 2.5),
        (found.explore_over_highest_risk, 2.5),
        (found.explore_share_of_oracle, 0.6),
        (found.coverage, 0.9),
    ]
    known = [v >= bar for v, bar in checks if v is not None] + ([learns] if learns is not None else [])
    return replace(found, holds=all(known) if len(known) == len(checks) + 1 else None)


@dataclass(frozen=True)
class Report:
    """The run's JSON: its configuration, every policy-seed's quarters and weeks, and the summary."""

    accounts: int
    quarters: int
    weeks_per_quarter: int
    warmup_days: int
    capacity_hours: float
    holdout_share: float
    explore_share: float
    seeds: list[int]
    warm_up_seconds: dict[int, float]
    runs: list[PolicyRun]
    policies: list[PolicySummary]
    must_hold: MustHold


def run(config: LoopConfig, seeds: list[int], policies: list[str], keep: Path | None = None) -> Report:
    """Every seed's world, each policy on its own copy, then the summary over all of them; with `keep`, each
    world's store and truth stay in `keep/seed-<seed>/<policy>/` (the warm-up's in `warm-up/`)."""
    runs: list[PolicyRun] = []
    warm: dict[int, float] = {}
    for seed in seeds:
        with tempfile.TemporaryDirectory(prefix="retain-closed-loop-") as tmp:
            root = Path(tmp) if keep is None else keep / f"seed-{seed}"
            done, warm[seed] = run_seed(config, seed, policies, root)
        runs += done
        for r in done:
            averted = sum(q.true_churn_averted for q in r.quarters)
            print(
                f"seed {seed} {r.policy}: true churn averted {averted:.1f}, {r.seconds.total:.0f} s",
                file=sys.stderr,
            )
    summaries = [policy_summary(runs, name, config.quarters) for name in policies]
    return Report(
        accounts=config.accounts,
        quarters=config.quarters,
        weeks_per_quarter=config.weeks_per_quarter,
        warmup_days=config.warmup_days,
        capacity_hours=config.capacity_hours,
        holdout_share=config.holdout_share,
        explore_share=config.explore_share,
        seeds=seeds,
        warm_up_seconds=warm,
        runs=runs,
        policies=summaries,
        must_hold=must_hold(runs, summaries),
    )


def parser() -> argparse.ArgumentParser:
    found = argparse.ArgumentParser(
        prog="python -m experiments.closed_loop",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    found.add_argument("--accounts", type=int, default=2_000)
    found.add_argument("--quarters", type=int, default=1)
    found.add_argument("--seeds", default="101", help="comma-separated; seeds under 100 are the tests'")
    found.add_argument("--capacity-hours", type=float, default=8.0, help="each CSM's hours a week")
    found.add_argument("--policies", default=",".join(POLICIES))
    found.add_argument("--out", type=Path, default=RESULTS_DIR / "closed_loop.json")
    found.add_argument("--holdout-share", type=float, default=0.1)
    found.add_argument("--explore-share", type=float, default=0.05, help="retain_explore's share")
    found.add_argument("--weeks-per-quarter", type=int, default=13, help="fewer for a quick look")
    found.add_argument("--warmup-days", type=int, default=364, help="the team's own targeting first")
    found.add_argument("--keep", type=Path, help="keep each world's store and truth in this folder")
    found.add_argument("--folds", type=int, default=UpliftConfig().folds, help="uplift cross-fitting folds")
    found.add_argument("--min-effective-treated", type=float, default=UpliftConfig().min_effective_treated)
    return found


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    asked = parser().parse_args(args)
    policies = asked.policies.split(",")
    unknown = sorted(set(policies) - set(POLICIES))
    if unknown or asked.warmup_days % 7:
        parser().error(f"unknown policies {unknown}" if unknown else "--warmup-days must be whole weeks")
    config = LoopConfig(
        accounts=asked.accounts,
        quarters=asked.quarters,
        capacity_hours=asked.capacity_hours,
        holdout_share=asked.holdout_share,
        explore_share=asked.explore_share,
        weeks_per_quarter=asked.weeks_per_quarter,
        warmup_days=asked.warmup_days,
        uplift=UpliftConfig(folds=asked.folds, min_effective_treated=asked.min_effective_treated),
    )
    report = run(config, [int(s) for s in asked.seeds.split(",")], policies, asked.keep)
    out = record(asked.out.stem, "experiments.closed_loop", args, asdict(report), asked.out.parent)
    print(json.dumps(asdict(report.must_hold), indent=2))
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
