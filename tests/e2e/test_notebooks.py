"""Notebooks import the package and must run top to bottom, so they never rot.

The review and the causal walkthrough read a store they are pointed at (their `RETAIN_*` variables), as a
reader with a store of their own would: here the session's worlds, which the real pipeline built from the
simulations the notebooks would otherwise build themselves (the causal walkthrough's is the uplift world's
simulation; the review's, a smaller one, with a trained churn champion; the monitoring notebook's, the
drifted world the monitor's tests use). The tour simulates its own, of
half its default size: what it shows needs no more.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.support.served import World
from tests.support.worlds import DriftedWorld, UpliftWorld

NOTEBOOKS = sorted((Path(__file__).parents[2] / "notebooks").glob("*.ipynb"))


def review_store(request: pytest.FixtureRequest) -> dict[str, str]:
    world: World = request.getfixturevalue("served_world")
    return {"RETAIN_REVIEW_STORE": str(world.store.root)}


def causal_store(request: pytest.FixtureRequest) -> dict[str, str]:
    world: UpliftWorld = request.getfixturevalue("uplift_world")
    return {"RETAIN_CAUSAL_STORE": str(world.store.root), "RETAIN_CAUSAL_TRUTH": str(world.simulation)}


def monitored_store(request: pytest.FixtureRequest) -> dict[str, str]:
    world: DriftedWorld = request.getfixturevalue("drifted_world")
    return {"RETAIN_MONITOR_STORE": str(world.store.root), "RETAIN_MONITOR_TRUTH": str(world.simulation)}


def tour_size(request: pytest.FixtureRequest) -> dict[str, str]:
    return {"RETAIN_TOUR_ACCOUNTS": "150"}


#: the variables each notebook is run with: the store it reads, or the size of what it simulates
VARIABLES: dict[str, Callable[[pytest.FixtureRequest], dict[str, str]]] = {
    "01_telemetry_tour.ipynb": tour_size,
    "02_model_review.ipynb": review_store,
    "03_causal_walkthrough.ipynb": causal_store,
    "04_monitoring.ipynb": monitored_store,
}
#: the notebooks given a store, which must not make one of their own
GIVEN_A_STORE = ("02_model_review.ipynb", "03_causal_walkthrough.ipynb", "04_monitoring.ipynb")


@pytest.fixture
def variables(path: Path, request: pytest.FixtureRequest) -> dict[str, str]:
    """The notebook's variables (a world it reads is built first if it is not yet)."""
    return VARIABLES[path.name](request) if path.name in VARIABLES else {}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(
    path: Path, variables: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the kernel inherits TMPDIR: the notebooks' temporary work folders go where pytest cleans up
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    ).execute()
    errors = [
        o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"
    ]
    assert not errors
    assert any(o.get("data", {}).get("image/png") for c in notebook.cells for o in c.get("outputs", []))
    if path.name in GIVEN_A_STORE:
        assert not list(tmp_path.glob("retain-*")), "the notebook read the store it was given, made none"
