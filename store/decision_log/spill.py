"""Spill files: the decision log's entries a stopping process could not write, kept as JSON lines for the
next start to replay; each entry a line, `spill_line` and `spilled_entry` its way there and back.

A file is written whole or not at all (a `.part` file, fsynced, renamed, the folder fsynced), into the
first folder that takes it: a folder on the disk that just filled up refuses, and the next is tried. Its
name carries the log it belongs to (a digest of the log's redacted URL), so a folder shared by several
deployments replays each file into its own log only; and a unique stem, which the replay records in the
same transaction as the entries, so a file is replayed once however often a start finds it.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import TypeAdapter

from store.decision_log.records import Decision, LogEntry, LoggedFeedback
from store.decision_log.tables import dumps

SUFFIX = ".jsonl"

_DECISION = TypeAdapter(Decision)
_FEEDBACK = TypeAdapter(LoggedFeedback)


def spill_line(entry: LogEntry) -> str:
    """An entry as a line of a spill file."""
    if isinstance(entry, Decision):
        return dumps({"decision": _DECISION.dump_python(entry, mode="json")})
    return dumps({"feedback": _FEEDBACK.dump_python(entry, mode="json")})


def spilled_entry(line: str) -> LogEntry:
    """A line of a spill file as the entry it was."""
    record = json.loads(line)
    if "decision" in record:
        return _DECISION.validate_python(record["decision"])
    return _FEEDBACK.validate_python(record["feedback"])


@dataclass(frozen=True)
class Spilled:
    """Where a spill landed (None: no folder took it), and why each folder tried before it refused."""

    path: Path | None
    refusals: tuple[str, ...]


def spill_prefix(log_url: str) -> str:
    """The name every spill file of the log at `log_url` (redacted) starts with."""
    return f"decisions-{hashlib.sha256(log_url.encode()).hexdigest()[:12]}-"


def write_spill(lines: Sequence[str], folders: Sequence[Path], prefix: str) -> Spilled:
    """Write the lines (a JSON document each, no newline in it) as one file into the first of `folders`
    that takes it whole."""
    body = "".join(line + "\n" for line in lines).encode()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    name = f"{prefix}{stamp}-{os.getpid()}-{uuid.uuid4().hex[:8]}{SUFFIX}"
    refusals: list[str] = []
    for folder in folders:
        try:
            _write_durably(folder / name, body)
            return Spilled(folder / name, tuple(refusals))
        except OSError as e:
            refusals.append(f"{folder}: {e.strerror or e}")
    return Spilled(None, tuple(refusals))


def _write_durably(path: Path, body: bytes) -> None:
    """The file whole under its name after a crash, or no file: a half-written spill would replay half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    try:
        with part.open("wb") as out:
            out.write(body)
            out.flush()
            os.fsync(out.fileno())
        part.replace(path)
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    except OSError:
        part.unlink(missing_ok=True)
        path.unlink(missing_ok=True)
        raise


def spill_files(folders: Sequence[Path], prefix: str) -> list[Path]:
    """The log's spill files in `folders`, oldest name first within each folder, each folder once."""
    seen: set[Path] = set()
    found: list[Path] = []
    for folder in folders:
        resolved = folder.resolve()
        if resolved in seen or not folder.is_dir():
            continue
        seen.add(resolved)
        found += sorted(folder.glob(f"{prefix}*{SUFFIX}"))
    return found


def read_spill(path: Path) -> list[str]:
    """The lines of a spill file."""
    return [line for line in path.read_text().splitlines() if line.strip()]
