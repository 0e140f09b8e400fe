"""Independent fits side by side: on local processes (joblib), or as tasks on Spark's executors.

Uplift training and the causal report split their work into calls that share nothing (a fold of a
baseline, a group of propensities, an arm's estimate), each seeded by its own arguments, so where a call
runs cannot change what it returns: the results equal a sequential run's, in any order. Spark takes one
task per call; the executors import the same Retain (their Python is the driver's interpreter in local
mode, the cluster's environment under spark-submit).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from joblib import Parallel, delayed

from core.settings import Settings, SparkSettings
from core.spark import session, spark_errors

if TYPE_CHECKING:
    from pyspark import Broadcast

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


def _apply_shared(calls: Broadcast[list[Call[T]]], number: int) -> T:
    run, args = calls.value[number]
    return run(*args)


def side_by_side(calls: Sequence[Call[T]], workers: Workers) -> Iterator[T]:
    """Each call's result, in the order they finish (locally) or all at once when Spark's job ends.

    On Spark the calls travel as one broadcast, pickled together: arguments they share (a design matrix)
    go to each executor once, not once a task, and a task sends back only its result. So a call's
    function must pickle by reference (defined at a module's top level)."""
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
        context = spark.sparkContext
        shared = context.broadcast(list(calls))
        tasks = context.parallelize(range(len(calls)), len(calls))
        results = tasks.map(partial(_apply_shared, shared)).collect()
        shared.destroy()
    yield from results
