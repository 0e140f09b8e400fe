"""The drift monitor over several simulations: how often it raises an alarm on a world that did not change
(false alarms), and how soon it names a product release that did (detection delay).

Each seed gives two worlds that are the same until the release: one undrifted, one where a release on
`--release` folds two product features into two others and counts each use 1.5 times
(`simulate/drift.py`). Each world is simulated, ingested and featurised, a churn champion is trained
on it as the integration test does (`tests/integration/test_monitoring.py`), and the monitor's drift section
(`products.monitor.run.measure`) is read: PSI of every feature at every monthly cutoff after the champion's
training window, an alarm where a feature that is no clock has drifted at a cutoff and the one before.
The same PSI values are judged twice: at the monitor's drifted level (`products.monitor.drift.DRIFTED`), and
at the usual reading of PSI (0.25), which shows why the monitor draws its line higher.

- undrifted: every alarm is false; the rate is counted per world and per (feature, cutoff) pair that could
  alarm (a non-clock feature at a cutoff after the window that has a cutoff before it in the series).
- drifted: the delay counts cutoffs from the first that sees the release (0: alarmed there; 1: the next,
  the earliest the rule of two cutoffs running allows for a change that starts after the cutoff before);
  an alarm on a feature the release cannot move, or before the release, is false.

    .venv/bin/python -m experiments.monitor_drift [--seeds 1,2,...,20] [--accounts 400] [--days 420]
        [--release 2025-05-20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

from scipy.stats import binomtest

from core.settings import Settings
from experiments.results import record
from features.definitions import FEATURE_NAMES
from features.run import build_and_publish
from ingest.run import ingest_path
from products.monitor.drift import DRIFTED, alarmed
from products.monitor.run import measure
from products.monitor.schema import InputDrift
from registry.tracking import log_and_register
from simulate import Drift, SimConfig, simulate_to
from store.delta import Store
from training.config import TrainConfig
from training.run import train_model

START = date(2024, 7, 1)
#: the integration test's champion: quick to train, and its window is all the drift section reads
TRAIN = TrainConfig(n_trials=2, plots=False, min_train_rows=200, min_window_positives=5)
#: the columns that read product feature use, all a release can move: uses (features/sql/activity.sql via
#: daily.sql, and their week-over-week and 30-over-30 changes), distinct and core features used
#: (adoption.sql, core_catalogue.sql, feature_rows.sql), and the health score over the core-feature share
#: (health.sql: engagement, the score, its band). Errors and nudges name a feature too, but no column
#: reads which.
RELEASE_MOVES = frozenset(
    {
        "feature_uses_7d",
        "feature_uses_30d",
        "feature_uses_90d",
        "feature_uses_wow",
        "feature_uses_30v30",
        "feature_uses_trend_12w",
        "feature_uses_volatility_12w",
        "feature_uses_per_session_30d",
        "features_used_7d",
        "features_used_30d",
        "features_used_90d",
        "core_feature_share_30d",
        "core_features_unused_7d",
        "health_engagement",
        "health_score",
        "health_band",
    }
)
assert set(FEATURE_NAMES) >= RELEASE_MOVES, "a feature the release moves was renamed in the catalogue"
#: the alarm levels judged from the same PSI values: the monitor's, and the usual reading of PSI
THRESHOLDS = {"monitor": DRIFTED, "usual_reading": 0.25}


@dataclass(frozen=True)
class Reading:
    """A feature's PSI at a cutoff (for an alarm: the cutoff it was raised at)."""

    feature: str
    cutoff: str
    psi: float


@dataclass(frozen=True)
class Undrifted:
    """An unchanged world: every alarm is a false one."""

    reference_end: str
    alarms: list[Reading]
    false_alarm: bool
    #: (non-clock feature, cutoff) pairs that could alarm: the first cutoff after the window has none before
    pairs: int
    false_alarms_per_pair: float
    #: the largest PSI of a non-clock feature, alarmed or not: how close the world came to an alarm
    max_psi: Reading


@dataclass(frozen=True)
class Drifted:
    """A world with a release: when the monitor named it, on which features, and what else it alarmed."""

    reference_end: str
    #: the first cutoff after the release day (its features see at least one released day)
    first_seeing: str | None
    #: the first cutoff with an alarm on a feature the release moves
    first_alarm: str | None
    #: cutoffs from `first_seeing` to `first_alarm`; None: never alarmed
    delay: int | None
    within_one: bool
    alarmed_at_first: list[str]
    alarmed: list[str]
    #: alarms on features the release cannot move, or before it
    false_alarms: list[Reading]


@dataclass(frozen=True)
class SeedRun:
    seed: int
    undrifted: Undrifted
    drifted: Drifted


@dataclass(frozen=True)
class Summary:
    """Over the seeds; the 95% intervals are Clopper-Pearson's (exact) on k of n worlds."""

    worlds: int
    false_alarm_worlds: int
    false_alarm_worlds_ci95: tuple[float, float]
    false_alarms: int
    pairs: int
    false_alarms_per_pair: float
    detected_within_one: int
    detected_within_one_ci95: tuple[float, float]
    #: per seed, in seed order; None: the release was never alarmed
    delays: list[int | None]
    median_delay: float | None
    drifted_false_alarm_worlds: int
    drifted_false_alarm_features: list[str]


def monitored(work: Path, config: SimConfig) -> InputDrift:
    """Simulate `config` into `work`, build its store, train a churn champion and return the drift section.
    The features are published online too: training reads its rows through the store's Feast repo."""
    sim, store = work / "sim", Store(work / "store")
    settings = Settings(home=store.root)
    simulate_to(config, sim)
    ingest_path(store, sim)
    build_and_publish(store, settings, None, None)
    log_and_register(store, settings, train_model(store, settings, "churn", TRAIN), "churn")
    return measure(store, settings).drift


def _readings(drift: InputDrift, threshold: float) -> list[Reading]:
    """The alarms the monitor raises with `threshold` as its drifted level (at DRIFTED: its own)."""
    pairs = alarmed(drift.values, drift.clock_features, threshold)
    return [Reading(now.feature, now.cutoff, now.psi) for _, now in pairs]


def _later_cutoffs(drift: InputDrift) -> list[str]:
    return sorted({v.cutoff for v in drift.values})


def judge_undrifted(drift: InputDrift, threshold: float) -> Undrifted:
    watched = [f for f in drift.features if f not in drift.clock_features]
    pairs = len(watched) * max(len(_later_cutoffs(drift)) - 1, 0)
    top = max((v for v in drift.values if v.feature in watched), key=lambda v: v.psi)
    alarms = _readings(drift, threshold)
    return Undrifted(
        reference_end=max(drift.reference_cutoffs),
        alarms=alarms,
        false_alarm=bool(alarms),
        pairs=pairs,
        false_alarms_per_pair=len(alarms) / pairs if pairs else 0.0,
        max_psi=Reading(top.feature, top.cutoff, top.psi),
    )


def judge_drifted(drift: InputDrift, release: date, threshold: float) -> Drifted:
    after = release.isoformat()
    reference_end = max(drift.reference_cutoffs)
    if reference_end >= after:
        raise SystemExit(f"the champion's window reaches {reference_end}, past the release {after}")
    seeing = [c for c in _later_cutoffs(drift) if c > after]
    alarms = _readings(drift, threshold)
    found = [a for a in alarms if a.feature in RELEASE_MOVES and a.cutoff > after]
    first = min((a.cutoff for a in found), default=None)
    delay = None if first is None else seeing.index(first)
    return Drifted(
        reference_end=reference_end,
        first_seeing=seeing[0] if seeing else None,
        first_alarm=first,
        delay=delay,
        within_one=delay is not None and delay <= 1,
        alarmed_at_first=sorted(a.feature for a in found if a.cutoff == first),
        alarmed=sorted({a.feature for a in found}),
        false_alarms=[a for a in alarms if a not in found],
    )


def one_seed(seed: int, accounts: int, days: int, release: date) -> dict[str, InputDrift]:
    """The drift sections of the undrifted and the drifted world of one seed, each built in a directory
    of its own."""
    drifts: dict[str, Drift | None] = {"undrifted": None, "drifted": Drift("release", release)}
    sections = {}
    for name, drift in drifts.items():
        with tempfile.TemporaryDirectory(prefix=f"retain-monitor-drift-{seed}-") as tmp:
            sections[name] = monitored(Path(tmp), SimConfig(accounts, days, seed, START, drift=drift))
    return sections


def judged(seed: int, sections: dict[str, InputDrift], release: date, threshold: float) -> SeedRun:
    undrifted = judge_undrifted(sections["undrifted"], threshold)
    return SeedRun(seed, undrifted, judge_drifted(sections["drifted"], release, threshold))


def _ci95(k: int, n: int) -> tuple[float, float]:
    interval = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    return round(float(interval.low), 4), round(float(interval.high), 4)


def summarise(runs: list[SeedRun]) -> Summary:
    n = len(runs)
    false_worlds = sum(r.undrifted.false_alarm for r in runs)
    false_alarms = sum(len(r.undrifted.alarms) for r in runs)
    pairs = sum(r.undrifted.pairs for r in runs)
    detected = sum(r.drifted.within_one for r in runs)
    delays = [r.drifted.delay for r in runs]
    found = [d for d in delays if d is not None]
    return Summary(
        worlds=n,
        false_alarm_worlds=false_worlds,
        false_alarm_worlds_ci95=_ci95(false_worlds, n),
        false_alarms=false_alarms,
        pairs=pairs,
        false_alarms_per_pair=false_alarms / pairs if pairs else 0.0,
        detected_within_one=detected,
        detected_within_one_ci95=_ci95(detected, n),
        delays=delays,
        median_delay=statistics.median(found) if found else None,
        drifted_false_alarm_worlds=sum(bool(r.drifted.false_alarms) for r in runs),
        drifted_false_alarm_features=sorted({a.feature for r in runs for a in r.drifted.false_alarms}),
    )


def table(runs: list[SeedRun], summary: Summary) -> str:
    """Seed by seed, then the summary, for a reader at the terminal."""
    head = f"{'seed':>4}  {'false alarms':>12}  {'max PSI (feature at cutoff)':<44}  {'seen':<10}  "
    head += f"{'alarmed':<10}  {'delay':>5}  drifted world's false alarms"
    lines = [head]
    for r in runs:
        u, d = r.undrifted, r.drifted
        top = f"{u.max_psi.psi:.3f} {u.max_psi.feature} at {u.max_psi.cutoff}"
        wrong = ", ".join(f"{a.feature} at {a.cutoff}" for a in d.false_alarms) or "none"
        delay = "never" if d.delay is None else str(d.delay)
        lines.append(
            f"{r.seed:>4}  {len(u.alarms):>12}  {top:<44}  {d.first_seeing or '-':<10}  "
            f"{d.first_alarm or '-':<10}  {delay:>5}  {wrong}"
        )
    s = summary
    lines += [
        "",
        f"false-alarm worlds {s.false_alarm_worlds}/{s.worlds} (95% CI {s.false_alarm_worlds_ci95[0]:.3f} to "
        f"{s.false_alarm_worlds_ci95[1]:.3f}); {s.false_alarms} false alarms in {s.pairs} pairs",
        f"release alarmed within one cutoff {s.detected_within_one}/{s.worlds} (95% CI "
        f"{s.detected_within_one_ci95[0]:.3f} to {s.detected_within_one_ci95[1]:.3f}); median delay "
        f"{s.median_delay}",
        f"drifted worlds with a false alarm {s.drifted_false_alarm_worlds}/{s.worlds}: "
        f"{', '.join(s.drifted_false_alarm_features) or 'none'}",
    ]
    return "\n".join(lines)


def seed_lines(runs: list[SeedRun]) -> dict[str, dict[str, str]]:
    """Per seed, in words: the undrifted world's alarms and largest PSI, the drifted world's first alarm
    and any false one; one line each, so the results page stays readable."""

    def said(readings: list[Reading]) -> str:
        return ", ".join(f"{r.feature} at {r.cutoff} ({r.psi:.2f})" for r in readings) or "none"

    return {
        str(r.seed): {
            "undrifted_alarms": said(r.undrifted.alarms),
            "undrifted_max_psi": said([r.undrifted.max_psi]),
            "drifted_first_alarm": f"{r.drifted.first_alarm} ({', '.join(r.drifted.alarmed_at_first)})",
            "drifted_false_alarms": said(r.drifted.false_alarms),
        }
        for r in runs
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", default=",".join(str(s) for s in range(1, 21)))
    parser.add_argument("--accounts", type=int, default=400)
    parser.add_argument("--days", type=int, default=420)
    parser.add_argument("--release", type=date.fromisoformat, default=date(2025, 5, 20))
    argv = sys.argv[1:]
    args = parser.parse_args(argv)
    started = time.perf_counter()
    sections = {}
    for seed in [int(s) for s in args.seeds.split(",")]:
        sections[seed] = one_seed(seed, args.accounts, args.days, args.release)
        print(f"seed {seed}: done at {time.perf_counter() - started:.0f} s", file=sys.stderr)
    levels = {}
    for name, threshold in THRESHOLDS.items():
        runs = [judged(seed, found, args.release, threshold) for seed, found in sections.items()]
        summary = summarise(runs)
        print(f"\n{name} (drifted at PSI {threshold})\n{table(runs, summary)}")
        levels[name] = {"threshold": threshold, "summary": asdict(summary), "seeds": seed_lines(runs)}
    figures = {
        "world": {"accounts": args.accounts, "days": args.days, "start": START, "release": args.release},
        "release_moves": sorted(RELEASE_MOVES),
        **levels,
        "seconds": round(time.perf_counter() - started),
    }
    record("monitor_drift", "experiments.monitor_drift", argv, figures)


if __name__ == "__main__":
    main()
