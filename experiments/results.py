"""Stamped results, and the page that shows them.

Every benchmark and evaluation under `experiments/` writes its figures to `experiments/results/<name>.json`
with the date, the commit (and whether the checkout had uncommitted changes) and the command that produced
them (`record`), besides printing them. `python -m experiments.results` (`make results`) renders every such
file into `docs/results.md`, one section per file: figures are never typed by hand into the documentation,
so each one can be traced to the run that measured it and re-measured by its command.

A section leads with a sentence and a short table of its headline figures, each beside its peer and its aim
(`experiments.results_sections`, `experiments.results_studies`), names the run's stamp, links its JSON
(every figure, not copied onto the page) and shows a plot where a curve says more than a row
(`experiments.results_plots`, PNGs beside the page). The same JSON gives the same page.

    .venv/bin/python -m experiments.results [--results DIR] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from experiments.results_plots import PLOTS
from experiments.results_sections import BUILDERS as SECTIONS
from experiments.results_sections import NONE_SET, Lead, Row, headline_table, table
from experiments.results_studies import BUILDERS as STUDIES

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "experiments" / "results"
PAGE = ROOT / "docs" / "results.md"
#: each run's headline figures, by its name
BUILDERS = {**SECTIONS, **STUDIES}


@dataclass(frozen=True)
class Source:
    """A run that writes `experiments/results/<name>.json`: what it measures and how to run it."""

    name: str
    title: str
    run: str
    measures: str
    #: the bar its headline figures are held to, in words: shown while the run has not been made
    aim: str = NONE_SET


#: The known runs, in the page's order; a JSON file of any other name gets a section too, after these.
SOURCES: tuple[Source, ...] = (
    Source(
        "demo",
        "make demo, step by step",
        "make bench-demo",
        "a fresh clone's install and every `make demo` step (2,000 accounts x 540 days) until the API "
        "answers the printed curl, then the causal report again without the fits it shares with uplift "
        "training",
    ),
    Source(
        "features",
        "Feature build throughput",
        "make bench-features",
        "the SQL feature build on DuckDB against a pandas groupby build of every feature, on simulated "
        "events; the two must agree on every column",
    ),
    Source(
        "train",
        "Training run and scoring with reasons",
        "make bench-train",
        "wall time of simulate -> features -> train both models -> register, the models' test metrics "
        "beside the baselines and the oracle, then batch scoring with reasons against shap.TreeExplainer",
    ),
    Source(
        "serving",
        "Serving latency and throughput",
        "make bench-serve",
        "`GET /v1/accounts/{id}/risk?actions=3` (uplift-ranked actions) on `retain serve` against `mlflow "
        "models serve`, same churn champion: p50/p99 at concurrency 1, requests/s at 16, one and two workers",
    ),
    Source(
        "cockpit",
        "Cockpit page times",
        "make bench-cockpit",
        "the cockpit's book and account pages for a book of about 5,000 active accounts, against a 300 ms "
        "budget",
        "first render < 300 ms",
    ),
    Source(
        "uplift",
        "Uplift training and ranking",
        "make bench-uplift",
        "uplift training for the 12 actions, ranking every active account by expected value against the "
        "rules ranking, and the policy's true churn averted beside the oracle's",
    ),
    Source(
        "store",
        "Store ingest and intervention writes",
        "make bench-store",
        "the Delta store against the previous manifest store (commit 468c718): ingest events/s and peak "
        "memory at 1M and 10M simulated events, each run its own process; and `POST /v1/interventions` "
        "p50/p99 on `retain serve` at 100, 1,000 and 10,000 interventions recorded (the peer's levels "
        "capped by its time allowed)",
    ),
    Source(
        "sql_ingest",
        "Ingest from a database",
        "make bench-sql",
        "simulated events in PostgreSQL ingested by `retain ingest --from-sql` at about 1e5 and 1e6 "
        "events beside the same input's file ingest, then again after 10,000 new events",
        "peak RSS at 1e6 over at 1e5 < 1.5×; the second run reads only the new rows",
    ),
    Source(
        "spark",
        "Spark against the embedded engines",
        "make bench-spark",
        "Spark local[2] and a two-worker cluster (Spark Connect) against DuckDB building features from the "
        "same store at each size run, then daily builds after each size's history against the full build; "
        "`score_store` on Spark against one process; the uplift fits on one process, two processes and "
        "Spark's executors",
        "the same rows, scores and estimates as the peers; after 50M events a daily build ≤ 10% of the same "
        "engine's full build, and equal to it",
    ),
    Source(
        "byo",
        "Bring-your-own tables against an AutoML peer",
        "make bench-byo",
        "three churn-like tables made by `experiments/benchmarks/byo.py` (categorical columns, missing "
        "values, interactions), split 70/30: Retain's table mode on a time budget, FLAML on the same "
        "budget, LightGBM's defaults and a logistic regression, on the same rows and one thread; held-out "
        "AUC and wall seconds",
    ),
    Source(
        "churn",
        "The store's churn model against its peers on unseen worlds",
        "make bench-churn",
        "per seed no test or tuning used (201-205; 3,000 accounts x 600 days), `retain train --model churn` "
        "on a fresh store: AUC, PR-AUC and top-decile lift on the latest matured test cutoff of the model, "
        "the logistic baseline on the same features and rows, the health formula and the oracle (the "
        "simulator's truth, with the model's figures on the rows it covers)",
    ),
    Source(
        "soak",
        "Soak under faults",
        "make soak",
        "`retain serve` with two workers for 10 minutes at concurrency 16, mixing risk, next-best actions, "
        "batch scores, feedback and reloads, through five faults in turn: the decision log immutable, the "
        "online store's file gone, the newest events files gone, the log's disk full (with a restart) and "
        "an online store with overwritten pages",
    ),
    Source(
        "uplift_seeds",
        "Uplift against the truth over several seeds",
        "python -m experiments.uplift_seeds",
        "per seed, interval coverage of each action's true average effect, each policy's share of the "
        "oracle's churn averted, each action's estimated churn share beside the truth's, and the usual "
        "course against never acting measured on the simulator's default 10% quarterly holdout",
    ),
    Source(
        "uplift_seeds_unseen",
        "Next-best actions on unseen worlds, beside econml",
        "python -m experiments.uplift_seeds --seeds 101,102,103,104,105 --accounts 3000 --days 600 "
        "--name uplift_seeds_unseen",
        "on five simulations no test or tuning used (3,000 accounts x 600 days, the default 10% holdout), "
        "each policy's share of the oracle's churn averted at a 10% budget: the uplift ranking, econml's "
        "DRLearner per action fitted on the same rows, the riskiest first and the rules, beside the "
        "ceilings; and coverage of the true average effects",
    ),
    Source(
        "uplift_seeds_no_holdout",
        "Uplift against the truth over several seeds, without a holdout",
        "python -m experiments.uplift_seeds --holdout-share 0",
        "the same over worlds where no account is held out: every account-week is the usual course's",
    ),
    Source(
        "closed_loop",
        "The closed loop: a simulated year of following each policy's weekly plan",
        "make bench-loop",
        "per seed, one world run week by week for each policy on the same CSM hours (the rules, the riskiest "
        "first, Retain's plan without and with 5% exploration, the oracle told the true effects): the churn "
        "each executed plan truly averted and the ARR it kept, beside the plan holdout's estimate with its "
        "95% interval (`docs/methods/closed-loop.md`)",
    ),
    Source(
        "monitor_drift",
        "Drift monitor: false alarms and detection delay over seeds",
        "make monitor-drift",
        "per seed (400 accounts x 420 days), `retain monitor`'s drift alarms on an undrifted world, where "
        "each is false (per world and per non-clock feature and cutoff that could alarm), and on the same "
        "world with a product release on 2025-05-20: cutoffs from the first that sees it to the first "
        "alarm on a feature it moves, and alarms on any other feature",
    ),
)


@dataclass(frozen=True)
class Stamp:
    """When, on what code and by which command a result was produced."""

    date: str
    commit: str
    #: the checkout had uncommitted changes to tracked files: the commit alone does not reproduce the run
    dirty: bool
    command: str


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return done.stdout.strip()


def stamp(module: str, argv: Sequence[str]) -> Stamp:
    """The stamp of a run of `python -m module argv...` started now."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return Stamp(
        date=datetime.now(UTC).isoformat(timespec="seconds"),
        commit=_git("rev-parse", "HEAD") or "unknown",
        dirty=bool(status),
        command=shlex.join(["python", "-m", module, *argv]),
    )


def record(name: str, module: str, argv: Sequence[str], figures: Any, folder: Path = RESULTS_DIR) -> Path:
    """Write `figures` (JSON-able) with the run's stamp to `folder/<name>.json`, replacing the last run's."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    payload = {"name": name, **asdict(stamp(module, argv)), "figures": figures}
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path


def _anchor(title: str) -> str:
    """The anchor GitHub gives a heading."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def _short(commit: Any) -> str:
    """A commit named by its first ten hex digits, as `git` abbreviates one (the JSON keeps all 40)."""
    return str(commit or "unknown")[:10]


def _when(date: str | None) -> str:
    """A stamp's date as a person reads it: `2026-11-24 06:27 UTC`."""
    if not date:
        return "an unknown date"
    try:
        return datetime.fromisoformat(date).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return date


def _stamp_line(source: Source, payload: dict[str, Any], link: str) -> str:
    state = ", with uncommitted changes" if payload.get("dirty") else ""
    command = payload.get("command", "unknown")
    again = "" if source.run in command else f" (`{source.run}` runs it again)"
    return (
        f"Run on {_when(payload.get('date'))} at commit `{_short(payload.get('commit'))}`{state}, by "
        f"`{command}`{again}; all its figures: [{source.name}.json]({link})."
    )


def lead(source: Source, payload: dict[str, Any] | None) -> Lead:
    """The section's headline sentence and table; a run not made yet, or not known, shows its bar alone."""
    if payload is None:
        return Lead(
            f"Not run yet: `{source.run}` measures it.", [Row("—", "not run yet", "—", source.aim, None)]
        )
    build = BUILDERS.get(source.name)
    if build is None:
        return Lead(
            "No headline figures are set for this run: its JSON holds them all.",
            [Row("—", "see its JSON", "—", source.aim, None)],
        )
    return build(payload["figures"])


def section(source: Source, payload: dict[str, Any] | None, link: str) -> str:
    """One run's section: the headline sentence and table, the run's stamp and JSON, what it measures, its
    plot and any short detail."""
    top = lead(source, payload)
    lines = [f"## {source.title}", "", top.says, "", *headline_table(top.rows), ""]
    if payload is not None:
        lines += [_stamp_line(source, payload, link), ""]
    lines += [f"What it measures: {source.measures}.", ""]
    if payload is not None and source.name in PLOTS:
        png, alt, _ = PLOTS[source.name]
        lines += [f"![{alt}]({png})", ""]
    return "\n".join(lines + top.details)


def _glance(sources: list[tuple[Source, dict[str, Any] | None]]) -> list[str]:
    """One row a section: its first headline figure and how many of its headline aims are met."""
    rows = []
    for source, payload in sources:
        top = lead(source, payload).rows
        judged = [r.met for r in top if r.met is not None]
        met = f"{sum(judged)} of {len(judged)}" if judged else "—"
        headline = f"{top[0].figure}: {top[0].measured}" if payload else top[0].measured
        rows.append((f"[{source.title}](#{_anchor(source.title)})", headline, met))
    return ["## At a glance", "", *table(("section", "first headline figure", "aims met"), rows), ""]


def render(folder: Path = RESULTS_DIR, page_dir: Path = PAGE.parent) -> str:
    """The whole page from every `*.json` in `folder`: the known runs first, in order, then any others.
    Links to the JSON are relative to `page_dir`, where the page is written."""
    found = {path.stem: json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))}
    known = {s.name for s in SOURCES}
    others = [Source(name, name, "its own command", "see its JSON") for name in found if name not in known]
    sources = [(s, found.get(s.name)) for s in (*SOURCES, *others)]
    relative = Path(os.path.relpath(folder, page_dir)).as_posix()
    head = [
        "# Results",
        "",
        "What Retain measured, against its peers and the aims set for it. `make results` writes this page "
        "from the JSON each benchmark stamps in `experiments/results/`; do not edit it by hand. Each section "
        "starts with its headline figures, then names the run (date, commit, command) and links its JSON, "
        "which holds every figure. Run the command again to measure again.",
        "",
        *_glance(sources),
    ]
    body = [section(s, payload, f"{relative}/{s.name}.json") for s, payload in sources]
    return "\n".join(head + body).rstrip() + "\n"


def draw(folder: Path, page_dir: Path) -> list[Path]:
    """Every plot whose run is in `folder`, as a PNG in `page_dir`."""
    drawn = []
    for name, (png, _, plot) in PLOTS.items():
        path = folder / f"{name}.json"
        if path.exists():
            plot(json.loads(path.read_text())["figures"], page_dir / png)
            drawn.append(page_dir / png)
    return drawn


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="folder of stamped JSON")
    parser.add_argument("--out", type=Path, default=PAGE, help="the page to write [docs/results.md]")
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(args.results, args.out.parent))
    drawn = draw(args.results, args.out.parent)
    print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes) and {len(drawn)} plots")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
