"""How Retain's long-running processes log: the API server and the webhook delivery worker alike."""

from __future__ import annotations

import logging


def log_retain_lines() -> None:
    """Retain's own lines at INFO; other libraries' and uvicorn's start-up lines only with --access-log."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("retain").setLevel(logging.INFO)
