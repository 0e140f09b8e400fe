"""Database URLs as users write them, and as SQLAlchemy and logs need them.

MLflow's backend and the decision log both take `postgresql://...` from settings; both go through here.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

_DRIVERLESS = {"postgres": "postgresql+psycopg", "postgresql": "postgresql+psycopg"}


def sqlalchemy_url(url: str) -> str:
    """A PostgreSQL URL without a driver gets psycopg 3 (`postgresql+psycopg`), the driver this project
    installs: SQLAlchemy's default for `postgresql://` is psycopg2, which is not installed. Other URLs
    pass unchanged (re-assembling `sqlite:////abs/path` with urllib would drop a slash)."""
    scheme, sep, rest = url.partition("://")
    return f"{_DRIVERLESS[scheme]}{sep}{rest}" if scheme in _DRIVERLESS else url


def redact(url: str) -> str:
    """The URL with any password replaced, for output and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
