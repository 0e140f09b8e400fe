"""The Spark engine on a real standalone cluster through Spark Connect: a master, two one-core workers and
a Connect server, each its own JVM on 127.0.0.1 (experiments/spark_cluster.py). The feature table,
scores and uplift fits equal DuckDB's and the single process's, as on `local[2]`; a worker killed
mid-build is survived with the same table, or fails with one line and writes nothing (one build shows both).

The fixture is module-scoped: a Spark Connect session marks the whole process as Connect
(`SPARK_CONNECT_MODE_ENABLED`), which the teardown undoes so that the classic sessions of other modules
start as before.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from core.errors import RetainError
from core.parallel import Workers, side_by_side
from core.settings import Settings, SparkSettings
from core.spark import SparkFailure
from experiments.spark_cluster import Cluster
from features.run import FeatureBuild, build_and_publish
from features.stored import TABLE as FEATURES
from ingest.run import ingest_path
from simulate import SimConfig, simulate_to
from store.delta import Store
from tests.integration.test_spark import (
    assert_same_table,
    assert_scores_as_the_single_process_batch,
    assert_uplift_fits_as_the_local_ones,
)
from tests.support.served import World
from tests.support.worlds import UpliftWorld

#: the session's SQL settings (a Connect client sets only these; the server fixed the cluster's)
SQL_CONF = {"spark.sql.shuffle.partitions": "2", "spark.sql.codegen.wholeStage": "false"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    from pyspark.sql import SparkSession

    # a process holds a classic session or a Connect one, not both: another module's classic one goes first
    classic = SparkSession.getActiveSession()
    if classic is not None:
        classic.stop()
    running = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        yield running.start(workers=2)
    finally:
        try:
            from pyspark.sql.connect.session import SparkSession as RemoteSession

            active = RemoteSession.getActiveSession() or RemoteSession._get_default_session()
            if active is not None:
                active.stop()
        finally:
            os.environ.pop("SPARK_CONNECT_MODE_ENABLED", None)
            running.stop()


@pytest.fixture(scope="module")
def remote(cluster: Cluster) -> SparkSettings:
    return SparkSettings(remote=cluster.remote, conf=SQL_CONF)


@pytest.fixture(scope="module")
def cluster_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    root = tmp_path_factory.mktemp("cluster-store")
    simulate_to(SimConfig(accounts=60, days=120, seed=7, start=date(2025, 1, 1)), root / "sim")
    store = Store(root / "store")
    ingest_path(store, root / "sim")
    return store


def test_the_cluster_scores_as_the_single_process_batch(
    served_world: World, remote: SparkSettings, tmp_path: Path
) -> None:
    assert_scores_as_the_single_process_batch(served_world, remote, tmp_path)


def test_uplift_fits_on_the_cluster_equal_the_local_ones(
    uplift_world: UpliftWorld, remote: SparkSettings
) -> None:
    assert_uplift_fits_as_the_local_ones(uplift_world, remote)


def test_the_fits_run_on_both_workers(cluster: Cluster, remote: SparkSettings) -> None:
    """One task per call, spread over the two workers' executors (separate JVMs and Python workers)."""
    hosts = set(side_by_side([(_slow_pid, (n,)) for n in range(4)], Workers(2, remote)))
    assert len(hosts) >= 2


def _slow_pid(number: int) -> int:
    time.sleep(1.0)
    return os.getppid()


def test_the_cluster_builds_duckdbs_feature_table_even_losing_a_worker(
    cluster: Cluster, cluster_store: Store, remote: SparkSettings
) -> None:
    """One full build on the cluster, with a worker killed a few seconds in: it survives with DuckDB's
    table, or fails with one line and writes nothing, and the build run again with the worker back
    gives DuckDB's table. (One build serves both points: a cluster build takes a minute or more.)"""
    store, settings = cluster_store, Settings(home=cluster_store.root)
    duck = build_and_publish(store, settings, None, None, online=False)
    chosen = settings.model_copy(update={"engine": "spark", "spark": remote})
    outcome: dict[str, object] = {}

    def build() -> None:
        try:
            # full: the cluster rolls every day up itself rather than reading the roll-ups DuckDB stored
            outcome["built"] = build_and_publish(store, chosen, None, None, online=False, full=True)
        except RetainError as e:
            outcome["error"] = e

    job = threading.Thread(target=build)
    job.start()
    time.sleep(4.0)
    cluster.kill("worker-0")
    job.join(300)
    try:
        assert not job.is_alive()
        if "error" in outcome:
            message = str(outcome["error"])
            assert isinstance(outcome["error"], SparkFailure) and "\n" not in message, message
            assert message.endswith("nothing was written")
            assert store.version(FEATURES) == duck.version
    finally:
        cluster.start_worker("worker-0")
        cluster.wait_for(lambda: cluster.alive_workers() >= 2, "worker-0 back", seconds=60)
    if "error" in outcome:
        outcome["built"] = build_and_publish(store, chosen, None, None, online=False, full=True)
    on_spark = outcome["built"]
    assert isinstance(on_spark, FeatureBuild)
    assert (on_spark.version, on_spark.read, on_spark.cutoffs) == (duck.version + 1, duck.read, duck.cutoffs)
    tables = [store.dataset(FEATURES, v).to_table() for v in (duck.version, on_spark.version)]
    assert tables[0].num_rows > 100
    assert_same_table(*tables)
