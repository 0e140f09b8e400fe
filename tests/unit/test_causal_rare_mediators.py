"""Rare mediators in the table mode of the causal report (`products.report.covariates`): a column about 1% of
rows have, which the treatment raises and which implies the outcome (a purchase only converted rows make),
moves the estimate although its standardised difference between the arms is under the usual 0.1 line.
The detector leaves it out by default, says why, and `--covariates` still forces it in, with a warning;
balanced pre-treatment columns of randomised data stay in."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from products.report.balance import MATERIAL_SMD, standardised_differences
from products.report.covariates import choose_covariates
from retain.cli import app
from tests.support.reports import contains

PRE_TREATMENT = ["tenure", "seats", "plan", "region"]
#: P(bought_addon) without and with the treatment: about 1% of rows, an SMD of about 0.09
ADDON = (0.0053, 0.0147)
#: the direct chance of converting, its rise with tenure, and the treatment's direct effect on it
DIRECT, TENURE, DIRECT_EFFECT = 0.004, 0.004, 0.003


def rare_mediator(n: int, seed: int) -> tuple[pd.DataFrame, float]:
    """A randomised offer raises conversion directly and through an add-on purchase that about 1% of rows
    make and that always counts as converting; with the true average effect (both paths)."""
    rng = np.random.default_rng(seed)
    treated = rng.integers(0, 2, n)
    tenure = rng.uniform(0, 1, n)
    base = DIRECT + TENURE * tenure
    direct = rng.random(n) < base + DIRECT_EFFECT * treated
    bought = rng.random(n) < ADDON[0] + (ADDON[1] - ADDON[0]) * treated
    frame = pd.DataFrame(
        {
            "tenure": tenure,
            "seats": rng.poisson(20, n),
            "plan": rng.choice(["basic", "pro", "enterprise"], n),
            "region": rng.choice(["emea", "amer", "apac"], n),
            "treated": treated,
            "bought_addon": bought.astype(int),
            "converted": (direct | bought).astype(int),
        }
    )
    converts = [1 - (1 - ADDON[t]) * (1 - base - DIRECT_EFFECT * t) for t in (0, 1)]
    return frame, float(np.mean(converts[1] - converts[0]))


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    frame, truth = rare_mediator(50_000, seed=0)
    # the old rule's blind spot: under the materiality line, yet far beyond chance
    smd = standardised_differences(frame["bought_addon"].to_numpy(float), frame["treated"].to_numpy())[0]
    assert 0.05 < smd < MATERIAL_SMD
    path = tmp_path_factory.mktemp("rare") / "experiment.csv"
    frame.to_csv(path, index=False)
    return path, truth


def test_the_default_leaves_out_a_rare_mediator_that_implies_the_outcome_and_holds_the_truth(
    experiment: tuple[Path, float], tmp_path: Path
) -> None:
    """By default 0.0120 [0.0088, 0.0151] around the true 0.0123 (on seeds 1-5 too); forced in, next test."""
    path, truth = experiment
    args = ["report", "causal", "--table", str(path), "--treatment", "treated", "--outcome", "converted"]
    args += ["--jobs", "1"]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path)], terminal_width=400)
    assert result.exit_code == 0, result.output

    got = json.loads((tmp_path / "report.json").read_text())
    (effect,) = got["effects"]
    print(
        f"default: {effect['ate']:.4f} [{effect['ci_low']:.4f}, {effect['ci_high']:.4f}], truth {truth:.4f}"
    )
    assert contains(effect, truth), (effect, truth)
    assert got["covariates_used"] == PRE_TREATMENT and got["covariates_suspect"] == []
    (dropped,) = got["covariates_dropped"]
    assert (dropped["column"], dropped["statistic"], dropped["value"]) == ("bought_addon", "implication", 1.0)
    assert "it implies the outcome: the outcome is 1 on" in dropped["reason"]
    assert "rows where it is at least 1, against 0.8% of the other rows" in dropped["reason"]
    said = " ".join(result.stdout.split())
    assert "left out `bought_addon`: it implies the outcome" in said
    assert "<code>bought_addon</code>: it implies the outcome" in (tmp_path / "report.html").read_text()


def test_forced_in_the_rare_mediator_stays_with_a_warning_and_misses_the_truth(
    experiment: tuple[Path, float], tmp_path: Path
) -> None:
    """Adjusting for the purchase removes the part of the effect that runs through it: 0.0030 [0.0012,
    0.0049] against the true 0.0123 (every interval of seeds 1-5 ends below 0.0072 too)."""
    path, truth = experiment
    table = ["--table", str(path), "--treatment", "treated", "--outcome", "converted", "--jobs", "1"]
    forced = ["--covariates", ",".join([*PRE_TREATMENT, "bought_addon"])]
    result = CliRunner().invoke(
        app, ["report", "causal", *table, *forced, "--out", str(tmp_path)], terminal_width=400
    )
    assert result.exit_code == 0, result.output

    got = json.loads((tmp_path / "report.json").read_text())
    (effect,) = got["effects"]
    print(f"forced: {effect['ate']:.4f} [{effect['ci_low']:.4f}, {effect['ci_high']:.4f}], truth {truth:.4f}")
    assert not contains(effect, truth) and effect["ci_high"] < truth, (effect, truth)
    assert got["covariates_used"] == [*PRE_TREATMENT, "bought_addon"]
    (suspect,) = got["covariates_suspect"]
    assert (suspect["column"], suspect["statistic"]) == ("bought_addon", "implication")
    said = " ".join(result.stdout.split())
    assert "adjusting for `bought_addon` as --covariates asks, though it looks post-treatment" in said
    page = (tmp_path / "report.html").read_text()
    assert "though by default they would be left out" in page


def test_a_rare_mediator_far_beyond_chance_is_left_out_whatever_its_size() -> None:
    """The purchase raises conversion without implying it (60% against 20%): left out on its imbalance
    between the arms alone, 6 or more standard errors though an SMD under 0.1."""
    rng = np.random.default_rng(1)
    n = 30_000
    treated = rng.integers(0, 2, n)
    bought = rng.random(n) < 0.006 + 0.008 * treated
    frame = pd.DataFrame(
        {
            "tenure": rng.uniform(0, 1, n),
            "seats": rng.poisson(20, n),
            "plan": rng.choice(["basic", "pro", "enterprise"], n),
            "nps": rng.normal(0, 1, n),
            "bought_addon": bought.astype(float),
        }
    )
    converted = (rng.random(n) < np.where(bought, 0.6, 0.2)).astype(int)

    choice = choose_covariates(frame, pd.Series(treated).astype(str), ["0"], converted, binary=True)

    (dropped,) = choice.dropped
    assert (dropped.column, dropped.statistic) == ("bought_addon", "z") and dropped.value is not None
    assert dropped.value > 6 and "whatever its size" in dropped.reason
    assert "standard errors, SMD 0.0" in dropped.reason and "in any of the 7 comparisons" in dropped.reason
    assert choice.looks_randomised and choice.used == ["tenure", "seats", "plan", "nps"]


def balanced_experiment(n: int, seed: int) -> tuple[pd.DataFrame, pd.Series, np.ndarray]:
    """Twenty pre-treatment columns of a randomised experiment with a rare outcome (about 4%), several of
    them strongly tied to it: a rare flag that triples it, a renewal the outcome almost needs, a level with
    no outcome at all, a strong continuous predictor; and the arms."""
    rng = np.random.default_rng(seed)
    treated = rng.integers(0, 2, n)
    rare_flag = rng.random(n) < 0.01
    renewal_due = rng.random(n) < 0.25
    plan = rng.choice(["free", "basic", "pro", "enterprise"], n, p=[0.1, 0.4, 0.3, 0.2])
    risk = rng.normal(0, 1, n)
    p = np.where(renewal_due, 0.1 + 0.04 * risk.clip(-2, 2), 0.003) * np.where(rare_flag, 3, 1)
    outcome = (rng.random(n) < np.where(plan == "free", 0.0, p + 0.005 * treated)).astype(int)
    columns: dict[str, object] = {
        "rare_flag": rare_flag.astype(float),
        "renewal_due": renewal_due.astype(float),
        "plan": plan,
        "risk": risk,
        "region": rng.choice(["emea", "amer", "apac", "latam"], n),
        "seats": rng.poisson(20, n).astype(float),
        "logins": rng.poisson(3, n).astype(float),
        "tickets": np.where(rng.random(n) < 0.1, np.nan, rng.poisson(1, n)),
        **{f"x{i}": rng.normal(0, 1, n) for i in range(12)},
    }
    return pd.DataFrame(columns), pd.Series(treated).astype(str), outcome


@pytest.mark.parametrize("seed", range(8))
def test_balanced_pre_treatment_columns_of_randomised_data_are_all_kept(seed: int) -> None:
    frame, arms, outcome = balanced_experiment(10_000, seed)

    choice = choose_covariates(frame, arms, ["0"], outcome, binary=True)

    assert choice.looks_randomised and choice.dropped == [], choice.dropped
    assert choice.used == list(frame.columns)
