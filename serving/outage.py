"""A dependency's outage said in the log: a warning as it starts, again at most once a minute while every
retry meets it, and a line when it answers again. A service that goes on without the dependency (the
cockpit book without Redis, API keys without their table) retries often; one warning a retry would bury
the log."""

from __future__ import annotations

import logging
import time

log = logging.getLogger("retain.serving")


class Outage:
    """One dependency's outage, as `what cannot be reached (why); meanwhile` and `what answers again`."""

    EVERY_SECONDS = 60.0

    def __init__(self, what: str, meanwhile: str) -> None:
        self.what = what
        self.meanwhile = meanwhile
        self._since: float | None = None
        self._said = 0.0

    def failed(self, error: Exception) -> None:
        now = time.monotonic()
        began = self._since is None
        if began:
            self._since = now
        if began or now - self._said >= self.EVERY_SECONDS:
            said = f"{type(error).__name__}: {error}"
            log.warning("%s cannot be reached (%s); %s", self.what, said, self.meanwhile)
            self._said = now

    def ended(self) -> None:
        if self._since is not None:
            log.info("%s answers again after %.0f s", self.what, time.monotonic() - self._since)
            self._since = None
