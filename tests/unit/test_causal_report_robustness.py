"""How far to trust a causal report's effects beyond their intervals: covariate balance before and after the
estimate's inverse-propensity weights (`products.report.balance`), and the E-value of each effect against an
unmeasured confounder (`products.report.sensitivity`), each checked against hand-computed and published
values, then on a confounded table through the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from products.report.balance import arm_balance, pooled_spread, standardised_differences
from products.report.sensitivity import e_value, interval_e_value, risk_ratio, sensitivity
from retain.cli import app
from training.causal.doubly_robust import Effect

# -- balance ---------------------------------------------------------------------------------------------


def test_a_standardised_difference_is_the_gap_in_means_over_the_unweighted_pooled_spread() -> None:
    treated = np.array([1, 1, 1, 0, 0, 0])
    values = np.array(
        [
            [1.0, 1.0, 7.0, 2.0, 3.0],
            [2.0, np.nan, 7.0, 2.0, np.nan],
            [3.0, 3.0, 7.0, 2.0, np.nan],
            [4.0, 4.0, 1.0, 2.0, 1.0],
            [5.0, 5.0, 1.0, 2.0, 2.0],
            [6.0, 6.0, 1.0, 2.0, 3.0],
        ]
    )

    smd = standardised_differences(values, treated)

    # means 2 and 5, variances 1 and 1; then 2 (of 1 and 3, variance 2) against 5: spread sqrt(1.5)
    assert smd[:2] == pytest.approx([-3.0, -3.0 / math.sqrt(1.5)])
    assert smd[2] == math.inf  # constant within each arm, different between them
    assert smd[3] == 0.0  # constant everywhere
    assert math.isnan(smd[4])  # one treated value: no spread to measure it in
    assert pooled_spread(values[:, :1], treated) == pytest.approx([1.0])

    # weighting moves the means only: the third treated row counts twice, (1 + 2 + 2 * 3) / 4 = 2.25
    weighted = standardised_differences(values[:, 0], treated, np.array([1.0, 1, 2, 1, 1, 1]))
    assert weighted == pytest.approx([2.25 - 5.0])


def test_the_estimates_weights_balance_what_the_propensity_knows_and_flag_what_it_does_not() -> None:
    """Eight rows: x drives treatment (e = 0.75 at x = 1, 0.25 at x = 0), `plan` is x in words, and
    `tenure` is a column the propensity ignores."""
    treated = np.array([1, 1, 1, 0, 1, 0, 0, 0])
    x = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    frame = pd.DataFrame(
        {
            "x": x.astype(float),
            "plan": np.where(x == 1, "pro", "basic"),
            "tenure": [2.0, 2, 2, 2, 6, 0, 0, 0],
        }
    )

    got = arm_balance("call", frame, treated, np.where(x == 1, 0.75, 0.25))

    by_name = {(c.column, c.level): c for c in got.covariates}
    assert set(by_name) == {("x", None), ("plan", "pro"), ("plan", "basic"), ("tenure", None)}
    # x: means 3/4 against 1/4, both variances 1/4, so SMD 1; weighted, 1/2 against 1/2
    assert by_name[("x", None)].before == pytest.approx(1.0)
    assert by_name[("x", None)].after == pytest.approx(0.0, abs=1e-12)
    assert by_name[("plan", "basic")].before == pytest.approx(-1.0)
    # tenure: means 3 and 0.5, variances 4 and 1; weighted (4/3 each at x = 1, 4 at x = 0), 4 against 1
    assert by_name[("tenure", None)].before == pytest.approx(2.5 / math.sqrt(2.5))
    assert by_name[("tenure", None)].after == pytest.approx(3.0 / math.sqrt(2.5))
    assert got.covariates[0].column == "tenure" and got.covariates[0].imbalanced
    assert [c.imbalanced for c in got.covariates[1:]] == [False, False, False]
    assert (got.imbalanced_before, got.imbalanced_after) == (4, 1)


# -- sensitivity -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rr", "low", "high", "point_e", "interval_e"),
    [
        # VanderWeele & Ding (2017), Ann Intern Med 167:268: smoking and lung cancer (Hammond & Holl)
        (10.73, 8.02, 14.36, 20.95, 15.52),
        # ... and the protective example (breastfeeding and leukaemia): the limit nearer 1 is the upper
        (0.80, 0.71, 0.91, 1.81, 1.43),
        # ... and an odds ratio of a rare outcome read as a risk ratio
        (3.9, 1.8, 8.7, 7.26, 3.0),
        # an interval holding 1 needs no confounder at all to reach it
        (1.30, 0.95, 1.78, 1.92, 1.0),
    ],
)
def test_e_values_match_the_published_worked_examples(
    rr: float, low: float, high: float, point_e: float, interval_e: float
) -> None:
    assert e_value(rr) == pytest.approx(point_e, abs=0.01)
    assert interval_e_value(low, high) == pytest.approx(interval_e, abs=0.01)


def test_an_effect_becomes_a_risk_ratio_against_the_untreated_risk_or_through_its_standardised_size() -> None:
    assert risk_ratio(-0.10, 0.40, None) == pytest.approx(0.75)
    assert risk_ratio(-0.50, 0.40, None) is None  # a risk below 0
    # VanderWeele & Ding's conversion of a standardised difference: d = 0.5 is RR exp(0.455) = 1.576
    assert risk_ratio(5.0, None, 10.0) == pytest.approx(1.5762, abs=1e-4)


def test_the_sentence_says_how_strong_a_hidden_factor_would_have_to_be() -> None:
    # churn 40% untreated, -10 pp (-16 to -4): RR 0.75, the upper limit 0.90
    lowered = sensitivity(
        "qbr_roi_review", "churn", Effect(-0.10, 0.03, -0.16, -0.04, -0.2, 500, 500), 0.40, None
    )
    assert lowered.risk_ratio == pytest.approx(0.75)
    assert lowered.e_value == pytest.approx(1 / 0.75 + math.sqrt(1 / 0.75 * (1 / 0.75 - 1)))
    assert lowered.e_value_interval == pytest.approx(e_value(0.90))
    assert lowered.sentence == (
        "An unmeasured factor would have to raise the chance of getting qbr_roi_review by 2.0x and cut the "
        "chance of churn by 2.0x (beyond what the measured columns explain) to erase this effect; by 1.5x "
        "to make it indistinguishable from none."
    )

    unclear = sensitivity("email", "expansion", Effect(0.02, 0.02, -0.02, 0.06, 0.03, 500, 500), 0.20, None)
    assert unclear.e_value_interval == 1.0
    assert unclear.sentence.startswith(
        "An unmeasured factor would have to raise both the chance of getting email"
    )
    assert unclear.sentence.endswith("to erase this estimate; its interval already includes no effect.")

    revenue = sensitivity("upsell_call", "revenue", Effect(5.0, 1.0, 3.0, 7.0, 9.0, 500, 500), None, 10.0)
    assert revenue.risk_ratio == pytest.approx(math.exp(0.455))
    assert "move revenue as much as a 2.5x change in risk would" in revenue.sentence


# -- in the report ---------------------------------------------------------------------------------------


def test_a_confounded_tables_report_shows_its_balance_and_sensitivity(tmp_path: Path) -> None:
    """x drives who is treated and churn (the treatment lowers it by 0.15); `unrelated` drives neither.
    The estimate's weights balance x, and the report puts the effect's robustness in words."""
    rng = np.random.default_rng(11)
    n = 3_000
    x = rng.uniform(-1, 1, n)
    treated = (rng.random(n) < 1 / (1 + np.exp(-2.5 * x))).astype(int)
    churned = (rng.random(n) < 0.45 + 0.25 * x - 0.15 * treated).astype(int)
    path = tmp_path / "confounded.csv"
    frame = pd.DataFrame({"x": x, "unrelated": rng.normal(size=n), "treated": treated, "churned": churned})
    frame.to_csv(path, index=False)
    out = tmp_path / "r"
    args = ["report", "causal", "--table", str(path), "--treatment", "treated", "--outcome", "churned"]

    summary = CliRunner().invoke(app, [*args, "--out", str(out)], terminal_width=400)

    assert summary.exit_code == 0, summary.output
    got = json.loads((out / "report.json").read_text())
    (balance,) = got["balance"]
    by_name = {c["column"]: c for c in balance["covariates"]}
    # weighting by the out-of-fold propensities removes most of x's imbalance; what it leaves is flagged
    assert by_name["x"]["before"] > 1.0 and abs(by_name["x"]["after"]) < by_name["x"]["before"] / 3
    assert by_name["x"]["imbalanced"] == (abs(by_name["x"]["after"]) > 0.1)
    assert abs(by_name["unrelated"]["after"]) < 0.1 and not by_name["unrelated"]["imbalanced"]
    (robust,) = got["sensitivity"]
    assert (robust["treatment"], robust["outcome"]) == ("treated", "churned")
    assert robust["risk_ratio"] < 1 and robust["e_value"] > robust["e_value_interval"] > 1
    assert got["method"]["balance_smd_limit"] == 0.1 and got["method"]["sensitivity"].startswith("E-value")

    page = (out / "report.html").read_text()
    assert robust["sentence"] in page and "SMD after weighting" in page
    assert f"treated on churned: {robust['sentence']}" in " ".join(summary.output.split())
