"""Which columns the table mode of the causal report adjusts for: not those the treatment changed nor those
recorded after the outcome, which bias the effect even on a randomised experiment
(`products.report.covariates`), and `--covariates` / `--exclude` to choose by hand."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from products.report.covariates import choose_covariates
from products.report.study import table_study
from retain.cli import app, main
from tests.support.reports import contains, report

TRUE_EFFECT = -0.10
PRE_TREATMENT = ["tenure", "seats", "plan", "region", "nps", "logins_before"]


def mediated_experiment(n: int, seed: int) -> pd.DataFrame:
    """A randomised offer whose whole effect on churn (exactly -0.10) runs through the usage it causes
    (`usage_after`, a mediator), and the amount spent at renewal, 0 for every churned row (recorded after
    the outcome)."""
    rng = np.random.default_rng(seed)
    tenure = rng.uniform(0, 1, n)
    treated = rng.integers(0, 2, n)
    usage_after = 0.5 * treated + rng.uniform(-1.5, 1.5, n)
    churned = (rng.random(n) < 0.42 + 0.06 * (0.5 - tenure) - 0.2 * usage_after).astype(int)
    return pd.DataFrame(
        {
            "tenure": tenure,
            "seats": rng.poisson(20, n),
            "plan": rng.choice(["basic", "pro", "enterprise"], n),
            "region": rng.choice(["emea", "amer", "apac"], n),
            "nps": rng.normal(0, 1, n),
            "logins_before": rng.poisson(10, n),
            "treated": treated,
            "usage_after": usage_after,
            "amount_spent": np.where(churned == 1, 0.0, rng.gamma(2.0, 50.0, n)),
            "churned": churned,
        }
    )


def confounded(n: int, seed: int, balanced_columns: int) -> pd.DataFrame:
    """Observational: x drives both who is treated and churn; the other columns are noise."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, n)
    treated = (rng.random(n) < 1 / (1 + np.exp(-2.5 * x))).astype(int)
    noise = {f"noise_{i}": rng.normal(size=n) for i in range(balanced_columns)}
    churned = (rng.random(n) < 0.35 + 0.25 * x - 0.1 * treated).astype(int)
    return pd.DataFrame({"x": x, **noise, "treated": treated, "churned": churned})


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("mediated") / "experiment.csv"
    mediated_experiment(4_000, seed=0).to_csv(path, index=False)
    return path


def test_the_default_leaves_out_what_the_treatment_changed_and_holds_the_true_effect(
    experiment: Path, tmp_path: Path
) -> None:
    args = ["report", "causal", "--table", str(experiment), "--treatment", "treated", "--outcome", "churned"]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path)], terminal_width=400)
    assert result.exit_code == 0, result.output

    got = json.loads((tmp_path / "report.json").read_text())
    (effect,) = got["effects"]
    assert contains(effect, TRUE_EFFECT), effect
    assert got["covariates_used"] == PRE_TREATMENT
    dropped = {d["column"]: d for d in got["covariates_dropped"]}
    assert set(dropped) == {"usage_after", "amount_spent"}
    assert dropped["usage_after"]["statistic"] == "z" and dropped["usage_after"]["value"] > 10
    assert dropped["amount_spent"]["statistic"] == "auc" and dropped["amount_spent"]["value"] > 0.99
    assert "differs between the arms far beyond chance (" in dropped["usage_after"]["reason"]
    assert "in what looks like a randomised experiment" in dropped["usage_after"]["reason"]

    said = " ".join(result.stdout.split())
    assert "left out `usage_after`: it differs between the arms far beyond chance (" in said
    assert "left out `amount_spent`: it predicts the outcome almost perfectly (AUC 1.000)" in said
    assert said.count("Pass --covariates to choose.") == 2
    page = (tmp_path / "report.html").read_text()
    assert page.index("Columns not adjusted for") < page.index("Average effects")
    assert "<code>usage_after</code>: it differs between the arms" in page


@pytest.mark.parametrize(
    "forced",
    [["usage_after", "amount_spent"], ["usage_after"], ["amount_spent"]],
    ids=["both", "the-mediator", "the-post-outcome-column"],
)
def test_forcing_in_a_post_treatment_column_misses_the_true_effect(
    experiment: Path, forced: list[str], tmp_path: Path
) -> None:
    """Adjusting for the mediator blocks the effect it carries (all of it, in truth); adjusting for the
    amount spent, which reveals the outcome, leaves nothing to explain: either way the interval misses
    -0.10 (by default -0.082 [-0.112, -0.052]; with both forced in 0.000 [-0.006, 0.006], with the
    mediator -0.029 [-0.063, 0.006], with the amount spent 0.000 [-0.006, 0.006])."""
    columns = ",".join([*PRE_TREATMENT, *forced])
    args = ["--table", str(experiment), "--treatment", "treated", "--outcome", "churned"]

    got = report([*args, "--covariates", columns], tmp_path)

    (effect,) = got["effects"]
    assert not contains(effect, TRUE_EFFECT), effect
    assert got["covariates_used"] == [*PRE_TREATMENT, *forced]
    assert {d["reason"] for d in got["covariates_dropped"]} <= {"not named in --covariates"}


def test_the_detector_names_the_mediator_and_the_post_outcome_column_with_their_statistics() -> None:
    frame = mediated_experiment(2_000, seed=1)
    arms = frame["treated"].astype(str)
    covariates = frame.drop(columns=["treated", "churned"])

    choice = choose_covariates(covariates, arms, ["0"], frame["churned"].to_numpy(), binary=True)

    assert choice.looks_randomised
    assert choice.used == PRE_TREATMENT
    assert [(d.column, d.statistic) for d in choice.dropped] == [
        ("amount_spent", "auc"),
        ("usage_after", "z"),
    ]


@pytest.mark.parametrize("balanced_columns", [2, 3])
def test_a_confounder_in_observational_data_is_kept(balanced_columns: int) -> None:
    """x differs between the arms far beyond chance because it decided who was treated: with a balanced
    share under 80% (2 of 3, 3 of 4 columns) the data does not look randomised and x stays."""
    frame = confounded(4_000, seed=2, balanced_columns=balanced_columns)
    arms = frame["treated"].astype(str)

    choice = choose_covariates(
        frame.drop(columns=["treated", "churned"]), arms, ["0"], frame["churned"].to_numpy(), binary=True
    )

    assert not choice.looks_randomised
    assert "x" in choice.used and choice.dropped == []


def test_a_column_that_nearly_equals_a_numeric_outcome_is_left_out_and_a_strong_predictor_kept() -> None:
    rng = np.random.default_rng(3)
    n = 2_000
    size = rng.uniform(0, 1, n)
    treated = rng.integers(0, 2, n)
    revenue = 100 + 40 * size + 15 * treated + rng.normal(0, 10, n)
    frame = pd.DataFrame({"size": size, "invoiced": revenue + rng.normal(0, 1, n)})

    choice = choose_covariates(frame, pd.Series(treated).astype(str), ["0"], revenue, binary=False)

    (dropped,) = choice.dropped
    assert (dropped.column, dropped.statistic) == ("invoiced", "r2") and dropped.value is not None
    assert dropped.value > 0.95 and "explains almost all of the outcome (R²" in dropped.reason
    assert choice.used == ["size"]  # R² about 0.5: a strong predictor known before, not a record after


def test_exclude_leaves_out_its_columns_and_detection_still_runs_on_the_rest() -> None:
    frame = mediated_experiment(2_000, seed=4)

    study = table_study(frame, "treated", "churned", None, table="t.csv", seed=0, exclude=["nps"])

    assert study.covariates_used == [c for c in PRE_TREATMENT if c != "nps"]
    first = study.covariates_dropped[0]
    assert (first.column, first.reason) == ("nps", "excluded with --exclude")
    assert {d.column for d in study.covariates_dropped} == {"nps", "usage_after", "amount_spent"}


def test_an_empty_choice_adjusts_for_nothing() -> None:
    frame = mediated_experiment(500, seed=5)

    study = table_study(frame, "treated", "churned", None, table="t.csv", seed=0, covariates=[])

    assert study.covariates_used == [] and len(study.covariates) == 1  # one constant column stands in


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--covariates", "tenure", "--exclude", "nps"],
            "give --covariates (adjust for exactly these) or --exclude (leave these out of the automatic "
            "choice), not both",
        ),
        (["--covariates", "tenure,age,ltv"], "--covariates: the table has no column 'age', 'ltv'"),
        (["--exclude", "nps,visits"], "--exclude: the table has no column 'visits'"),
        (["--covariates", "tenure,treated"], "--covariates: 'treated' is the treatment column"),
        (["--exclude", "churned"], "--exclude: 'churned' is the outcome column"),
        (["--covariates", "account_id"], "--covariates: column 'account_id' cannot be adjusted for: id-like"),
    ],
)
def test_bad_column_choices_exit_2_naming_the_problem(
    args: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "t.csv"
    frame = mediated_experiment(200, seed=6)
    frame.insert(0, "account_id", [f"acc-{i}" for i in range(len(frame))])
    frame.to_csv(path, index=False)
    table = ["--table", str(path), "--treatment", "treated", "--outcome", "churned"]
    monkeypatch.setattr(
        sys, "argv", ["retain", "report", "causal", *table, *args, "--out", str(tmp_path / "r")]
    )

    with pytest.raises(SystemExit) as exit_:
        main()

    assert exit_.value.code == 2
    assert message in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "r").exists()


def test_the_column_options_go_with_a_table(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["report", "causal", "--covariates", "x", "--out", str(tmp_path / "r")])
    assert "--covariates and --exclude go with --table" in str(result.exception)
