"""The table mode's doubly robust estimate against DoubleML's IRM (`--engine doubleml`), over 20 seeds of a
confounded simulation with a known average effect: the treatment's probability depends non-linearly on
three of five covariates, which also drive a 0/1 outcome; the effect varies with one of them on the
log-odds scale. Both estimates come from the same report run on the same rows (`Study.cross_check`)."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit

from products.report.crosscheck import cross_check
from products.report.run import analyse
from products.report.schema import CrossCheck
from products.report.study import table_study
from tests.support.reports import report
from training.causal import doubly_robust

ROWS = 5_000
SEEDS = range(1, 21)
COLUMNS = [f"x{i}" for i in range(1, 6)]


def _probabilities(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """P(treated), P(outcome | untreated), P(outcome | treated) for each row of five covariates."""
    x1, x2, x3, x4, x5 = x.T
    e = expit(-0.3 + 1.2 * np.sin(1.5 * x1) + 0.8 * np.tanh(x2**2 - 1) + 0.6 * np.tanh(x1 * x3))
    base = -1.2 + 0.8 * x1 + 0.9 * (x2 > 0.3) + 0.6 * x3 * x4 - 0.3 * x5**2 + 0.5 * np.sin(2 * x2)
    return e, expit(base), expit(base - 0.6 + 0.4 * x3)


@cache
def true_effect() -> float:
    """The population's average effect, over two million rows (its Monte Carlo error is about 0.0003)."""
    _, p0, p1 = _probabilities(np.random.default_rng(0).normal(size=(2_000_000, 5)))
    return float((p1 - p0).mean())


def confounded(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 5))
    e, p0, p1 = _probabilities(x)
    treated = (rng.random(rows) < e).astype(int)
    outcome = (rng.random(rows) < np.where(treated == 1, p1, p0)).astype(int)
    return pd.DataFrame(x, columns=COLUMNS).assign(treated=treated, outcome=outcome)


def _both(seed: int) -> CrossCheck:
    """One seed's report with the DoubleML cross-check, adjusting for the five confounders (named: two
    of them enter the propensity symmetrically, so their means barely differ between the arms and the
    default choice would take the data for randomised)."""
    study = table_study(
        confounded(ROWS, seed), "treated", "outcome", None, table="t", seed=0, covariates=COLUMNS
    )
    (check,) = analyse(replace(study, cross_check=True)).report.cross_check
    return check


def _covers(low: float | None, high: float | None, truth: float) -> bool:
    return low is not None and high is not None and low <= truth <= high


def test_the_table_mode_is_at_least_as_close_as_doublemls_irm_and_covers_the_truth() -> None:
    truth = true_effect()
    with ProcessPoolExecutor(2) as pool:
        checks = list(pool.map(_both, SEEDS))
    ours = np.array([c.retain_ate for c in checks], dtype=float)
    theirs = np.array([c.ate for c in checks], dtype=float)
    ours_mae, theirs_mae = np.abs(ours - truth).mean(), np.abs(theirs - truth).mean()
    ours_cover = sum(_covers(c.retain_ci_low, c.retain_ci_high, truth) for c in checks)
    theirs_cover = sum(_covers(c.ci_low, c.ci_high, truth) for c in checks)
    print(
        f"truth {truth:+.4f}; ours MAE {ours_mae:.4f}, covers {ours_cover}/20; "
        f"DoubleML IRM MAE {theirs_mae:.4f}, covers {theirs_cover}/20"
    )
    assert ours_mae <= theirs_mae
    assert ours_cover >= 18


def _effect(ate: float, se: float) -> doubly_robust.Effect:
    return doubly_robust.Effect(
        ate, se, ate - doubly_robust.Z95 * se, ate + doubly_robust.Z95 * se, 0.0, 100, 100
    )


def test_the_cross_check_carries_both_estimates_and_says_when_they_disagree() -> None:
    ours, near, far = _effect(-0.08, 0.01), _effect(-0.07, 0.012), _effect(-0.02, 0.01)
    agree = cross_check("call", "churn", ours, near, True)
    assert (agree.retain_ate, agree.ate, agree.retain_se, agree.se) == (-0.08, -0.07, 0.01, 0.012)
    assert not agree.disagree and "within 1.96 standard errors" in agree.sentence
    # 6 points apart against 1.96 * sqrt(2) * 1 point = 2.8 points
    apart = cross_check("call", "churn", ours, far, True)
    assert apart.disagree and "more than 1.96 standard errors" in apart.sentence
    assert "−2.0 pp" in apart.sentence and "−8.0 pp" in apart.sentence


def test_engine_doubleml_shows_both_estimates_in_the_json_and_the_page(tmp_path: Path) -> None:
    table = tmp_path / "offers.csv"
    confounded(2_000, 7).to_csv(table, index=False)
    args = ["--table", str(table), "--treatment", "treated", "--outcome", "outcome", "--covariates"]
    got = report([*args, ",".join(COLUMNS), "--engine", "doubleml"], tmp_path / "out")
    (effect,) = got["effects"]
    (check,) = got["cross_check"]
    assert check["engine"] == "DoubleML DoubleMLIRM"
    assert (check["retain_ate"], check["retain_ci_low"]) == (effect["ate"], effect["ci_low"])
    assert check["ate"] is not None and check["se"] > 0 and isinstance(check["disagree"], bool)
    assert check["ci_low"] <= true_effect() <= check["ci_high"]
    page = (tmp_path / "out" / "report.html").read_text()
    assert "Checked against DoubleML" in page and "DoubleML IRM" in page
    # without the flag there is nothing to cross-check
    assert report([*args, ",".join(COLUMNS)], tmp_path / "plain")["cross_check"] == []
