"""A reload that reaches every worker process of one `retain serve`.

`retain serve --workers N` runs processes that share nothing in memory, and `POST /v1/admin/reload` reaches
the one that took the request. That one reloads, then adds one to a number kept in a file under the store's
serving folder (`reloads`); every worker, whenever it is asked for what it loaded, compares the file with
the number it last loaded at, and reloads first when it is behind. So once the POST has answered, no
worker answers from what it had before.

Why a file: the workers of a server share its store's folder, and a `stat` of it costs a few microseconds
against a request's milliseconds (the number is read only when the file changed); the decision log's
database may be remote, and Redis is optional. Separate hosts keep their own files: there a reload is per
host, as each host's alias poller is. A file that is missing or unreadable is generation 0: a worker then
keeps what it has, and the next reload writes the file anew.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

#: the file under the store's serving folder
RELOADS_FILE = "reloads"


class Reloads:
    """The deployment's reload generation, as one process sees it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        #: the file's stamp (inode, mtime) when last read, and the number it held: one value, so a thread
        #: never sees one's new stamp with the other's old number
        self._seen: tuple[tuple[int, int], int] | None = None

    def current(self) -> int:
        """The generation the file holds now (read only when its stamp changed)."""
        try:
            found = os.stat(self.path)
        except OSError:
            return 0
        stamp, seen = (found.st_ino, found.st_mtime_ns), self._seen
        if seen is None or seen[0] != stamp:
            seen = self._seen = (stamp, _number(self.path))
        return seen[1]

    def bump(self) -> int:
        """One more than the file held, written atomically under a lock against another worker's bump."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(f"{self.path.name}.lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            number = _number(self.path) + 1
            written = self.path.with_name(f"{self.path.name}.{os.getpid()}")
            written.write_text(f"{number}\n")
            os.replace(written, self.path)
        return number


def _number(path: Path) -> int:
    try:
        return int(path.read_text().strip() or 0)
    except (OSError, ValueError):
        return 0
