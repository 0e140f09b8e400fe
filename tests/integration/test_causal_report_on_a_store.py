"""The causal report on a simulated store: every action covered, nothing found in the placebo action."""

from __future__ import annotations

import pickle
import shutil
from dataclasses import replace
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from core.catalogue import ACTIONS
from core.settings import Settings
from ingest.run import ingest_path
from products.report.run import LATER_NOT_NEVER_SHARE
from simulate import SimConfig, simulate_to
from store.delta import Store
from tests.support.reports import EFFECT_KEYS, contains, report
from training.causal.design import store_design
from training.causal.holdout import MIN_HELD_WEEKS


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("causal-store")
    simulate_to(SimConfig(accounts=600, days=240, seed=3, start=date(2024, 7, 1)), root / "sim")
    ingest_path(Store(root / "store"), root / "sim")
    return root / "store"


@pytest.mark.slow
def test_the_store_report_covers_every_action_and_finds_nothing_in_the_placebo_action(
    store: Path, tmp_path: Path
) -> None:
    got = report(["--store", str(store)], tmp_path)

    pairs = {(e["treatment"], e["outcome"]) for e in got["effects"]}
    assert pairs == {(a, o) for a in ACTIONS for o in ("churn", "expansion")}
    assert len(got["effects"]) == 24
    assert all(set(e) == EFFECT_KEYS for e in got["effects"])
    placebo = next(e for e in got["effects"] if (e["treatment"], e["outcome"]) == ("reference_ask", "churn"))
    assert contains(placebo, 0.0)
    # the experiment arm gives every action a randomised comparison, with a real width even without events
    assert {h["treatment"] for h in got["holdout"]} == set(ACTIONS)
    assert all(h["ci_high"] > h["ci_low"] for h in got["holdout"])
    assert {(r["treatment"], r["outcome"]) for r in got["refutations"]} == {(a, "churn") for a in ACTIONS}
    # on the simulator's data, where the estimator's assumptions hold, every placebo and random common
    # cause passes; the subset check has no false-alarm control (one random 80% of the accounts, shared by
    # the 12 actions), so one chance miss among them is allowed
    failed = [r for r in got["refutations"] if not r["passed"]]
    assert all(r["check"] == "data_subset" for r in failed) and len(failed) <= 1, failed
    assert {s["by"] for s in got["segments"]} <= {"tier", "segment", "health_band"}
    assert got["source"]["accounts"] <= 600 and got["source"]["horizon_days"] == 90
    # from the log: how often "not this week" was followed by the action within the horizon anyway
    later = {o["treatment"]: o["control_treated_later"] for o in got["overlap"]}
    assert all(0.0 < share < 1.0 for share in later.values()), later
    named = [a for a, share in later.items() if round(share, 2) > LATER_NOT_NEVER_SHARE]
    caveat = [c for c in got["caveats"] if "followed by the same action" in c]
    assert named and len(caveat) == 1 and all(a in caveat[0] for a in named)

    # the never-treated holdout: the usual course against never acting, from the weeks after each draw
    program = {p["outcome"]: p for p in got["program"]}
    assert set(program) == {"churn", "expansion"}
    assert all(p["n_control"] >= MIN_HELD_WEEKS and p["ci_low"] < p["ci_high"] for p in program.values())

    page = (tmp_path / "report.html").read_text()
    assert "The usual course against never acting" in page
    assert all(action in page for action in ACTIONS)
    assert "http://" not in page and "https://" not in page


def test_the_weekly_design_is_kept_for_the_next_step_and_built_afresh_after_an_ingest(
    store: Path, tmp_path: Path
) -> None:
    copy = Store(tmp_path / "store")
    shutil.copytree(store, copy.root)
    settings = Settings(home=copy.root)
    design = store_design(copy, settings, 90)
    kept = copy.root / "cache" / "design"
    (path,) = kept.glob("*.pkl")
    # the next read is the kept design: a marked one comes back as it was marked
    path.write_bytes(pickle.dumps(replace(design, rows=design.rows.head(3))))
    assert len(store_design(copy, settings, 90).rows) == 3
    # the deployment's own settings are not part of it; what the features use is
    elsewhere = settings.model_copy(update={"redis_url": "redis://elsewhere:6379/0"})
    assert len(store_design(copy, elsewhere, 90).rows) == 3
    weights = settings.health_weights.model_copy(update={"usage": 0.5, "engagement": 0.2})
    assert len(store_design(copy, settings.model_copy(update={"health_weights": weights}), 90).rows) > 3
    # an ingest makes new table versions: the design is built afresh
    simulate_to(SimConfig(accounts=5, days=60, seed=4, start=date(2024, 7, 1)), tmp_path / "more")
    ingest_path(copy, tmp_path / "more")
    fresh = store_design(copy, settings, 90)
    assert len(fresh.rows) > 3 and len(list(kept.glob("*.pkl"))) == 2
    # a kept design that cannot be read is built again, not an error (the build's sums may differ in the
    # last bits: DuckDB adds in parallel)
    for torn in kept.glob("*.pkl"):
        torn.write_bytes(b"torn")
    pd.testing.assert_frame_equal(store_design(copy, settings, 90).rows, fresh.rows, rtol=1e-9)
