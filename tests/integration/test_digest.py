"""`retain digest` on the served world, scored at its last two cutoffs: the risk moves against an
independent comparison of the two batches' Parquet files, ARR at risk against the feature rows, the
alerts against the bands that changed, a self-contained page, and the refusals."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pyarrow.compute as pc
import pytest

from core.errors import RetainError
from core.settings import RiskBands, Settings
from features.cutoffs import cutoff_instant
from features.stored import read_features, stored_cutoffs
from products.digest.run import DigestFiles
from retain import api
from retain.cli import summaries
from serving.assess import risk_band
from tests.support.served import World


@dataclass(frozen=True)
class Digested:
    files: DigestFiles
    report: dict
    before: pd.DataFrame
    latest: pd.DataFrame
    cutoff: date
    #: the digest's settings: the served world's small model never reaches the default high band (0.25),
    #: so its bands are drawn lower for some accounts to cross them
    settings: Settings


@pytest.fixture(scope="module")
def digested(served_world: World, tmp_path_factory: pytest.TempPathFactory) -> Digested:
    world, out = served_world, tmp_path_factory.mktemp("digest")
    where = {"store": world.store, "settings": world.settings}
    before, latest = stored_cutoffs(world.store)[-2:]
    api.score(before, out / "before.parquet", **where)
    api.score(latest, out / "latest.parquet", **where)
    monday = latest - timedelta(days=latest.weekday())
    bands = RiskBands(medium=0.03, high=0.06, critical=0.2)
    settings = world.settings.model_copy(
        update={"serve": world.settings.serve.model_copy(update={"risk_bands": bands})}
    )
    files = api.digest(monday, out, store=world.store, settings=settings)
    frames = [pd.read_parquet(out / f"{n}.parquet").set_index("account_id") for n in ("before", "latest")]
    return Digested(files, json.loads(files.json.read_text()), *frames, latest, settings)


def test_the_accounts_entering_and_leaving_high_risk_are_those_the_two_batches_say(
    digested: Digested,
) -> None:
    high = digested.settings.serve.risk_bands.high
    both = digested.latest[["churn_probability"]].join(
        digested.before[["churn_probability"]], how="outer", rsuffix="_before"
    )
    now, then = both["churn_probability"] >= high, both["churn_probability_before"] >= high
    risk = digested.report["risk"]
    assert risk["cutoff"] == str(digested.cutoff) and risk["high_from"] == high
    assert {m["account_id"] for m in risk["entering"]} == set(both.index[now & ~then])
    assert {m["account_id"] for m in risk["leaving"]} == set(both.index[then & ~now])
    assert risk["entering"] and risk["leaving"]
    for move in risk["entering"] + risk["leaving"]:
        row = both.loc[move["account_id"]].map(lambda p: None if pd.isna(p) else pytest.approx(p))
        assert move["probability_after"] == row["churn_probability"], "None: no longer scored"
        assert move["probability_before"] == row["churn_probability_before"], "None: new"
    arrs = [m["arr"] or 0.0 for m in risk["entering"]]
    assert arrs == sorted(arrs, reverse=True), "largest ARR first"


def test_arr_at_risk_is_arr_times_probability_and_by_tier_sums_to_the_total(
    served_world: World, digested: Digested
) -> None:
    rows = read_features(
        served_world.store,
        columns=["account_id", "arr"],
        where=pc.field("cutoff") == cutoff_instant(digested.cutoff),
    ).to_pandas()
    expected = (digested.latest["churn_probability"] * rows.set_index("account_id")["arr"]).sum()
    arr = digested.report["arr_at_risk"]
    assert arr["total"]["arr_at_risk"] == pytest.approx(expected, abs=0.01)
    assert arr["total"]["accounts"] == len(digested.latest)
    for groups in (arr["by_tier"], arr["by_csm"]):
        assert sum(g["arr_at_risk"] for g in groups) == pytest.approx(arr["total"]["arr_at_risk"], abs=0.1)
        assert sum(g["change"] for g in groups) == pytest.approx(arr["total"]["change"], abs=0.1)


def test_the_weeks_alerts_are_the_risk_bands_the_scoring_changed(
    served_world: World, digested: Digested
) -> None:
    settings = served_world.settings
    both = digested.latest.index.intersection(digested.before.index)
    changed = sum(
        risk_band(digested.latest.at[a, "churn_probability"], settings)
        != risk_band(digested.before.at[a, "churn_probability"], settings)
        for a in both
    )
    alerts = digested.report["alerts"]
    assert alerts["logged"] is True
    counts = {c["type"]: c for c in alerts["by_type"]}
    assert counts["risk_band_changed"]["count"] == changed
    assert 0 < len(counts["risk_band_changed"]["examples"]) <= 3


def test_the_page_is_self_contained_and_names_the_week(digested: Digested) -> None:
    page, report = digested.files.html.read_text(), digested.report
    week = digested.files.week
    assert digested.files.html.name == f"digest-{week}.html" and report["schema_version"] == 1
    assert report["week"] == str(week) and week.weekday() == 0
    assert "<script" not in page and "<link" not in page and "<img" not in page
    assert not re.search(r"""(src|href)\s*=\s*["']?https?:""", page)
    assert f"Week of {week} to {week + timedelta(days=6)}" in page
    assert report["plan"]["week"] is None and "No plan was recorded for this week" in page
    assert report["headlines"] == digested.files.headlines
    assert "Digest of the week of" in str(summaries.digested(digested.files).renderables[0])


def test_a_week_outside_the_data_or_before_any_score_is_refused(served_world: World) -> None:
    where = {"store": served_world.store, "settings": served_world.settings}
    with pytest.raises(RetainError, match="outside the store's data"):
        api.digest(date(2031, 1, 6), Path("unused"), **where)
    first = stored_cutoffs(served_world.store)[0]
    monday = first - timedelta(days=first.weekday())
    with pytest.raises(RetainError, match=rf"retain score --cutoff {first}"):
        api.digest(monday, Path("unused"), **where)


def test_the_cli_exits_2_on_a_day_that_is_no_monday(served_world: World, tmp_path: Path) -> None:
    tuesday = served_world.latest - timedelta(days=served_world.latest.weekday() - 1)
    command = [sys.executable, "-m", "retain", "digest", "--week", str(tuesday), "--out", str(tmp_path)]
    run = subprocess.run(
        [*command, "--store", str(served_world.store.root)], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 2, run.stderr[-2000:]
    assert "starts on a Monday" in run.stderr and not list(tmp_path.iterdir())
