"""The causal intervention report (`retain report causal`): it recovers a known effect from confounded
data where the naive difference does not, finds nothing in a placebo, names the problem in bad input, and
runs end to end on a small simulated store whose `reference_ask` does nothing."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from core.parallel import Workers
from products.report.estimation import placebo_holds, placebo_level
from products.report.run import analyse
from products.report.study import table_study
from retain.cli import app, main
from tests.support.reports import EFFECT_KEYS, contains, report
from training.causal.doubly_robust import Effect

TRUE_EFFECT = -0.10
LEAF_KEYS = {"rule", "rows", "ate", "se", "ci_low", "ci_high", "naive_difference", "n_treated", "n_control"}


def confounded(n: int, seed: int) -> pd.DataFrame:
    """x drives both who is treated and the outcome; the treatment lowers P(churned) by exactly 0.10."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, n)
    treated = (rng.random(n) < 1 / (1 + np.exp(-2.5 * x))).astype(int)
    churned = (rng.random(n) < 0.35 + 0.25 * x + TRUE_EFFECT * treated).astype(int)
    return pd.DataFrame(
        {
            "customer_id": [f"cust-{i:05d}" for i in range(n)],
            "x": x,
            "region": rng.choice(["north", "south", "east"], n),
            "noise": rng.normal(size=n),
            "treated": treated,
            "placebo": rng.integers(0, 2, n),
            "churned": churned,
        }
    )


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("causal") / "experiment.csv"
    confounded(4_000, seed=0).to_csv(path, index=False)
    return path


def test_a_confounded_table_gives_the_true_effect_where_the_naive_difference_fails(
    table: Path, tmp_path: Path
) -> None:
    got = report(["--table", str(table), "--treatment", "treated", "--outcome", "churned"], tmp_path)

    (effect,) = got["effects"]
    assert set(effect) == EFFECT_KEYS
    assert (effect["treatment"], effect["outcome"]) == ("treated", "churned")
    assert effect["n_treated"] + effect["n_control"] == 4_000
    assert contains(effect, TRUE_EFFECT)
    dr_error = abs(effect["ate"] - TRUE_EFFECT)
    naive_error = abs(effect["naive_difference"] - TRUE_EFFECT)
    assert naive_error > 0.1 and naive_error > 4 * dr_error
    assert got["report_version"] == 6
    assert got["covariates_used"] == ["x", "region", "noise", "placebo"]  # the confounder x kept
    assert got["covariates_dropped"] == [
        {
            "column": "customer_id",
            "reason": "id-like: a different value on every row",
            "statistic": None,
            "value": None,
        }
    ]
    assert {o["treatment"] for o in got["overlap"]} == {"treated"} and not got["overlap"][0]["poor"]
    assert got["overlap"][0]["control_treated_later"] is None  # a table does not say what came later
    assert [r["check"] for r in got["refutations"]] == [
        "placebo_treatment",
        "random_common_cause",
        "data_subset",
    ]
    assert got["holdout"] == []  # no experiment arm in a table
    assert got["caveats"] and {s["by"] for s in got["segments"]} == {"region"}

    page = (tmp_path / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 2
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page and "<link" not in page
    assert "<style>" in page  # the stylesheet travels with the page


def test_the_page_shows_markup_in_the_data_as_text(tmp_path: Path) -> None:
    """Column values reach the page (treatments, segment levels, tree rules): autoescaped, never markup."""
    rng = np.random.default_rng(6)
    n = 1_000
    frame = pd.DataFrame(
        {
            "x": rng.uniform(-1, 1, n),
            "plan": rng.choice(["<b>gold</b>", "<script>alert(1)</script>"], n),
            "offer": rng.choice(["none", "<i>call</i>"], n),
        }
    )
    frame["churned"] = (rng.random(n) < 0.4 + 0.2 * frame["x"]).astype(int)
    path = tmp_path / "markup.csv"
    frame.to_csv(path, index=False)

    got = report(
        ["--table", str(path), "--treatment", "offer", "--outcome", "churned", "--control", "none"],
        tmp_path / "r",
    )

    assert {s["level"] for s in got["segments"]} == {"<b>gold</b>", "<script>alert(1)</script>"}
    page = (tmp_path / "r" / "report.html").read_text()
    assert "<script" not in page and "<b>gold" not in page and "<i>call" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;i&gt;call&lt;/i&gt;" in page


def test_estimating_side_by_side_changes_no_number() -> None:
    """Each arm's estimates and each of its refutations run as separate steps, in whichever worker process
    and order: the report is the same byte for byte as when one process runs them in turn."""
    rng = np.random.default_rng(7)
    n = 600
    frame = pd.DataFrame({"x": rng.uniform(-1, 1, n), "arm": rng.choice(["none", "email", "call"], n)})
    frame["churned"] = (rng.random(n) < 0.4 + 0.2 * frame["x"]).astype(int)
    study = table_study(frame, "arm", "churned", "none", table="arms.csv", seed=0)

    alone = analyse(study, Workers(1)).report
    side_by_side = analyse(study, Workers(2)).report

    assert [r.check for r in alone.refutations] == [
        "placebo_treatment",
        "random_common_cause",
        "data_subset",
    ] * 2
    assert side_by_side.to_json() == alone.to_json()


def test_a_placebo_column_has_no_effect_and_passes_every_refutation(table: Path, tmp_path: Path) -> None:
    got = report(["--table", str(table), "--treatment", "placebo", "--outcome", "churned"], tmp_path)

    assert contains(got["effects"][0], 0.0)
    assert len(got["refutations"]) == 3
    assert all(r["passed"] and r["verdict"].startswith("Passed: ") for r in got["refutations"])


def test_a_report_of_unbiased_placebos_raises_a_false_alarm_one_time_in_twenty_not_one_in_two() -> None:
    """Twelve arms' placebos, each judged at 95%, fail one of them in 46% of reports with nothing wrong;
    judged together (Bonferroni), in 5%, while a real bias of four standard errors still fails."""
    rng = np.random.default_rng(0)
    reports = rng.standard_normal((4_000, 12))

    def effect(z: float) -> Effect:
        return Effect(z, 1.0, z - 1.96, z + 1.96, z, 100, 100)

    def any_fails(checks: int) -> float:
        return float(np.mean([not all(placebo_holds(effect(z), checks) for z in row) for row in reports]))

    assert placebo_level(1) == pytest.approx(0.95) and placebo_level(12) == pytest.approx(1 - 0.05 / 12)
    assert 0.035 < any_fails(12) < 0.065
    assert any_fails(1) > 0.4
    assert not placebo_holds(effect(4.0), 12) and not placebo_holds(effect(-4.0), 12)


def test_each_treatment_value_is_compared_with_the_control(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    n = 3_000
    frame = pd.DataFrame({"x": rng.uniform(-1, 1, n), "arm": rng.choice(["none", "email", "call"], n)})
    lift = frame["arm"].map({"none": 0.0, "email": 0.0, "call": 0.15})
    frame["renewed"] = np.where(rng.random(n) < 0.4 + 0.2 * frame["x"] + lift, "yes", "no")
    path = tmp_path / "arms.parquet"
    frame.to_parquet(path)

    got = report(
        ["--table", str(path), "--treatment", "arm", "--outcome", "renewed", "--control", "none"],
        tmp_path / "r",
    )

    effects = {e["treatment"]: e for e in got["effects"]}
    assert set(effects) == {"email", "call"}
    assert {e["outcome"] for e in got["effects"]} == {"renewed"}
    assert (
        effects["call"]["n_control"] == effects["email"]["n_control"] == int((frame["arm"] == "none").sum())
    )
    assert contains(effects["call"], 0.15) and not contains(effects["call"], 0.0)
    assert contains(effects["email"], 0.0)


def test_a_numeric_outcome_is_estimated_in_its_own_units(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    n = 2_000
    x = rng.uniform(-1, 1, n)
    treated = rng.random(n) < 1 / (1 + np.exp(-2 * x))
    revenue = 100 + 40 * x + 15 * treated + rng.normal(0, 10, n)
    path = tmp_path / "revenue.csv"
    pd.DataFrame({"x": x, "upsell_call": treated, "revenue": revenue}).to_csv(path, index=False)

    got = report(["--table", str(path), "--treatment", "upsell_call", "--outcome", "revenue"], tmp_path / "r")

    (effect,) = got["effects"]
    assert effect["treatment"] == "upsell_call"
    assert contains(effect, 15.0) and effect["naive_difference"] > 25
    assert got["outcomes"]["revenue"]["type"] == "numeric"


def test_who_responds_best_names_the_responsive_segment(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    n = 4_000
    region = rng.choice(["north", "south", "east", "west"], n)
    treated = rng.integers(0, 2, n)
    churned = rng.random(n) < 0.4 - 0.3 * treated * (region == "north")
    path = tmp_path / "regions.csv"
    pd.DataFrame({"region": region, "treated": treated, "churned": churned.astype(int)}).to_csv(
        path, index=False
    )

    got = report(["--table", str(path), "--treatment", "treated", "--outcome", "churned"], tmp_path / "r")

    (tree,) = got["responders"]
    strongest = tree["leaves"][0]
    assert strongest["rule"] == "region is north"
    assert contains(strongest, -0.3) and strongest["ci_high"] < 0
    assert "region is north" in tree["summary"]
    # ranking the held-out half by the tree sorts who gains, beyond a random ranking
    assert tree["targeting"]["better_than_random"] and tree["targeting"]["qini"] > 0
    assert all(set(leaf) == LEAF_KEYS for leaf in tree["leaves"])  # a thin leaf too, its estimate null
    by_region = {s["level"]: s for s in got["segments"]}
    assert contains(by_region["north"], -0.3) and contains(by_region["south"], 0.0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--treatment", "dose", "--outcome", "churned"], "--treatment: the table has no column 'dose'"),
        (["--treatment", "treated", "--outcome", "ltv"], "--outcome: the table has no column 'ltv'"),
        (["--treatment", "constant", "--outcome", "churned"], "column 'constant' has one value"),
        (["--treatment", "region", "--outcome", "churned"], "column 'region' is not 0/1 or true/false"),
        (["--treatment", "region", "--outcome", "churned", "--control", "west"], "no value 'west'"),
        (["--treatment", "treated", "--outcome", "region"], "column 'region' is neither binary"),
    ],
)
def test_bad_input_exits_2_naming_the_problem(
    args: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "t.csv"
    confounded(200, seed=4).assign(constant=1).to_csv(path, index=False)
    argv = ["retain", "report", "causal", "--table", str(path), *args, "--out", str(tmp_path / "r")]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    assert message in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "r").exists()


def test_a_table_without_rows_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("x,treated,churned\n")
    args = ["--table", str(path), "--treatment", "treated", "--outcome", "churned", "--out", "x"]
    result = CliRunner().invoke(app, ["report", "causal", *args])
    assert "the table has no rows" in str(result.exception)


def test_values_seen_are_listed_when_the_control_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    confounded(50, seed=5).to_csv(path, index=False)
    result = CliRunner().invoke(
        app,
        [
            "report",
            "causal",
            "--table",
            str(path),
            "--treatment",
            "region",
            "--outcome",
            "churned",
            "--out",
            "x",
        ],
    )
    assert "values seen: 'east', 'north', 'south'" in str(result.exception)


# -- the store: a small simulation with the true effects known -------------------------------------------
