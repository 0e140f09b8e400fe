"""Read input files into Arrow tables (`Frame`s) per target table, without judging their content.

Judging is validation's job: readers only turn bytes into columns, keeping values as close to the
source as possible (CSV columns stay strings, and so do JSON timestamps, whose zone Arrow's inference
would drop) so validation can name the exact value it rejects. Rows a reader cannot even split into
columns, or whose bytes are not UTF-8, are kept as `malformed`, never dropped, and never cost the file's
other rows.
"""

from __future__ import annotations

import codecs
import csv
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.json as pjson
import pyarrow.parquet as pq

from core.errors import RetainError

#: Tables an input can feed; every other data file in a folder holds events.
SNAPSHOT_TABLES = ("accounts", "interventions")
SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
#: The simulator's answer key: reading it would leak the truth into the store.
TRUTH_DIR = "truth"


@dataclass(frozen=True)
class Malformed:
    """A row the reader could not split into columns or decode: where it was, its text, why, and the
    reason it is quarantined under."""

    source: str
    text: str
    detail: str
    reason: str = "malformed_row"


@dataclass(frozen=True)
class Frame:
    """Rows for one table, as read from `source`, or from the files of `parts` (path, rows) in order."""

    table: str
    source: str
    data: pa.Table
    malformed: tuple[Malformed, ...] = ()
    parts: tuple[tuple[str, int], ...] = ()

    def sources_of(self, rows: np.ndarray) -> list[str]:
        """The file each of `rows` was read from."""
        if not self.parts:
            return [self.source] * len(rows)
        ends = np.cumsum([n for _, n in self.parts])
        return [self.parts[i][0] for i in np.searchsorted(ends, rows, side="right")]


#: rows per frame handed to validation: big enough to pay its fixed cost rarely, small enough that an
#: ingest's memory stays flat however large its input
BATCH_ROWS = 500_000


@dataclass(frozen=True)
class Input:
    """The data files found under a path (read lazily, as bounded frames) and the other files skipped."""

    files: list[tuple[Path, str]]
    skipped: list[str] = field(default_factory=list)
    #: the folder the files came from, named as the source of frames merged across its files
    folder: Path | None = None

    def frames(self, batch_rows: int = BATCH_ROWS) -> Iterator[Frame]:
        """Frames of at most about `batch_rows` rows: accounts first (events name them), then the rest in
        file order; small files of one table and schema (a simulator's daily partitions) share a frame."""
        ordered = sorted(self.files, key=lambda item: item[1] != "accounts")
        pieces = (piece for path, table in ordered for piece in read_file_batches(path, table, batch_rows))
        return coalesced(pieces, str(self.folder or ""), batch_rows)


def read_path(path: Path) -> Input:
    """A single data file, or a folder of them (e.g. a simulator output).

    In a folder, `accounts.*` and `interventions.*` feed those tables (also as folders), every
    other data file holds events, and `truth/`, hidden files and other suffixes are skipped.
    """
    if not path.exists():
        raise RetainError(f"{path} does not exist")
    if path.is_file():
        if path.suffix.lower() not in SUFFIXES:
            raise RetainError(f"{path}: unsupported file type; expected {', '.join(sorted(SUFFIXES))}")
        return Input([(path, _table_of(Path(path.name)))])
    files: list[tuple[Path, str]] = []
    skipped: list[str] = []
    for file in _walk(path):
        rel = file.relative_to(path)
        if file.suffix.lower() in SUFFIXES:
            files.append((file, _table_of(rel)))
        else:
            skipped.append(rel.as_posix())
    if not files:
        raise RetainError(f"{path}: no data files ({', '.join(sorted(SUFFIXES))}) found")
    return Input(files, skipped, path)


def coalesced(pieces: Iterator[Frame], folder: str, batch_rows: int) -> Iterator[Frame]:
    """Consecutive frames of one table and schema joined until they reach `batch_rows` rows.

    Validation has a fixed cost per frame; paid once per batch rather than once per small file.
    """
    group: list[Frame] = []
    for piece in pieces:
        if group and (_key(group[0]) != _key(piece) or sum(f.data.num_rows for f in group) >= batch_rows):
            yield _joined(group, folder)
            group = []
        group.append(piece)
    if group:
        yield _joined(group, folder)


def _key(frame: Frame) -> tuple[str, pa.Schema]:
    return frame.table, frame.data.schema.remove_metadata()


def _joined(group: list[Frame], folder: str) -> Frame:
    if len(group) == 1:
        return group[0]
    return Frame(
        group[0].table,
        folder,
        pa.concat_tables([f.data.replace_schema_metadata(None) for f in group]),
        tuple(m for f in group for m in f.malformed),
        tuple(part for f in group for part in (f.parts or ((f.source, f.data.num_rows),))),
    )


def _walk(folder: Path) -> Iterator[Path]:
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith((".", "_")) or (entry.is_dir() and entry.name == TRUTH_DIR):
            continue
        if entry.is_dir():
            yield from _walk(entry)
        else:
            yield entry


def _table_of(rel: Path) -> str:
    names = {Path(rel.parts[0]).stem.lower(), rel.stem.lower()}
    return next((t for t in SNAPSHOT_TABLES if t in names), "events")


def read_file_batches(path: Path, table: str, batch_rows: int = BATCH_ROWS) -> Iterator[Frame]:
    """A file as frames of at most `batch_rows` rows (Parquet and CSV stream; JSON Lines is read whole).
    A file that cannot be read at all is an error naming it, raised before the ingest commits anything."""
    kind = SUFFIXES[path.suffix.lower()]
    try:
        if kind == "parquet":
            yield from _read_parquet(path, table, batch_rows)
        elif kind == "csv":
            yield from _read_csv(path, table, batch_rows)
        else:
            yield _checked_columns(path, _read_jsonl(path, table))
    except (pa.ArrowException, OSError, UnicodeDecodeError, csv.Error) as e:
        raise RetainError(f"cannot read {path} as {kind}: {e}") from e


def _checked_columns(path: Path, frame: Frame) -> Frame:
    names = frame.data.column_names
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise RetainError(f"{path}: column(s) {', '.join(repeated)} appear more than once")
    return frame


def _read_parquet(path: Path, table: str, batch_rows: int) -> Iterator[Frame]:
    parquet = pq.ParquetFile(path)
    if parquet.metadata.num_rows == 0:
        yield _checked_columns(path, Frame(table, str(path), parquet.schema_arrow.empty_table()))
        return
    for batch in parquet.iter_batches(batch_size=batch_rows):
        yield _checked_columns(path, Frame(table, str(path), pa.Table.from_batches([batch])))


def _read_csv(path: Path, table: str, batch_rows: int) -> Iterator[Frame]:
    """Every column as text (validation casts); rows with the wrong number of fields are malformed and
    travel with the frame that was being read when they were met. A file that is not all UTF-8 is read
    line by line instead, so its undecodable rows are quarantined and the others kept."""
    header = _csv_header(path)
    if not _is_utf8(path):
        yield from _read_csv_slowly(path, table, header, batch_rows)
        return
    malformed: list[Malformed] = []

    def keep_bad_row(row: Any) -> str:
        detail = f"expected {row.expected_columns} fields, got {row.actual_columns}"
        malformed.append(Malformed(str(path), row.text, detail))
        return "skip"

    reader = pcsv.open_csv(
        path,
        parse_options=pcsv.ParseOptions(invalid_row_handler=keep_bad_row),
        convert_options=pcsv.ConvertOptions(
            column_types=dict.fromkeys(header, pa.string()), strings_can_be_null=True
        ),
    )
    batches: list[pa.RecordBatch] = []
    done = False
    while not done:
        try:
            batches.append(reader.read_next_batch())
        except StopIteration:
            done = True
        if done or sum(b.num_rows for b in batches) >= batch_rows:
            data = pa.Table.from_batches(batches, reader.schema)
            yield _checked_columns(path, Frame(table, str(path), data, tuple(malformed)))
            batches, malformed[:] = [], []


def _csv_header(path: Path) -> list[str]:
    """The column names, from the first line alone: a bad byte in a later row is that row's problem."""
    with open(path, "rb") as f:
        first = f.readline().decode("utf-8-sig")
    header = next(csv.reader([first]), None)
    if not header:
        raise RetainError(f"{path}: empty CSV, expected a header row")
    return header


def _is_utf8(path: Path) -> bool:
    """Whether every byte decodes, checked in C a block at a time (Arrow refuses the whole file if not)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    with open(path, "rb") as f:
        try:
            while block := f.read(1 << 24):
                decoder.decode(block)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return False
    return True


def _read_csv_slowly(path: Path, table: str, header: list[str], batch_rows: int) -> Iterator[Frame]:
    """Python's CSV reader on text whose undecodable bytes are kept as escapes: a row holding any is
    `invalid_utf8` with its line, a row with the wrong number of fields `malformed_row`; the rest become
    text columns with the nulls Arrow's reader would give."""
    nulls = set(pcsv.ConvertOptions().null_values)
    rows: list[list[str]] = []
    malformed: list[Malformed] = []
    taken: list[str] = []
    with open(path, newline="", encoding="utf-8-sig", errors="surrogateescape") as f:
        reader = csv.reader(_kept(f, taken))
        next(reader)
        taken.clear()
        for cells in reader:
            text, start = "".join(taken).rstrip("\r\n"), reader.line_num - len(taken) + 1
            taken.clear()
            if not _decodes(text):
                shown = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
                malformed.append(Malformed(str(path), shown, f"line {start}: not UTF-8", "invalid_utf8"))
            elif cells and len(cells) != len(header):
                detail = f"line {start}: expected {len(header)} fields, got {len(cells)}"
                malformed.append(Malformed(str(path), text, detail))
            elif cells:
                rows.append(cells)
            if len(rows) >= batch_rows:
                yield _text_frame(path, table, header, rows, nulls, malformed)
                rows, malformed = [], []
    yield _text_frame(path, table, header, rows, nulls, malformed)


def _kept(lines: Iterable[str], taken: list[str]) -> Iterator[str]:
    """The lines, each also kept in `taken`: the text of the row the CSV reader is parsing."""
    for line in lines:
        taken.append(line)
        yield line


def _decodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _text_frame(
    path: Path, table: str, header: list[str], rows: list[list[str]], nulls: set[str], bad: list[Malformed]
) -> Frame:
    columns = {
        name: pa.array([None if r[i] in nulls else r[i] for r in rows], pa.string())
        for i, name in enumerate(header)
    }
    return _checked_columns(path, Frame(table, str(path), pa.table(columns), tuple(bad)))


def _read_jsonl(path: Path, table: str) -> Frame:
    """Arrow's reader when the file is regular (read again with timestamps as text if its inference made
    any: it drops their zones); line by line when types vary or a line is broken."""
    try:
        data = pjson.read_json(path)
        as_text = _timestamps_as_text(data.schema)
        if as_text:
            options = pjson.ParseOptions(explicit_schema=as_text, unexpected_field_behavior="infer")
            data = pjson.read_json(path, parse_options=options)
        return Frame(table, str(path), data)
    except pa.ArrowInvalid:
        pass
    rows: list[dict[str, Any]] = []
    malformed: list[Malformed] = []
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            row = parsed_json_line(str(path), number, raw)
            if isinstance(row, Malformed):
                malformed.append(row)
            else:
                rows.append(row)
    return Frame(table, str(path), table_from_records(rows), tuple(malformed))


def parsed_json_line(source: str, number: int, raw: bytes, unit: str = "line") -> dict[str, Any] | Malformed:
    """One JSON Lines record's object, or the quarantined row saying why it is none, at its `unit` and
    `number` in `source`: every reader of JSON Lines (files, event-stream exports) judges a line alike."""
    text = raw.decode("utf-8", "backslashreplace").rstrip("\r\n")
    try:
        value = json.loads(raw)
    except UnicodeDecodeError:
        return Malformed(source, text, f"{unit} {number}: not UTF-8", "invalid_utf8")
    except json.JSONDecodeError as e:
        return Malformed(source, text, f"{unit} {number}: not JSON ({e.msg})")
    if not isinstance(value, dict):
        return Malformed(source, text, f"{unit} {number}: not a JSON object")
    return value


def _timestamps_as_text(schema: pa.Schema | pa.StructType) -> pa.Schema:
    """The fields of `schema` that are timestamps, or structs holding some, with those timestamps as text."""
    fields: list[pa.Field] = []
    for f in schema:
        if pa.types.is_timestamp(f.type):
            fields.append(pa.field(f.name, pa.string()))
        elif pa.types.is_struct(f.type) and (inner := _timestamps_as_text(f.type)):
            fields.append(pa.field(f.name, pa.struct(list(inner))))
    return pa.schema(fields)


def table_from_records(rows: list[dict[str, Any]]) -> pa.Table:
    """Columns from dicts whose values may vary in type: typed when consistent, else as text."""
    names = list(dict.fromkeys(k for row in rows for k in row))
    return pa.table({name: column_from_values([row.get(name) for row in rows]) for name in names})


def column_from_values(values: list[Any]) -> pa.Array:
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([_as_text(v) for v in values], pa.string())


def _as_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value)
