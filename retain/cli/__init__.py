"""The one CLI, `retain`: a command per pipeline stage, over `retain.api`; the Makefile only wraps these."""

from retain.cli.app import app, main

__all__ = ["app", "main"]
