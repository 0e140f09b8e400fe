"""Killing a real `retain` process mid-write: watch one Delta table's folder and SIGKILL the writer the moment
its new data files appear, while its commit (the next `_delta_log/*.json`) has not.

A Delta writer puts every data file of a transaction first and commits last, so files without a commit are
what a crash mid-write leaves behind; `Killed` records them so a test can prove its kill was not too late.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

#: the real CLI of this environment
RETAIN = str(Path(sys.executable).with_name("retain"))
LOG = "_delta_log"
COMMIT = re.compile(r"^\d{20}\.json$")


@dataclass(frozen=True)
class TableFiles:
    """What is on disk under a table's folder: data files (Parquet, also while still being written) and
    commits."""

    data: frozenset[Path]
    commits: frozenset[Path]


def table_files(folder: Path) -> TableFiles:
    data: set[Path] = set()
    commits: set[Path] = set()
    pending = [folder]
    while pending:
        try:
            entries = list(os.scandir(pending.pop()))
        except FileNotFoundError:
            continue
        for entry in entries:
            if entry.is_dir():
                pending.append(Path(entry.path))
            elif ".parquet" in entry.name and LOG not in entry.path:
                data.add(Path(entry.path))
            elif COMMIT.match(entry.name) and entry.path.endswith(f"{LOG}/{entry.name}"):
                commits.add(Path(entry.path))
    return TableFiles(frozenset(data), frozenset(commits))


@dataclass(frozen=True)
class Killed:
    """A command killed while it wrote a table."""

    returncode: int
    #: data files the command had written to the table when it was killed
    orphans: frozenset[Path]
    #: commits it had made to the table by then (none: the kill came before its commit)
    commits: frozenset[Path]
    stderr: str


def kill_mid_write(args: list[str], table: Path, timeout: float = 120.0) -> Killed:
    """Run `retain *args`, and SIGKILL it as soon as new data files show under the `table` folder."""
    before = table_files(table)
    with tempfile.TemporaryFile("w+") as stderr:
        proc = subprocess.Popen([RETAIN, *args], stdout=subprocess.DEVNULL, stderr=stderr, text=True)
        deadline = time.monotonic() + timeout
        now = before
        while proc.poll() is None and time.monotonic() < deadline:
            now = table_files(table)
            if now.data - before.data or now.commits - before.commits:
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.0005)
        else:
            proc.kill()
        proc.wait()
        stderr.seek(0)
        said = stderr.read()
    return Killed(proc.returncode, now.data - before.data, now.commits - before.commits, said)


def run_retain(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RETAIN, *args], capture_output=True, text=True, check=False, timeout=300)
