"""Session worlds built once for the whole run, not once per test process: the first xdist worker that
asks builds the world in the run's shared temp folder; every worker, the builder too, tests on its own copy
(so no worker sees another's changes), its paths moved to the copy. Stores are relocatable
(test_store_relocation.py), so a copy serves, trains and reads its MLflow runs as the original would."""

from __future__ import annotations

import dataclasses
import fcntl
import os
import pickle
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
from pydantic import BaseModel

Built = TypeVar("Built")


def built_once(name: str, factory: pytest.TempPathFactory, build: Callable[[Path], Built]) -> Built:
    """`build(root)` once for the run (once per process without xdist), returned relocated to a copy
    of `root` that this process alone uses."""
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        return build(factory.mktemp(name))
    shared = factory.getbasetemp().parent / f"shared-{name}"
    with _locked(shared.with_suffix(".lock")):
        built = shared / "world.pickle"
        if not built.exists():
            (shared / "root").mkdir(parents=True, exist_ok=True)
            world = build(shared / "root")
            built.write_bytes(pickle.dumps(world))
        copy = factory.mktemp(name) / "root"
        shutil.copytree(shared / "root", copy, symlinks=True)
        world = pickle.loads(built.read_bytes())
    return _relocated(world, shared / "root", copy)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(held, fcntl.LOCK_UN)


def _relocated(value: Any, old: Path, new: Path) -> Any:
    """`value` with every path under `old` moved under `new`: in paths, settings and the fields of
    dataclasses (stores, results) holding them; anything else (models, tables) as it is."""
    if isinstance(value, Path):
        return new / value.relative_to(old) if value.is_relative_to(old) else value
    if isinstance(value, BaseModel):
        moved = {k: _relocated(v, old, new) for k, v in value if isinstance(v, Path)}
        return value.model_copy(update=moved)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: _relocated(getattr(value, f.name), old, new) for f in dataclasses.fields(value)}
        return dataclasses.replace(value, **fields)
    return value
