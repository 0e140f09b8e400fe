"""Database URLs as users write them, and as SQLAlchemy and logs need them.

MLflow's backend and the decision log take `postgresql://...` from settings, and `--out` a table's URL
(`core/sql_out.py`); all go through here.
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


def described(error: Exception, url: str) -> str:
    """A database error as said to a person: the driver's error (SQLAlchemy wraps it as `orig`), class and
    first line, without the URL's password should a driver echo it."""
    cause = getattr(error, "orig", None) or error
    lines = str(cause).strip().splitlines()
    text = f"{type(cause).__name__}: {lines[0] if lines else ''}"
    password = urlsplit(url).password
    return text.replace(password, "***") if password else text
