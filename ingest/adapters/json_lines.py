"""Event-stream exports read line by line and gathered into bounded contract frames, every record counted.

Segment's S3 export, Amplitude's export and Mixpanel's raw export are all JSON Lines: a file, gzipped or
not, a zip of such files (Amplitude's), or a folder of any of them. Each line is parsed alone, so a broken
line is quarantined as `malformed_row` with its file and line and costs the others nothing. Contract rows
are gathered into frames of at most BATCH_RECORDS rows, each frame naming the file of every row, so
memory holds a batch, not the export. Every record's fate is counted for the adapter's report: a contract
row, quarantined (`unmapped_event`, `malformed_row`, `invalid_utf8`) or skipped for a named reason.
"""

from __future__ import annotations

import gzip
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pyarrow as pa

from core.contract import EVENT_COLUMNS
from core.errors import RetainError
from ingest.adapters.adapted import Adapted
from ingest.adapters.event_mapping import EventMapping, Vendor, read_event_mapping, text
from ingest.readers import Frame, Malformed, parsed_json_line, table_from_records

#: files an export is made of: JSON Lines, gzipped or not, and zips of them
JSON_SUFFIXES = (".json", ".jsonl", ".ndjson", ".gz", ".zip")
#: contract rows per frame: validation's fixed cost paid rarely, memory bounded however large the export
BATCH_RECORDS = 100_000
#: columns a frame of each table must have even when all its records were quarantined
REQUIRED = {"events": tuple(EVENT_COLUMNS), "accounts": ("account_id", "tier")}
#: unmapped event names listed by name in the report's notes
SHOWN_NAMES = 10


@dataclass(frozen=True)
class Line:
    """One record of an export as read: its file (a zip's member as `zip:member`), place and bytes."""

    source: str
    number: int
    raw: bytes
    unit: str = "line"

    @property
    def text(self) -> str:
        return self.raw.decode("utf-8", "backslashreplace").rstrip("\r\n")

    def quarantined(self, detail: str, reason: str = "malformed_row") -> Malformed:
        return Malformed(self.source, self.text, f"{self.unit} {self.number}: {detail}", reason)

    def parsed(self) -> dict[str, Any] | Malformed:
        """The line's JSON object, or why it is none."""
        return parsed_json_line(self.source, self.number, self.raw, self.unit)


def export_files(path: Path, suffixes: tuple[str, ...]) -> tuple[list[Path], list[str]]:
    """The export files at `path` (itself, or a folder's files and its subfolders', in name order; hidden
    ones left out) and the folder's other files, which are skipped and named in the report."""
    if path.is_file():
        if not path.name.lower().endswith(suffixes):
            raise RetainError(f"{path}: not an export file; expected {', '.join(suffixes)}")
        return [path], []
    found = sorted(p for p in path.rglob("*") if p.is_file() and not _hidden(p.relative_to(path)))
    files = [p for p in found if p.name.lower().endswith(suffixes)]
    if not files:
        raise RetainError(f"{path}: no export files ({', '.join(suffixes)}) found")
    return files, [p.relative_to(path).as_posix() for p in found if p not in files]


def _hidden(rel: Path) -> bool:
    return any(part.startswith((".", "_")) for part in rel.parts)


def read_lines(file: Path) -> Iterator[Line]:
    """The non-blank lines of an export file, decompressed as they are read."""
    try:
        if file.name.lower().endswith(".zip"):
            with zipfile.ZipFile(file) as archive:
                for member in sorted(n for n in archive.namelist() if not n.endswith("/")):
                    with archive.open(member) as stream:
                        yield from _numbered(f"{file}:{member}", stream, member.lower().endswith(".gz"))
        else:
            with open(file, "rb") as stream:
                yield from _numbered(str(file), stream, file.name.lower().endswith(".gz"))
    except (OSError, EOFError, zlib.error, zipfile.BadZipFile) as e:
        raise RetainError(f"cannot read the export file {file}: {e}") from e


def _numbered(source: str, stream: IO[bytes], gzipped: bool) -> Iterator[Line]:
    lines = gzip.GzipFile(fileobj=stream) if gzipped else stream
    for number, raw in enumerate(lines, start=1):
        if raw.strip():
            yield Line(source, number, raw)


class Batches:
    """Contract rows gathered per table into frames of at most `size` rows, the quarantined records kept
    with them, and every record's fate counted: `read` = contract rows + the rejected, by reason."""

    def __init__(self, source: Path) -> None:
        self.source = str(source)
        self.size = BATCH_RECORDS
        self.rows: dict[str, list[dict[str, Any]]] = {"accounts": [], "events": []}
        self.parts: dict[str, list[tuple[str, int]]] = {"accounts": [], "events": []}
        self.malformed: list[Malformed] = []
        self.read = 0
        self.rejected: Counter[str] = Counter()
        self.produced: Counter[str] = Counter()
        self.unmapped: Counter[str] = Counter()
        self.derived_ids = 0

    def add(self, table: str, row: dict[str, Any], source: str) -> Iterator[Frame]:
        self.read += 1
        self.produced[row["event_type"] if table == "events" else table] += 1
        self.rows[table].append(row)
        parts = self.parts[table]
        if parts and parts[-1][0] == source:
            parts[-1] = (source, parts[-1][1] + 1)
        else:
            parts.append((source, 1))
        if len(self.rows[table]) >= self.size:
            yield self._frame(table)

    def quarantine(self, malformed: Malformed) -> Iterator[Frame]:
        self.read += 1
        self.rejected[malformed.reason] += 1
        self.malformed.append(malformed)
        if len(self.malformed) >= self.size:
            yield self._frame("events")

    def skip(self, reason: str) -> None:
        """A record that becomes no contract row and is not quarantined (an ignored event, a call that is
        no event): counted under `reason`."""
        self.read += 1
        self.rejected[reason] += 1

    def event(
        self, mapping: EventMapping, record: dict[str, Any], line: Line, account: str | None = None
    ) -> Iterator[Frame]:
        """A vendor event: its contract row, ignored as the mapping says, or quarantined as unmapped.
        `account`: the account to take when the record names none (Segment: its user's group)."""
        name = text(record.get(mapping.vendor.event_name))
        if name in mapping.ignore:
            self.skip("ignored_event")
        elif name is None or name not in mapping.events:
            self.unmapped[str(name)] += 1
            why = f"event {name!r} is neither mapped nor ignored by {mapping.file.name}"
            yield from self.quarantine(line.quarantined(why if name else "no event name", "unmapped_event"))
        else:
            self.derived_ids += not mapping.has_own_id(record)
            yield from self.add("events", mapping.event_row(record, name, account), line.source)

    def flush(self, tables: tuple[str, ...] = ("accounts", "events")) -> Iterator[Frame]:
        """The frames of `tables` still gathering, accounts first: events may name them."""
        for table in tables:
            if self.rows[table] or (table == "events" and self.malformed):
                yield self._frame(table)

    def _frame(self, table: str) -> Frame:
        data = table_from_records(self.rows[table])
        for name in REQUIRED[table]:
            if name not in data.column_names:
                data = data.append_column(name, pa.nulls(data.num_rows, pa.string()))
        malformed = tuple(self.malformed) if table == "events" else ()
        frame = Frame(table, self.source, data, malformed, tuple(self.parts[table]))
        self.rows[table], self.parts[table] = [], []
        if table == "events":
            self.malformed = []
        return frame

    def report(self, mapping: EventMapping, files: list[Path], skipped: list[str]) -> dict[str, Any]:
        """The adapter's report: one entry for the export, and what a reader of the store should know."""
        entry = {
            "source": self.source,
            "source_rows": self.read,
            "mapped": sum(self.produced.values()),
            "rejected": dict(sorted(self.rejected.items())),
            "produced": dict(sorted(self.produced.items())),
            "unmapped_columns": {},
        }
        notes = [f"{self.read} records read from {len(files)} export file(s)"]
        if skipped:
            notes.append(f"{len(skipped)} other file(s) skipped: {', '.join(skipped[:SHOWN_NAMES])}")
        if self.unmapped:
            names = ", ".join(f"{n!r} {c}" for n, c in self.unmapped.most_common(SHOWN_NAMES))
            notes.append(f"events neither mapped nor ignored, quarantined as unmapped_event: {names}")
        if self.derived_ids:
            notes.append(f"{self.derived_ids} events lack an id field; their ids are a hash of the record")
        if mapping.time_zone is not None:
            notes.append(f"times written without a zone are read in {mapping.time_zone}")
        return {"name": mapping.vendor.name, "tables": {Path(self.source).name: entry}, "notes": notes}


def adapt_export(path: Path, mapping_file: Path | None, vendor: Vendor) -> Adapted:
    """An export whose every line is one event (Amplitude's, Mixpanel's), mapped by its mapping file."""
    mapping = read_event_mapping(mapping_file, vendor)
    files, skipped = export_files(path, JSON_SUFFIXES)
    batches = Batches(path)
    frames = list(_events(files, mapping, batches))
    return Adapted(frames, batches.report(mapping, files, skipped))


def _events(files: list[Path], mapping: EventMapping, batches: Batches) -> Iterator[Frame]:
    for file in files:
        for line in read_lines(file):
            record = line.parsed()
            if isinstance(record, Malformed):
                yield from batches.quarantine(record)
            else:
                yield from batches.event(mapping, record, line)
    yield from batches.flush()
