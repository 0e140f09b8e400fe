"""Prometheus metrics on a registry of the app's own, so two apps in one process never collide.

Routes are labelled by their template (`/v1/accounts/{account_id}/risk`), never by the raw path: an
account id in a label would grow the series without bound and put customer ids in the metrics.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from retain.core.gauges import Gauge

log = logging.getLogger("retain.metrics")

#: seconds; the API aims at single-digit milliseconds
LATENCY_BUCKETS = (0.002, 0.004, 0.006, 0.008, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class _ChampionsAndLog(Collector):
    """Read at scrape time: the champions' versions and the decision log's counters."""

    def __init__(
        self, models: Callable[[], dict[str, str | None]], log: Callable[[], dict[str, int]]
    ) -> None:
        self._models = models
        self._log = log

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "retain_model_info", "the champion served per model (1)", labels=["model", "version"]
        )
        for model, version in self._models().items():
            info.add_metric([model, version or "none"], 1.0)
        yield info
        stats = self._log()
        for name in ("written", "dropped", "failed"):
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

    def __init__(self, read: Callable[[], list[Gauge]], seconds: float) -> None:
        self._read = read
        self._seconds = seconds
        self._gauges: list[Gauge] = []
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


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
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
        gauges: Callable[[], list[Gauge]],
        gauge_seconds: float,
    ) -> None:
        self.registry.register(_ChampionsAndLog(models, log))
        self.registry.register(MonitorGauges(gauges, gauge_seconds))
