"""The plots of docs/results.md, drawn from the runs' JSON where a curve says more than a row: throughput
and time against size, latency percentiles, and each policy's share of the oracle.

Each is a PNG beside the page, `results-<name>.png` (`PLOTS`), redrawn by `make results`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

Figures = Any


@contextmanager
def _axes(out: Path, title: str, size: tuple[float, float] = (7.5, 4)) -> Iterator[Any]:
    """A figure with one axes, saved to `out` (no timestamp or version in the file) and closed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # deferred: rendering the page's text needs no matplotlib

    fig, ax = plt.subplots(figsize=size)
    try:
        yield ax
        ax.set_title(title)
        ax.grid(True, which="major", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
        fig.tight_layout()
        fig.savefig(out, dpi=100, metadata={"Software": None})
    finally:
        plt.close(fig)


def features_plot(f: Figures, out: Path) -> None:
    events = [s["events"] for s in f]
    with _axes(out, "Feature build: events per second against events") as ax:
        ax.plot(events, [s["duckdb_events_per_s"] for s in f], "o-", label="DuckDB (Retain)")
        ax.plot(events, [s["pandas_events_per_s"] for s in f], "s--", label="pandas baseline")
        ax.set(xscale="log", yscale="log", xlabel="events", ylabel="events per second")


def serving_plot(f: Figures, out: Path) -> None:
    cuts = ("p50_ms", "p90_ms", "p99_ms", "max_ms")
    names = {"retain": "retain serve", "mlflow": "mlflow models serve"}
    with _axes(out, "Risk request latency: percentiles, 1 and 16 at a time", (8, 4)) as ax:
        for (who, label), color in zip(names.items(), ("C0", "C3"), strict=True):
            for mode, style in (("latency", "o-"), ("throughput", "s--")):
                run = f["targets"][who][mode]
                ax.plot(
                    range(len(cuts)),
                    [run[c] for c in cuts],
                    style,
                    color=color,
                    label=f"{label}, {run['concurrency']} at a time",
                )
        ax.set_xticks(range(len(cuts)), [c.removesuffix("_ms") for c in cuts])
        ax.set(yscale="log", ylabel="milliseconds")


def store_plot(f: Figures, out: Path) -> None:
    writes = f["interventions"]
    with _axes(out, "POST /v1/interventions p99 as interventions pile up") as ax:
        for who, label in (("delta", "Delta store (Retain)"), ("manifest", "previous store (468c718)")):
            levels = writes[who]["levels"]
            ax.plot(
                [x["interventions_before"] for x in levels], [x["p99_ms"] for x in levels], "o-", label=label
            )
        ax.set(xscale="log", yscale="log", xlabel="interventions recorded", ylabel="p99 (ms)")


def spark_plot(f: Figures, out: Path) -> None:
    curve = f["features"]["curve"]
    names = {
        "duckdb": "DuckDB",
        "spark": f"Spark {f['spark_master']}",
        "cluster": "Spark, two-worker cluster",
    }
    with _axes(out, f"Feature build time against events, {f['machine_cores']} cores") as ax:
        for (engine, name), style in zip(names.items(), ("o-", "s--", "^:"), strict=True):
            ax.plot(curve["events"], curve["total_s"][engine], style, label=name)
        ax.set(xscale="log", yscale="log", xlabel="events", ylabel="seconds, setup included")


def uplift_plot(f: Figures, out: Path) -> None:
    shares = f["policy_vs_truth"]["share_of_oracle"]
    order = sorted(shares, key=shares.__getitem__)
    with _axes(out, "Share of the oracle's churn averted, by policy", (8, 4.5)) as ax:
        ax.barh(order, [shares[p] for p in order], color=["C1" if p == "uplift" else "C0" for p in order])
        ax.set(xlabel="share of the oracle's churn averted", xlim=(0, 1.05))


def seeds_plot(f: Figures, out: Path) -> None:
    by, means = f["share_of_oracle_by_seed"], f["share_of_oracle_mean"]
    order = sorted(means, key=means.__getitem__)
    with _axes(
        out, f"Share of the oracle's churn averted: {len(f['seeds'])} seeds, by policy", (8, 4.5)
    ) as ax:
        ax.barh(
            order,
            [means[p] for p in order],
            alpha=0.35,
            label="mean over the seeds",
            color=["C1" if p == "uplift" else "C0" for p in order],
        )
        for row, policy in enumerate(order):
            ax.plot(by[policy], [row] * len(by[policy]), "k.", markersize=5)
        ax.plot([], [], "k.", label="one seed")
        ax.set(xlabel="share of the oracle's churn averted", xlim=(0, 1.05))


def churn_plot(f: Figures, out: Path) -> None:
    seeds = f["seeds"]
    names = {
        "oracle": "oracle",
        "model_on_oracle_rows": "model (oracle's rows)",
        "model": "model",
        "logistic": "logistic",
        "health": "health formula",
    }
    with _axes(out, "Test AUC per unseen world") as ax:
        for key, label in names.items():
            ax.plot([str(s["seed"]) for s in seeds], [s[key]["auc"] for s in seeds], "o-", label=label)
        ax.set(xlabel="seed", ylabel="AUC")


def closed_loop_plot(f: Figures, out: Path) -> None:
    """Cumulative true ARR kept by each policy's executed plan actions, week by week, mean over the seeds."""
    with _axes(out, "The closed loop: what each policy's plans truly kept", (8, 4.5)) as ax:
        for summary in f["policies"]:
            mine = [r["weeks"] for r in f["runs"] if r["policy"] == summary["policy"]]
            weeks = [datetime.fromisoformat(w["week"]) for w in mine[0]]
            kept = [sum(run[k]["arr_kept"] for run in mine) / len(mine) for k in range(len(weeks))]
            ax.plot(weeks, [sum(kept[: k + 1]) for k in range(len(kept))], label=summary["policy"])
        ax.set_ylabel("true ARR kept, cumulative ($)")
        ax.figure.autofmt_xdate()


#: a run's plot: its file beside the page, what it shows (the image's text) and how it is drawn
PLOTS: dict[str, tuple[str, str, Callable[[Figures, Path], None]]] = {
    "features": (
        "results-features.png",
        "Events per second against events, DuckDB and pandas",
        features_plot,
    ),
    "serving": ("results-serving.png", "Latency percentiles of retain serve and mlflow", serving_plot),
    "uplift": ("results-uplift.png", "Each policy's share of the oracle's churn averted", uplift_plot),
    "store": ("results-store.png", "Intervention write p99 against interventions recorded", store_plot),
    "spark": ("results-spark.png", "Feature build seconds against events, DuckDB and Spark", spark_plot),
    "churn": ("results-churn.png", "Test AUC per seed for the model and its peers", churn_plot),
    "uplift_seeds": ("results-uplift-seeds.png", "Share of the oracle per policy and seed", seeds_plot),
    "uplift_seeds_unseen": (
        "results-uplift-unseen.png",
        "Share of the oracle per policy and seed",
        seeds_plot,
    ),
    "uplift_seeds_no_holdout": (
        "results-uplift-no-holdout.png",
        "Share of the oracle per policy and seed",
        seeds_plot,
    ),
    "closed_loop": (
        "results-closed-loop.png",
        "Cumulative true ARR kept per policy, week by week",
        closed_loop_plot,
    ),
}
