"""Incremental feature builds: a daily build after a year of history against a full build, on DuckDB.

    .venv/bin/python -m experiments.benchmarks.incremental [--sizes 1e7] [--cache DIR] [--seed 11]

The feature benchmark's simulated world (about N/1000 accounts x 365 days of 2025, cached under --cache)
is ingested into a store up to December 29, as the daily loop would have fed it, and built once. Then:

- the full build: `build_and_publish(..., full=True)`, every day rolled up from the events and every
  month-end cutoff computed;
- a mid-month day: December 29's events (and interventions) ingested, then an incremental build: one
  day rolled up, no cutoff computed (every cutoff lies before the new day);
- December 30 likewise; then December 31, whose events add the cutoff of December 31 (month ends up to
  the last event day are cutoffs): the worst daily build, one day rolled up and one cutoff computed over
  the stored roll-ups (those read only through the lookback, from its first day on).

Each time is `build_and_publish`'s own (reading, building and writing the feature table; no Feast),
on 2 DuckDB threads; a daily build's cost per new event is its time over the new day's events. Must hold:
each daily build costs at most 10% of the full build, and the last incremental table equals a full rebuild
of the same store row for row (categories, counts and flags exactly, other numbers to 1e-9); exit 1 if
not. `daily_builds` runs the same days on any engine the settings name: `make bench-spark` runs it on
Spark too.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from core.settings import Settings
from experiments.benchmarks.features import World, disagreements, simulated
from experiments.results import record
from features.run import FeatureBuild, build_and_publish
from features.stored import read_features
from ingest.run import ingest_path
from store.delta import Store

#: the days held back from the first ingest and fed one at a time: a mid-month day, the day before the
#: year's last month end and the month end's day
DAILY = (date(2025, 12, 29), date(2025, 12, 30), date(2025, 12, 31))
THREADS = 2
#: a daily build may cost this share of a full build
AIM = 0.10


@dataclass(frozen=True)
class DailyBuild:
    """One day's events ingested, then an incremental build."""

    day: str
    seconds: float
    share_of_full: float
    new_events: int
    #: the build's seconds over the new day's events
    seconds_per_new_event: float
    days_rolled_up: int
    cutoffs_computed: list[str]


@dataclass(frozen=True)
class DailyBuilds:
    """A full build after the history, the daily builds after it, and a full rebuild to check the last."""

    accounts: int
    cutoffs: int
    rows: int
    full_seconds: float
    full_again_seconds: float
    daily: list[DailyBuild]
    worst_share: float
    #: every daily build's seconds over every new day's events
    seconds_per_new_event: float
    equal_to_full: bool
    disagree: list[str]


def events_in(files: Iterable[Path]) -> int:
    """The rows of these Parquet files, from their footers."""
    return sum(pq.ParquetFile(path).metadata.num_rows for path in files)


def _instant(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _event_files(world: World, first: date | None, end: date) -> list[Path]:
    """The world's event files of the days in [first, end) (from the start when `first` is None)."""
    return [
        path
        for path in world.events
        if (day := date.fromisoformat(path.parent.name.split("=")[1])) < end
        and (first is None or day >= first)
    ]


def _part(world: World, folder: Path, first: date | None, end: date) -> Path:
    """The world's events and interventions in [first, end) (from the start when `first` is None), with
    the accounts snapshot, as a folder `ingest_path` reads."""
    (folder / "events").mkdir(parents=True, exist_ok=True)
    shutil.copy(world.accounts, folder / "accounts.parquet")
    for path in _event_files(world, first, end):
        (folder / "events" / f"{path.parent.name}-{path.name}").symlink_to(path)
    interventions = pq.read_table(world.interventions)
    ts = interventions["ts"]
    keep = pc.less(ts, pa.scalar(_instant(end), ts.type))
    if first is not None:
        keep = pc.and_(keep, pc.greater_equal(ts, pa.scalar(_instant(first), ts.type)))
    pq.write_table(interventions.filter(keep), folder / "interventions.parquet")
    return folder


def history_store(world: World, cache: Path) -> Store:
    """The world ingested up to the first daily day, kept under `cache` (ingesting takes minutes)."""
    folder = cache / f"{world.folder.name}-until-{DAILY[0]}"
    done = folder / "ingested.json"
    if not done.exists():
        shutil.rmtree(folder, ignore_errors=True)
        print(f"ingesting up to {DAILY[0]} into {folder} ...", file=sys.stderr)
        with tempfile.TemporaryDirectory() as parts:
            ingest_path(Store(folder / "store"), _part(world, Path(parts) / "base", None, DAILY[0]))
        done.write_text("{}")
    return Store(folder / "store")


def _timed(store: Store, settings: Settings, full: bool) -> tuple[FeatureBuild, float]:
    started = time.perf_counter()
    built = build_and_publish(store, settings, None, None, online=False, threads=THREADS, full=full)
    return built, time.perf_counter() - started


def _day(world: World, store: Store, settings: Settings, day: date, full_seconds: float) -> DailyBuild:
    """`day`'s events and interventions ingested into `store`, then an incremental build, timed."""
    with tempfile.TemporaryDirectory() as parts:
        ingest_path(store, _part(world, Path(parts), day, day + timedelta(days=1)))
    built, seconds = _timed(store, settings, full=False)
    new_events = events_in(_event_files(world, day, day + timedelta(days=1)))
    return DailyBuild(
        day=day.isoformat(),
        seconds=round(seconds, 2),
        share_of_full=round(seconds / full_seconds, 3),
        new_events=new_events,
        seconds_per_new_event=seconds / new_events,
        days_rolled_up=built.days_rolled_up,
        cutoffs_computed=[c.isoformat() for c in built.cutoffs_computed],
    )


def daily_builds(world: World, history: Store, settings: Settings, work: Path) -> DailyBuilds:
    """On `settings.engine`, from a copy of `history` (the world up to the first daily day) in `work`: a
    full build, each daily day's build, then a full rebuild the last daily table must equal."""
    store = Store(work / "store")
    shutil.copytree(history.root, store.root)
    settings = settings.model_copy(update={"home": store.root})
    full, full_seconds = _timed(store, settings, full=True)
    daily = [_day(world, store, settings, day, full_seconds) for day in DAILY]
    last = read_features(store).to_pandas()
    rebuilt, rebuilt_seconds = _timed(store, settings, full=True)
    bad = disagreements(last, read_features(store).to_pandas())
    return DailyBuilds(
        accounts=full.accounts,
        cutoffs=len(rebuilt.cutoffs),
        rows=rebuilt.rows,
        full_seconds=round(full_seconds, 2),
        full_again_seconds=round(rebuilt_seconds, 2),
        daily=daily,
        worst_share=max(d.share_of_full for d in daily),
        seconds_per_new_event=sum(d.seconds for d in daily) / sum(d.new_events for d in daily),
        equal_to_full=not bad,
        disagree=bad,
    )


def run(n_events: int, cache: Path, seed: int, work: Path) -> dict[str, Any]:
    world = simulated(n_events, cache, seed)
    built = daily_builds(world, history_store(world, cache), Settings(), work)
    return {"events": events_in(world.events), **asdict(built), "aim": AIM}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1e7", help="event counts, comma-separated [1e7]")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "retain-bench")
    parser.add_argument("--seed", type=int, default=11)
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    results = []
    for size in (int(float(s)) for s in args.sizes.split(",") if s.strip()):
        with tempfile.TemporaryDirectory() as work:
            result = run(size, args.cache, args.seed, Path(work))
        results.append(result)
        shares = ", ".join(
            f"{d['day']} {d['seconds']:.2f} s ({d['share_of_full']:.1%})" for d in result["daily"]
        )
        print(
            f"{result['events']:>12,} events  full {result['full_seconds']:.2f} s  daily: {shares}  "
            f"equal={result['equal_to_full']}",
            flush=True,
        )
    print(json.dumps(results, indent=2))
    record("incremental_features", "experiments.benchmarks.incremental", argv, results)
    held = all(r["equal_to_full"] and r["worst_share"] <= AIM for r in results)
    return 0 if held else 1


if __name__ == "__main__":
    raise SystemExit(main())
