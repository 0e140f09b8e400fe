"""Independent fits side by side: on local processes (joblib), or as tasks on Spark's executors.

Uplift training and the causal report split their work into calls that share nothing (a fold of a
baseline, a group of propensities, an arm's estimate), each seeded by its own arguments, so where a call
runs cannot change what it returns: the results equal a sequential run's, in any order. Spark takes one
task per call; the executors import the same Retain (their Python is the driver's interpreter in local
mode, the cluster's environment under spark-submit).
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import pandas as pd
from joblib import Parallel, delayed

from core.settings import Settings, SparkSettings
from core.spark import session, spark_errors

T = TypeVar("T")
Call = tuple[Callable[..., T], tuple[Any, ...]]


@dataclass(frozen=True)
class Workers:
    """Where side-by-side calls run: `jobs` local processes, or Spark's executors when `spark` is set
    (then `jobs` only sizes how work is grouped)."""

    jobs: int = 1
    spark: SparkSettings | None = None

    @classmethod
    def of(cls, settings: Settings, jobs: int) -> Workers:
        """`jobs` processes on the DuckDB engine; the Spark session `settings` describe on Spark."""
        return cls(jobs, settings.spark if settings.engine == "spark" else None)

    @property
    def where(self) -> str:
        return "Spark executors" if self.spark is not None else f"{self.jobs} local process(es)"


def _task_runner(calls: list[Call[T]]) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """What each task runs on its batch of call numbers: a closure over every call, so the calls travel
    pickled (cloudpickle) inside the task's Python function."""

    def run_numbers(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for numbers in batches:
            done = []
            for number in numbers["id"].tolist():
                run, args = calls[number]
                done.append(pickle.dumps(run(*args), protocol=pickle.HIGHEST_PROTOCOL))
            yield pd.DataFrame({"number": numbers["id"].astype("int64"), "result": done})

    return run_numbers


def side_by_side(calls: Sequence[Call[T]], workers: Workers) -> Iterator[T]:
    """Each call's result, in the order they finish (locally) or all at once when Spark's job ends.

    On Spark, a DataFrame of call numbers (one partition each) is mapped through one Python function that
    carries every call (`mapInPandas`): the DataFrame API only, so a Spark Connect server runs it as a
    classic session does. A classic session broadcasts a function that large to each executor once; a
    task sends back only its pickled result. A call's function must pickle by reference (defined at a
    module's top level)."""
    if not calls:
        return
    if workers.spark is None:
        jobs = min(workers.jobs, len(calls))
        yield from Parallel(n_jobs=jobs, return_as="generator_unordered")(
            delayed(run)(*args) for run, args in calls
        )
        return
    spark = session(workers.spark)
    with spark_errors(f"running {len(calls)} fits on Spark's executors"):
        numbers = spark.range(0, len(calls), 1, len(calls))
        mapped = numbers.mapInPandas(_task_runner(list(calls)), schema="number long, result binary")
        rows = mapped.collect()
    for row in sorted(rows, key=lambda row: int(row["number"])):
        yield pickle.loads(row["result"])
