"""The reload generation the workers of one server share."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from serving.reloads import Reloads


def test_a_bump_is_seen_by_every_reader_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "serving" / "reloads"
    taker, other = Reloads(path), Reloads(path)
    assert other.current() == 0  # no file yet
    assert taker.bump() == 1
    assert other.current() == 1
    assert [taker.bump() for _ in range(3)] == [2, 3, 4]
    assert other.current() == 4 and Reloads(path).current() == 4


def _bump(path: Path) -> None:
    for _ in range(25):
        Reloads(path).bump()


def test_bumps_from_processes_at_once_are_all_counted(tmp_path: Path) -> None:
    path = tmp_path / "reloads"
    workers = [multiprocessing.get_context("spawn").Process(target=_bump, args=(path,)) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert Reloads(path).current() == 75


def test_a_damaged_generation_file_reads_as_none_yet(tmp_path: Path) -> None:
    path = tmp_path / "reloads"
    path.write_text("not a number")
    assert Reloads(path).current() == 0
    assert Reloads(path).bump() == 1
