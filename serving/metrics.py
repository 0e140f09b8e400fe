"""Prometheus metrics on a registry of the app's own, so two apps in one process never collide.

Routes are labelled by their template (`/v1/accounts/{account_id}/risk`), never by the raw path: an
account id in a label would grow the series without bound and put customer ids in the metrics.

With several worker processes (`retain serve --workers N` sets `PROMETHEUS_MULTIPROC_DIR`), a scrape
reaches one of them, so each worker's counters are kept in files there (prometheus_client's multiprocess
mode) and a scrape sums them all; the decision log's counts, which each worker's log keeps in memory, are
copied into such counters every second. Otherwise a scrape would show one worker's counts, then another's.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from store.gauges import Gauge as MonitorGauge

log = logging.getLogger("retain.metrics")
#: where the workers' counters are kept when several processes serve (prometheus_client's own variable)
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
#: set by `retain serve` when several workers share that folder; Feast sets MULTIPROCESS_DIR on import in
#: every process, so that variable alone does not say the workers share counters
SHARED_FLAG = "RETAIN_METRICS_SHARED"
#: seconds between copies of a worker's decision log counts into the shared counters
LOG_SYNC_SECONDS = 1.0
#: the decision log's counts exported as counters (`DecisionLog.stats`)
LOG_COUNTS = ("written", "dropped", "failed", "drained", "spilled", "replayed")

#: seconds; the API aims at single-digit milliseconds
LATENCY_BUCKETS = (0.002, 0.004, 0.006, 0.008, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class _ChampionsAndLog(Collector):
    """Read at scrape time: the champions' versions and the decision log's counters."""

    def __init__(
        self, models: Callable[[], dict[str, str | None]], log: Callable[[], dict[str, int]] | None
    ) -> None:
        self._models = models
        #: None when the log's counts are shared counters (`_SharedLogCounts`)
        self._log = log

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "retain_model_info", "the champion served per model (1)", labels=["model", "version"]
        )
        for model, version in self._models().items():
            info.add_metric([model, version or "none"], 1.0)
        yield info
        if self._log is None:
            return
        stats = self._log()
        for name in LOG_COUNTS:
            yield CounterMetricFamily(
                f"retain_decision_log_{name}", f"decision log entries {name}", value=float(stats.get(name, 0))
            )
        yield GaugeMetricFamily(
            "retain_decision_log_pending",
            "decision log entries waiting",
            value=float(stats.get("pending", 0)),
        )


class MonitorGauges(Collector):
    """The latest `retain monitor` figures (drift, realised performance, fallback share, plans' impact), read
    from the store's `gauges` table at most every `seconds`, so an alerting stack can page on them. A read
    that fails keeps the figures already shown and says so in the log."""

    def __init__(self, read: Callable[[], list[MonitorGauge]], seconds: float) -> None:
        self._read = read
        self._seconds = seconds
        self._gauges: list[MonitorGauge] = []
        self._read_at: float | None = None

    def collect(self) -> Iterator[Metric]:
        now = time.monotonic()
        if self._read_at is None or now - self._read_at >= self._seconds:
            self._read_at = now
            try:
                self._gauges = self._read()
            except Exception as e:  # a scrape must answer: the store may be away for a moment
                log.warning("monitor gauges unreadable, showing the last read: %s", e)
        families: dict[str, GaugeMetricFamily] = {}
        for gauge in self._gauges:
            family = families.get(gauge.name)
            if family is None:
                family = families[gauge.name] = GaugeMetricFamily(
                    f"retain_monitor_{gauge.name}", gauge.help, labels=sorted(gauge.labels)
                )
            family.add_metric([gauge.labels[k] for k in sorted(gauge.labels)], gauge.value)
        yield from families.values()


class _SharedLogCounts:
    """A worker's decision log counts as multiprocess counters (and the waiting entries as a gauge summed
    over the live workers), copied from the log's own counts every `LOG_SYNC_SECONDS` by a thread."""

    def __init__(self, registry: CollectorRegistry, log: Callable[[], dict[str, int]]) -> None:
        self._log = log
        self._counters = {
            name: Counter(f"retain_decision_log_{name}", f"decision log entries {name}", registry=registry)
            for name in LOG_COUNTS
        }
        self._pending = Gauge(
            "retain_decision_log_pending",
            "decision log entries waiting",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self._copied = dict.fromkeys(LOG_COUNTS, 0)
        threading.Thread(target=self._copy_forever, name="retain-metrics", daemon=True).start()

    def _copy_forever(self) -> None:
        while True:
            try:
                self.copy()
            except Exception:  # the thread must outlive a bad read
                log.exception("copying the decision log's counts to the metrics failed")
            time.sleep(LOG_SYNC_SECONDS)

    def copy(self) -> None:
        stats = self._log()
        for name, counter in self._counters.items():
            now = stats.get(name, 0)
            if now > self._copied[name]:
                counter.inc(now - self._copied[name])
                self._copied[name] = now
        self._pending.set(stats.get("pending", 0))


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        #: several workers: counters in files under this folder, summed at a scrape
        self.shared = os.environ.get(SHARED_FLAG) == "1" and bool(os.environ.get(MULTIPROCESS_DIR))
        self._watched: list[Collector] = []
        self.requests = Counter(
            "retain_requests", "requests answered", ["route", "method", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "retain_request_seconds",
            "time to answer, by route",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.fallbacks = Counter(
            "retain_fallbacks",
            "answers from the rules instead of the model, by reason",
            ["reason"],
            registry=self.registry,
        )

    def watch(
        self,
        models: Callable[[], dict[str, str | None]],
        log: Callable[[], dict[str, int]],
        gauges: Callable[[], list[MonitorGauge]],
        gauge_seconds: float,
    ) -> None:
        if self.shared:
            _SharedLogCounts(self.registry, log)
        self._watched = [
            _ChampionsAndLog(models, None if self.shared else log),
            MonitorGauges(gauges, gauge_seconds),
        ]
        for collector in self._watched:
            self.registry.register(collector)

    def exposition(self) -> bytes:
        """What a scrape reads: this process's registry, or with several workers every worker's counters
        summed, beside this worker's champions and the monitor's figures (the same in every worker)."""
        if not self.shared:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        for collector in self._watched:
            registry.register(collector)
        return generate_latest(registry)
