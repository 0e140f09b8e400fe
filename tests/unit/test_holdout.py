"""The never-treated holdout in the uplift design: which weeks were held out, and the usual course against
never acting measured on them."""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.causal.holdout import MIN_HELD_WEEKS, HoldoutWeeks, holdout_weeks, program_effect

UTC = "UTC"


def _log(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    """An interventions log of (account_id, ts, assignment) rows; a holdout row's action is `holdout`."""
    return pd.DataFrame(
        {
            "account_id": [r[0] for r in rows],
            "ts": pd.to_datetime([r[1] for r in rows], utc=True),
            "action": [("holdout" if r[2] == "holdout" else "health_check_call") for r in rows],
            "assignment": [r[2] for r in rows],
        }
    )


def test_an_account_is_held_from_its_draw_until_the_next_one_and_the_days_since_the_draw_are_counted() -> (
    None
):
    log = _log(
        [
            ("a", "2025-01-01 09:00", "holdout"),
            ("b", "2025-04-01 09:00", "holdout"),
            ("d", "2025-04-01 09:05", "holdout"),  # the same draw, logged minutes later
            ("a", "2025-02-03 10:00", "targeted"),  # an action taken is no draw
        ]
    )
    keys = pd.DataFrame(
        {
            "account_id": ["a", "a", "a", "b", "b", "c", "d"],
            "cutoff": pd.to_datetime(
                [
                    "2024-12-30",
                    "2025-01-06",
                    "2025-04-07",
                    "2025-03-31",
                    "2025-04-07",
                    "2025-01-06",
                    "2025-04-07",
                ],
                utc=True,
            ),
        }
    )
    weeks = holdout_weeks(keys, log)
    # a: before any draw, inside its own quarter, after the next draw (which drew b and d, not a)
    assert weeks.held_out.tolist() == [False, True, False, False, True, False, True]
    np.testing.assert_array_equal(weeks.days_since_draw, [np.nan, 5, 6, 89, 6, 5, 6])


def test_a_log_without_holdout_rows_holds_no_week() -> None:
    keys = pd.DataFrame({"account_id": ["a"], "cutoff": pd.to_datetime(["2025-01-06"], utc=True)})
    weeks = holdout_weeks(keys, _log([("a", "2025-01-01", "targeted")]))
    assert not weeks.held_out.any() and np.isnan(weeks.days_since_draw).all()


def _randomised_world(
    seed: int, accounts: int = 3_000
) -> tuple[HoldoutWeeks, np.ndarray, np.ndarray, np.ndarray]:
    """Four weekly rows per account after one draw holding 10% of the accounts; churn risk varies with a
    covariate the baseline knows, and the usual course cuts it from 12% to 8% on average."""
    rng = np.random.default_rng(seed)
    held_account = rng.random(accounts) < 0.1
    risk = rng.uniform(0.02, 0.22, accounts)
    groups = np.repeat(np.arange(accounts), 4)
    held = held_account[groups]
    p = np.where(held, risk[groups], risk[groups] * 2 / 3)
    y = (rng.random(len(p)) < p).astype(np.int8)
    since = np.tile([0.0, 7.0, 14.0, 21.0], accounts)
    baseline = risk[groups] * (0.9 * 2 / 3 + 0.1)  # what a model of y on the covariate would learn
    return HoldoutWeeks(held, since), y, baseline, groups


def test_the_usual_course_against_never_acting_is_recovered_and_the_baseline_narrows_its_interval() -> None:
    truth = -0.12 / 3  # the course removes a third of a 12% mean risk
    weeks, y, baseline, groups = _randomised_world(seed=5)
    with_baseline = program_effect(weeks, "churn", y, baseline, groups)
    without = program_effect(weeks, "churn", y, np.zeros(len(y)), groups)
    assert with_baseline is not None and without is not None
    effect = with_baseline.effect
    assert effect.ci_low <= truth <= effect.ci_high
    assert effect.se < without.effect.se
    # without a baseline it is the plain difference of the two groups' rates
    assert np.isclose(without.effect.ate, without.effect.naive_difference)
    assert np.isclose(with_baseline.never_rate, y[weeks.held_out].mean())
    assert with_baseline.share is not None and -0.6 < with_baseline.share < -0.1
    assert with_baseline.held_accounts == len(np.unique(groups[weeks.held_out]))


def test_weeks_long_after_a_draw_and_too_few_held_weeks_give_no_estimate() -> None:
    weeks, y, baseline, groups = _randomised_world(seed=6)
    late = HoldoutWeeks(weeks.held_out, weeks.days_since_draw + 60)
    assert program_effect(late, "churn", y, baseline, groups) is None
    few = HoldoutWeeks(weeks.held_out & (np.arange(len(y)) < MIN_HELD_WEEKS * 4), weeks.days_since_draw)
    assert few.held_out.sum() < MIN_HELD_WEEKS
    assert program_effect(few, "churn", y, baseline, groups) is None
