"""Stamped results, and the page that shows them.

Every benchmark and evaluation under `experiments/` writes its figures to `experiments/results/<name>.json`
with the date, the commit (and whether the checkout had uncommitted changes) and the command that produced
them (`record`), besides printing them. `python -m experiments.results` (`make results`) renders every such
file into `docs/results.md`, one section per file: figures are never typed by hand into the documentation,
so each one can be traced to the run that measured it and re-measured by its command.

    .venv/bin/python -m experiments.results [--results DIR] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "experiments" / "results"
PAGE = ROOT / "docs" / "results.md"


@dataclass(frozen=True)
class Source:
    """A run that writes `experiments/results/<name>.json`: what it measures and how to run it."""

    name: str
    title: str
    run: str
    measures: str


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
        "`GET /v1/accounts/{id}/risk` on `retain serve` against `mlflow models serve` on the same "
        "champion: p50/p99 at concurrency 1, requests/s at concurrency 16",
    ),
    Source(
        "cockpit",
        "Cockpit page times",
        "make bench-cockpit",
        "the cockpit's book and account pages for a book of about 5,000 active accounts, against a 300 ms "
        "budget",
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
        "capped by its time allowed). Must hold: the Delta store's p99 at 10,000 over its p99 at 100 "
        "stays below 1.5",
    ),
    Source(
        "spark",
        "Spark against the embedded engines",
        "make bench-spark",
        "Spark local[2] against DuckDB building features from the same store at 1M, 10M and 50M events, "
        "`score_store` on Spark against one process, and the uplift fits on one process, two processes and "
        "Spark's executors; the per-core rates extrapolated to 100,000 accounts and 10B events on 32 cores",
    ),
    Source(
        "byo",
        "Bring-your-own tables against an AutoML peer",
        "make bench-byo",
        "three churn-like tables generated in `experiments/benchmarks/byo.py` (a telecom's 7,043 customers, "
        "30,000 B2B accounts, 100,000 app subscribers; categorical columns, missing values, interactions), "
        "each split 70/30 (stratified, seeded): Retain's table mode through `api.train_table` with a time "
        "budget (logged and registered to MLflow, then scored through `retain score --table`'s path), "
        "FLAML's AutoML on the same budget, LightGBM's defaults and a scaled logistic regression, all on the "
        "same training rows and one thread; AUC on the held-out 30% and wall seconds. Must hold: on every "
        "table Retain's AUC >= the best peer's - 0.005, in no more than the budget",
    ),
    Source(
        "churn",
        "The store's churn model against its peers on unseen worlds",
        "make bench-churn",
        "per seed no test or tuning used (201-205; 3,000 accounts x 600 days), `retain train --model churn` "
        "on a fresh store: AUC, PR-AUC and top-decile lift on the latest matured test cutoff of the model, "
        "the logistic baseline on the same features and rows, the health formula and the oracle (the "
        "simulator's truth, with the model's figures on the rows it covers). Must hold on every seed: AUC "
        ">= the oracle's - 0.025 and >= the logistic's + 0.02, top-decile lift >= the logistic's",
    ),
    Source(
        "soak",
        "Soak under faults",
        "make soak",
        "`retain serve` with two workers for 10 minutes at concurrency 16 mixing risk, next-best actions, "
        "batch scores, feedback and reloads (each must reach both workers), with five faults in turn: the "
        "decision log immutable, the online store's file gone, the newest events files gone with a reload, "
        "the decision log's disk full with a SIGTERM and restart half-way, and a restart on an online store "
        "with overwritten pages. Must hold: no crash (every stop a SIGTERM obeyed), no 5xx to a client, "
        "every decision served and feedback taken in the log or counted as lost (what a stop spilled "
        "replayed), and `/readyz` 503 during every fault and 200 outside them",
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
        "each policy's share of the oracle's churn averted at a 10% budget: the uplift ranking (posterior "
        "shares), econml's DRLearner per action fitted on the same rows and judged the same way, the "
        "riskiest first and the rules, beside the ceilings; coverage of the true average effects; each "
        "action's P(helps) and how often its Qini beat a random ranking. Aims: a mean share of at least "
        "0.65, at least 3x the riskiest first on every seed, at least econml's",
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
        "per seed, one world run week by week for each policy on the same CSM hours: the rules, the riskiest "
        "first, Retain's plan without and with 5% exploration (its uplift champion retrained monthly on its "
        "own world's data) and the oracle told the true effects; per quarter, the churn the executed plan "
        "actions truly averted and the ARR they kept, beside the plan holdout's own estimate with its 95% "
        "interval (`docs/methods/closed-loop.md`). Must hold (2,000 accounts, 4 quarters, 3 unseen seeds): "
        "retain_explore averts at least 2.5x the churn of the rules and of the riskiest first and 0.60 of "
        "the oracle's, its share of the oracle grows from the first quarter to the last, and the holdout's "
        "interval holds the truth in at least 90% of policy-quarters",
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


def flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted path, scalar) pairs of nested JSON: lists of scalars stay whole, other lists are indexed."""
    if isinstance(value, dict):
        if not value:
            return [(prefix, "{}")] if prefix else []
        return [pair for k, v in value.items() for pair in flatten(v, f"{prefix}.{k}" if prefix else str(k))]
    if isinstance(value, list) and any(isinstance(v, dict | list) for v in value):
        return [pair for i, v in enumerate(value) for pair in flatten(v, f"{prefix}[{i}]")]
    return [(prefix or "value", value)]


def show(value: Any) -> str:
    """A figure as a table cell: large numbers with separators, others to four significant digits."""
    if isinstance(value, bool) or value is None:
        return "—" if value is None else str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1_000 else f"{value:.4g}"
    if isinstance(value, list):
        return ", ".join(show(v) for v in value) if value else "—"
    return str(value).replace("|", "\\|").replace("\n", " ")


def section(source: Source, payload: dict[str, Any] | None) -> str:
    """One run's section: what it measures, its stamp and a table of its figures (or how to produce them)."""
    lines = [f"## {source.title}", "", f"What it measures: {source.measures}.", ""]
    if payload is None:
        lines += [f"Not run yet: `{source.run}` measures it.", ""]
        return "\n".join(lines)
    commit = str(payload.get("commit", "unknown"))
    state = " (with uncommitted changes)" if payload.get("dirty") else ""
    lines += [
        f"- date: {payload.get('date', 'unknown')}",
        f"- commit: `{commit}`{state}",
        f"- command: `{payload.get('command', 'unknown')}`",
        "",
    ]
    if source.name == CLOSED_LOOP:
        return "\n".join(lines + closed_loop_lines(payload["figures"]))
    if source.name == BYO:
        return "\n".join(lines + byo_lines(payload["figures"]))
    if source.name == CHURN:
        return "\n".join(lines + churn_lines(payload["figures"]))
    lines += [
        "| figure | value |",
        "|---|---|",
        *(f"| `{key}` | {show(value)} |" for key, value in flatten(payload.get("figures"))),
        "",
    ]
    return "\n".join(lines)


# -- bring-your-own tables: one row per table, each contender's AUC and seconds side by side -------------

BYO = "byo"
BYO_CONTENDERS = ("retain", "flaml", "lightgbm_defaults", "logistic")


def byo_lines(figures: dict[str, Any]) -> list[str]:
    """Per table: its size, each contender's held-out AUC and wall seconds, Retain's gap to the best peer
    and whether the bar holds; then how Retain trained."""
    head = " | ".join(f"{c} AUC (s)" for c in BYO_CONTENDERS)
    lines = [
        f"Time budget {show(figures['budget_seconds'])} s for Retain and FLAML; seed {figures['seed']}.",
        "",
        f"| table | rows | base rate | {head} | gap to best peer | holds |",
        "|---|---|---|" + "---|" * len(BYO_CONTENDERS) + "---|---|",
    ]
    for name, t in figures["tables"].items():
        cells = " | ".join(f"{show(t['auc'][c])} ({show(t['seconds'][c])})" for c in BYO_CONTENDERS)
        lines.append(
            f"| {name} | {show(t['rows'])} | {show(t['base_rate'])} | {cells} "
            f"| {t['gap_to_best_peer']:+.4f} | {show(t['holds'])} |"
        )
    lines += [
        "",
        "| table | Retain's evaluation | internal AUC | trials | trees | calibration |",
        "|---|---|---|---|---|---|",
    ]
    for name, t in figures["tables"].items():
        r = t["retain"]
        lines.append(
            f"| {name} | {r['evaluation']} | {show(r['internal_auc'])} | {show(r['trials'])} "
            f"| {show(r['trees'])} | {r['calibration']} |"
        )
    return [*lines, "", f"Must hold on every table: {show(figures['must_hold'])}.", ""]


# -- the store's churn model: one row per seed, each candidate's AUC, PR-AUC and lift side by side ---------

CHURN = "churn"
CHURN_CANDIDATES = ("model", "logistic", "health", "oracle")


def churn_lines(figures: dict[str, Any]) -> list[str]:
    """Per seed: each candidate's test AUC / PR-AUC / top-decile lift, the model's on the oracle's rows, and
    which of the bars hold."""
    head = " | ".join(f"{c} AUC / PR-AUC / lift" for c in CHURN_CANDIDATES)
    lines = [
        f"{figures['accounts']:,} accounts x {figures['days']} days per seed; the bars: AUC >= the oracle's "
        f"- {figures['oracle_gap']} (on the oracle's rows) and >= the logistic's "
        f"+ {figures['logistic_margin']}, lift >= the logistic's.",
        "",
        f"| seed | test rows (positives) | {head} | model on the oracle's rows | bars held |",
        "|---|---|" + "---|" * len(CHURN_CANDIDATES) + "---|---|",
    ]
    for s in figures["seeds"]:
        cells = " | ".join(
            " / ".join(show(s[c][k]) for k in ("auc", "pr_auc", "lift_top_decile")) for c in CHURN_CANDIDATES
        )
        same = " / ".join(show(s["model_on_oracle_rows"][k]) for k in ("auc", "pr_auc", "lift_top_decile"))
        held = ", ".join(name for name, ok in s["bars"].items() if ok) or "none"
        rows = f"{show(s['test_rows'])} ({show(s['test_positives'])})"
        lines.append(f"| {s['seed']} | {rows} | {cells} | {same} | {held} |")
    return [*lines, "", f"Must hold on every seed: {show(figures['must_hold'])}.", ""]


# -- the closed loop: a plot and a table per quarter, not its hundreds of weekly figures ------------------

CLOSED_LOOP = "closed_loop"
#: the closed loop's plot, beside the page that shows it
LOOP_PLOT = "results-closed-loop.png"


def _interval(found: dict[str, float] | None) -> str:
    return (
        "—" if found is None else f"{show(found['estimate'])} [{show(found['low'])}, {show(found['high'])}]"
    )


def _used(quarters: list[dict[str, Any]]) -> str:
    """The share of CSM hours the plans used, mean over seeds (runs before it was recorded: unknown)."""
    shares = [q["hours_used_share"] for q in quarters if "hours_used_share" in q]
    return f"{100 * sum(shares) / len(shares):.0f}%" if shares else "—"


def closed_loop_lines(figures: dict[str, Any]) -> list[str]:
    """The closed loop's plot, a table per quarter (policies by rows, seeds side by side in a cell) and the
    issue's bar as measured."""
    shares = {p["policy"]: p["share_of_oracle_by_quarter"] for p in figures["policies"]}
    size = f"{figures['quarters']} quarter(s) of {figures['weeks_per_quarter']} weeks"
    lines = [
        f"{figures['accounts']:,} accounts, {size} after a {figures['warmup_days']}-day warm-up, "
        f"{show(figures['capacity_hours'])} CSM hours a week, seeds {show(figures['seeds'])}; truth figures "
        "are means over the seeds, holdout estimates of churn averted one per seed.",
        "",
        f"![Cumulative true ARR kept per policy, week by week]({LOOP_PLOT})",
        "",
    ]
    for q in range(figures["quarters"]):
        lines += [
            f"Quarter {q + 1}:",
            "",
            "| policy | actions | CSM hours used | true churn averted | true ARR kept | "
            "holdout estimate [95% interval] | holds the truth | share of the oracle |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name in shares:
            mine = [r["quarters"][q] for r in figures["runs"] if r["policy"] == name]
            held = [m["covered"] for m in mine if m["covered"] is not None]
            lines.append(
                f"| {name} | {show(sum(m['actions'] for m in mine) // len(mine))} "
                f"| {_used(mine)} "
                f"| {show(sum(m['true_churn_averted'] for m in mine) / len(mine))} "
                f"| {show(sum(m['true_arr_kept'] for m in mine) / len(mine))} "
                f"| {'; '.join(_interval(m['holdout_churn_averted']) for m in mine)} "
                f"| {sum(held)}/{len(held)} | {show(shares[name][q])} |"
            )
        lines.append("")
    timings = {r["policy"]: [] for r in figures["runs"]}
    for r in figures["runs"]:
        timings[r["policy"]].append(r["seconds"]["total"])
    lines += ["The bar as measured:", "", "| figure | value |", "|---|---|"]
    lines += [f"| `{key}` | {show(value)} |" for key, value in flatten(figures["must_hold"])]
    lines += [f"| `seconds.{name}` | {show(value)} |" for name, value in timings.items()]
    lines += [f"| `seconds.warm_up` | {show(list(figures['warm_up_seconds'].values()))} |", ""]
    return lines


def closed_loop_plot(figures: dict[str, Any], out: Path) -> None:
    """Cumulative true ARR kept by each policy's executed plan actions, week by week, mean over the seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # deferred: only the closed loop draws

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for summary in figures["policies"]:
        mine = [r["weeks"] for r in figures["runs"] if r["policy"] == summary["policy"]]
        weeks = [datetime.fromisoformat(w["week"]) for w in mine[0]]
        kept = [sum(run[k]["arr_kept"] for run in mine) / len(mine) for k in range(len(weeks))]
        ax.plot(weeks, [sum(kept[: k + 1]) for k in range(len(kept))], label=summary["policy"])
    ax.set_ylabel("true ARR kept, cumulative ($)")
    ax.set_title("The closed loop: what each policy's plans truly kept")
    ax.legend()
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def render(folder: Path = RESULTS_DIR) -> str:
    """The whole page from every `*.json` in `folder`: the known runs first, in order, then any others."""
    found = {path.stem: json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))}
    known = {s.name for s in SOURCES}
    others = [Source(name, name, "its own command", "see its command") for name in found if name not in known]
    head = [
        "# Results",
        "",
        "Generated by `make results` (`python -m experiments.results`) from the JSON that each benchmark "
        "and evaluation writes to `experiments/results/`; do not edit by hand. Each section names the date, "
        "the commit and the command of the run its figures come from; run the command again to re-measure.",
        "",
    ]
    return "\n".join(head + [section(s, found.get(s.name)) for s in (*SOURCES, *others)]).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="folder of stamped JSON")
    parser.add_argument("--out", type=Path, default=PAGE, help="the page to write [docs/results.md]")
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(args.results))
    loop = args.results / f"{CLOSED_LOOP}.json"
    if loop.exists():
        closed_loop_plot(json.loads(loop.read_text())["figures"], args.out.parent / LOOP_PLOT)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
