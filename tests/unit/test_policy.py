"""Judged policies choose only what the next-best-actions endpoint would offer: the catalogue's eligibility,
the cool-downs of the team's takes before each cutoff and of the policy's own picks, one action a row."""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.catalogue import ACTIONS, CATALOGUE
from tests.support.rows import QUIET
from training.causal import policy, recency

QBR, CALL = ACTIONS.index("qbr_roi_review"), ACTIONS.index("health_check_call")
#: a renewal within 120 days in the at-risk band: a QBR and a health-check call are eligible, nothing else
DUE = {**QUIET, "days_to_renewal": 60, "health_band": "at_risk", "tier": "mid_market"}


def world(keys: list[tuple[str, str]], taken: tuple[tuple[str, str, str], ...] = ()) -> policy.Offer:
    """The offer at (account, cutoff) rows due for a QBR, given the team's (account, action, ts) takes."""
    rows = pd.DataFrame([{**DUE, "account_id": a, "cutoff": pd.Timestamp(c, tz="UTC")} for a, c in keys])
    interventions = pd.DataFrame(taken, columns=["account_id", "action", "ts"], dtype=object)
    interventions["ts"] = pd.to_datetime(interventions["ts"], utc=True)
    return policy.Offer.of(rows, policy.at_cutoffs(rows, recency.last_taken(rows, interventions)), ACTIONS)


def effects(*per_row: dict[int, float]) -> np.ndarray:
    """(rows, actions) true churn effects: negative averts churn."""
    out = np.zeros((len(per_row), len(ACTIONS)))
    for i, row in enumerate(per_row):
        for j, effect in row.items():
            out[i, j] = effect
    return out


def test_the_oracle_s_best_pick_inside_the_team_s_cool_down_is_not_offered_nor_counted() -> None:
    offer = world([("a", "2025-03-31"), ("b", "2025-03-31")], (("a", "qbr_roi_review", "2025-02-20"),))
    true = effects({QBR: -0.30}, {QBR: -0.10})
    rows, actions = policy.choose(-true, offer, budget=1)
    assert (rows.tolist(), actions.tolist()) == ([1], [QBR])
    assert policy.true_value(true, rows, actions) == 0.10


def test_a_team_take_a_whole_cool_down_before_the_cutoff_no_longer_blocks() -> None:
    days = CATALOGUE["qbr_roi_review"].cooldown_days
    taken = str((pd.Timestamp("2025-03-31") - pd.Timedelta(days=days)).date())
    offer = world([("a", "2025-03-31")], (("a", "qbr_roi_review", taken),))
    assert offer.eligible[0, QBR]


def test_a_policy_is_not_credited_twice_for_one_action_within_its_cool_down() -> None:
    # the same account due at two month ends 31 days apart: the QBR is worth most at the later one, so the
    # earlier one falls inside the cool-down the later pick starts and its row gets its next-best action
    offer = world([("a", "2025-02-28"), ("a", "2025-03-31"), ("b", "2025-03-31")])
    true = effects({QBR: -0.20, CALL: -0.01}, {QBR: -0.30}, {QBR: -0.05})
    rows, actions = policy.choose(-true, offer, budget=3)
    assert list(zip(rows.tolist(), actions.tolist(), strict=True)) == [(1, QBR), (2, QBR), (0, CALL)]


def test_picks_of_one_action_a_cool_down_apart_are_both_offered() -> None:
    offer = world([("a", "2025-01-31"), ("a", "2025-06-30")])
    true = effects({QBR: -0.20}, {QBR: -0.30})
    rows, _ = policy.choose(-true, offer, budget=2)
    assert sorted(rows.tolist()) == [0, 1]


def test_a_fixed_account_order_treats_the_first_rows_with_their_play_s_first_action() -> None:
    offer = world([("a", "2025-03-31"), ("b", "2025-03-31"), ("c", "2025-03-31")])
    places = np.full((3, len(ACTIONS)), np.nan)
    places[:, [CALL, QBR]] = [0, 1]  # the at-risk play calls first
    rows, actions = policy.choose(policy.by_account_order(np.array([2, 0, 1]), places), offer, budget=2)
    assert (rows.tolist(), actions.tolist()) == ([2, 0], [CALL, CALL])


def test_a_model_s_action_the_playbook_no_longer_holds_is_never_offered() -> None:
    offer = world([("a", "2025-03-31")])
    over = offer.over(["qbr_roi_review", "retired_action"], ["qbr_roi_review", "retired_action"])
    assert over.eligible.tolist() == [[True, False]] and over.actions == ("qbr_roi_review", "retired_action")
    rows, actions = policy.choose(np.array([[0.1, 0.9]]), over, budget=1)
    assert (rows.tolist(), actions.tolist()) == ([0], [0])
