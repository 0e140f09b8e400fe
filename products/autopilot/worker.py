"""The autopilot's worker in `retain serve` (setting `autopilot.worker`): a run every `interval_seconds` on
the wall clock, in a daemon thread of the process that runs once per server, beside the webhook worker
that delivers what it executes. A run that fails is said in the log and tried again at the next interval:
what it recorded is kept, and a run finds its own executions recorded, so nothing runs twice.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator

from core.settings import Settings
from products.autopilot.run import AutopilotRun, run_autopilot
from serving.outage import Outage
from store.decision_log import DecisionLogUnavailable
from store.delta import Store

log = logging.getLogger("products.autopilot")


class AutopilotWorker:
    """`run_autopilot` every `settings.autopilot.interval_seconds` until stopped."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._outage = Outage("the autopilot: the decision log", "it executes nothing until it answers")

    def run_once(self) -> AutopilotRun | None:
        """One run; None when it could not run (said in the log)."""
        try:
            done = run_autopilot(self.store, self.settings)
        except DecisionLogUnavailable as e:
            self._outage.failed(e)
            return None
        except Exception:  # the worker must outlive any one run's failure
            log.exception(
                "the autopilot run failed; trying again in %g s", self.settings.autopilot.interval_seconds
            )
            return None
        self._outage.ended()
        if done.executed or done.paused:
            log.info(
                "autopilot run %s: executed %s; paused %s", done.run_id, done.executed, done.paused or "none"
            )
        return done

    def run(self) -> None:
        """Run until `stop`; in the calling thread."""
        while True:
            self.run_once()
            if self._stop.wait(self.settings.autopilot.interval_seconds):
                return

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="autopilot", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the run in flight, if any."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)


@contextlib.contextmanager
def piloting(store: Store, settings: Settings) -> Iterator[AutopilotWorker | None]:
    """The worker in a daemon thread while the block runs, when `autopilot.worker` is set; else nothing."""
    if not settings.autopilot.worker:
        yield None
        return
    worker = AutopilotWorker(store, settings)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()
