"""Uplift: the weekly design, the DR estimator on data with a known effect, the trained models against the
simulator's truth (on a held-out simulation), the registry, and the served ranking by expected value."""

from __future__ import annotations

import json
import pickle
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from core.catalogue import ACTIONS, CATALOGUE, ActionPrior, Belief
from core.settings import Settings
from core.value import expected_values
from features.playbook import eligibility
from features.run import build_and_publish
from features.stored import read_features
from ingest.run import ingest_path
from registry.models import StaleModel, load_uplift_model, resolve
from registry.promotion import promote, uplift_gate
from registry.pyfunc import MODEL_ARTIFACT, output_frame
from registry.tracking import client, log_and_register
from retain.cli import app
from serving.keys import KeyFile
from serving.ranking import NOT_MODELLED, chance_of, how_sure
from serving.resources import LastTaken
from simulate import SimConfig, simulate_to
from store.delta import Store
from tests.support.playbooks import own, with_workshop
from tests.support.served import Server
from tests.support.worlds import UpliftWorld
from training.causal import against_truth, doubly_robust, policy, recency
from training.causal.crossfit import crossfit_cache
from training.causal.design import read_interventions, store_design, treatments, weekly_cutoffs
from training.causal.holdout import MIN_HELD_WEEKS
from training.causal.learners import BandShares
from training.causal.off_policy import estimated_averted, evaluation_weeks
from training.causal.posterior import LEARNT, Posterior, Prior, with_prior
from training.causal.renewal import RenewalRows, fit_renewal
from training.causal.run import fit_uplift
from training.causal.tournament import ENTRANTS, POOLED
from training.causal.uplift import Overlap
from training.config import UpliftConfig

UTC_DAY = pd.Timedelta(days=1)


# -- the design --------------------------------------------------------------------------------------


def test_a_row_is_treated_by_what_was_taken_in_the_week_after_its_cutoff() -> None:
    monday = pd.Timestamp("2025-03-03", tz="UTC")
    keys = pd.DataFrame(
        {
            "account_id": ["a", "b", "a", "b"],
            "cutoff": [monday, monday, monday + 7 * UTC_DAY, monday + 7 * UTC_DAY],
        }
    )
    log = pd.DataFrame(
        {
            "account_id": ["a", "b", "a", "b"],
            "ts": [
                monday + pd.Timedelta(hours=10),
                monday + pd.Timedelta(hours=9),
                monday + 7 * UTC_DAY,
                monday - UTC_DAY,
            ],
            "action": ["save_offer", "training_session", "save_offer", "save_offer"],
            "assignment": ["targeted", "random", "targeted", "targeted"],
            "propensity": [np.nan, 0.004, np.nan, np.nan],
        }
    )
    treated, randomised, known = treatments(keys, log)
    assert treated["save_offer"].tolist() == [1, 0, 1, 0]  # b's action came before the first cutoff
    assert treated["training_session"].tolist() == [0, 1, 0, 0]
    assert randomised["training_session"].tolist() == [0, 1, 0, 0]
    assert randomised["save_offer"].tolist() == [0, 0, 0, 0]
    # the arm ran in the first week and could have drawn any action for any row that week
    assert known["save_offer"].tolist() == [0.004, 0.004, 0.0, 0.0]
    assert known["reference_ask"].tolist() == [0.004, 0.004, 0.0, 0.0]


def test_weekly_cutoffs_fall_on_the_interventions_weekday() -> None:
    wednesdays = [date(2025, 1, 1) + pd.Timedelta(days=7 * k) for k in range(5)]
    cutoffs = weekly_cutoffs(wednesdays, date(2025, 1, 4), date(2025, 2, 15))
    assert {c.weekday() for c in cutoffs} == {2}
    assert cutoffs[0] == date(2025, 1, 8) and cutoffs[-1] == date(2025, 2, 12)
    assert all(b - a == pd.Timedelta(days=7) for a, b in pairwise(cutoffs))


def test_days_since_each_action_count_only_takes_before_the_cutoff() -> None:
    monday = pd.Timestamp("2025-03-03", tz="UTC")
    keys = pd.DataFrame({"account_id": ["a", "a", "b"], "cutoff": [monday, monday + 7 * UTC_DAY, monday]})
    log = pd.DataFrame(
        {
            "account_id": ["a", "a", "b", "a"],
            "ts": [monday - 3.5 * UTC_DAY, monday, monday - UTC_DAY, monday - 10 * UTC_DAY],
            "action": ["save_offer", "save_offer", "training_session", "save_offer"],
        }
    )
    last = recency.last_taken(keys, log)
    rows = recency.with_recency(keys, last)
    # a take at the cutoff itself is that week's treatment, not a feature; b's training is b's alone
    assert rows["days_since_save_offer"].tolist()[0] == 3.5
    assert rows["days_since_save_offer"].tolist()[1] == 7.0
    assert np.isnan(rows["days_since_save_offer"].tolist()[2])
    assert np.isnan(rows["days_since_training_session"].tolist()[0])
    assert rows["days_since_training_session"].tolist()[2] == 1.0
    assert set(rows.columns) == {"account_id", "cutoff", *(recency.days_since_column(a) for a in ACTIONS)}
    # serving's view of the same account, from its register of takes, agrees
    taken = {"save_offer": (monday - 3.5 * UTC_DAY).to_pydatetime()}
    served = pd.Series(recency.for_account(taken, monday.to_pydatetime()))
    pd.testing.assert_series_equal(served, rows.loc[0, served.index].astype(float), check_names=False)
    assert recency.latest_takes_per_row(last)[0] == taken


def test_what_the_team_went_on_to_do_counts_takes_from_the_cutoff_to_the_horizon() -> None:
    monday = pd.Timestamp("2025-03-03", tz="UTC")
    keys = pd.DataFrame({"account_id": ["a", "a", "b"], "cutoff": [monday, monday + 30 * UTC_DAY, monday]})
    log = pd.DataFrame(
        {
            "account_id": ["a", "a", "b"],
            "ts": [monday, monday + 100 * UTC_DAY, monday - UTC_DAY],
            "action": ["qbr_roi_review", "qbr_roi_review", "training_session"],
        }
    )
    within = pd.DataFrame(recency.taken_within(keys, log, 90), columns=list(ACTIONS))
    # a take at the cutoff is within; one 70 days on is within from the later cutoff only; one before is not
    assert within["qbr_roi_review"].tolist() == [True, True, False]
    assert not within["training_session"].any()
    assert within.to_numpy().sum() == 2
    # how much of the horizon each first take had left: all of it at the cutoff, 20 of 90 days 70 days on
    left = pd.DataFrame(recency.horizon_left(keys, log, 90), columns=list(ACTIONS))
    assert left["qbr_roi_review"].tolist() == pytest.approx([1.0, 20 / 90, 0.0])
    assert (left.drop(columns="qbr_roi_review").to_numpy() == 0).all()


def test_a_replay_clock_sees_the_latest_take_before_it() -> None:
    day = datetime(2025, 3, 3, tzinfo=UTC)
    table = pa.table(
        {
            "account_id": ["a", "a", "a"],
            "action": ["save_offer"] * 3,
            "ts": [day - timedelta(days=30), day + timedelta(days=5), day - timedelta(days=2)],
        }
    )
    taken = LastTaken(table)
    assert taken.of("a", day) == {"save_offer": day - timedelta(days=2)}
    assert taken.of("a", day - timedelta(days=20)) == {"save_offer": day - timedelta(days=30)}
    assert taken.of("a", day - timedelta(days=40)) == {} and taken.of("nobody", day) == {}
    taken.record("a", "training_session", day - timedelta(hours=1))
    assert taken.of("a", day)["training_session"] == day - timedelta(hours=1)


def test_judged_policies_choose_only_what_the_cool_downs_allow(uplift_world: UpliftWorld) -> None:
    rows = read_features(uplift_world.store).to_pandas()
    records = rows.to_dict("records")
    as_of = recency.cutoff_instants(rows["cutoff"])
    free = policy.eligible_mask(policy.verdicts(records, [{}] * len(rows), as_of))
    j, action = next((j, a) for j, a in enumerate(ACTIONS) if free[:, j].any())
    i = int(np.flatnonzero(free[:, j])[0])
    just_now = [{action: as_of[i] - timedelta(days=1)} if k == i else {} for k in range(len(rows))]
    cooled = policy.eligible_mask(policy.verdicts(records, just_now, as_of))
    assert not cooled[i, j] and (np.delete(cooled, i, axis=0) == np.delete(free, i, axis=0)).all()


def offered(eligible: np.ndarray) -> policy.Offer:
    """An offer where `eligible` says, each row its own account: no pick cools another row's action down."""
    actions = ACTIONS[: eligible.shape[1]]
    cooldowns = np.array([CATALOGUE[a].cooldown_days for a in actions], float)
    return policy.Offer(eligible, np.arange(len(eligible)), np.zeros(len(eligible)), actions, cooldowns)


def test_true_relative_effects_times_true_risk_rank_as_the_oracle_when_effects_scale_with_risk() -> None:
    rng = np.random.default_rng(3)
    risk = rng.uniform(0.01, 0.5, 300)
    true = -np.outer(risk, [0.3, 0.1, 0.0])
    eligible = offered(rng.random(true.shape) < 0.6)
    oracle = policy.true_value(true, *policy.choose(-true, eligible, 30))
    ceilings = against_truth.ceilings(
        true, eligible, {"true_risk": risk, "flat": np.full(300, 0.2)}, risk, 30
    )
    assert ceilings["true_relative_effect_x_true_risk"] == pytest.approx(oracle)
    # without a risk that orders the accounts, knowing each action's effect is not enough
    assert ceilings["true_relative_effect_x_flat"] < 0.8 * oracle
    assert ceilings["true_average_effect"] < 0.8 * oracle


def test_the_noise_budget_prices_what_noisy_shares_cost_a_ranking_told_the_true_ones() -> None:
    """Effects that scale with the risk: told the true shares, the ranking is the oracle; the more noise on
    them, the less churn it averts, down to a fraction of the oracle when the noise is as large as the
    gaps between the shares."""
    rng = np.random.default_rng(4)
    risk = rng.uniform(0.01, 0.5, 2000)
    shares = np.array([-0.3, -0.05, -0.1])
    true = shares * risk[:, None]
    eligible = offered(rng.random(true.shape) < 0.5)
    oracle = policy.true_value(true, *policy.choose(-true, eligible, 200))
    budget = against_truth.noise_budget(true, eligible, shares, np.full(3, 0.2), risk, 200)
    values = [budget[f"true_share_noise_x{scale:g}"] for scale in against_truth.NOISE_SCALES]
    assert values[0] == pytest.approx(oracle)
    assert all(more <= less + 1e-9 for less, more in pairwise(values)), values
    assert values[-1] < 0.9 * oracle, values


def test_a_ranking_fitted_to_the_true_effects_nears_the_oracle_only_where_the_features_tell_them() -> None:
    rng = np.random.default_rng(5)
    features = rng.normal(size=(2000, 2))
    accounts = np.repeat(np.arange(500), 4)
    told = -0.2 * np.column_stack([features[:, 0] > 0.5, features[:, 1] > 0.5, np.zeros(2000)])
    hidden = rng.permutation(told)  # the same effects on other rows: the features no longer tell them
    eligible = offered(rng.random(told.shape) < 0.7)
    x = doubly_robust.Matrix(features, ["usage", "tickets"], [])
    shares = {}
    for name, true in (("told", told), ("hidden", hidden)):
        oracle = policy.true_value(true, *policy.choose(-true, eligible, 200))
        shares[name] = against_truth.fitted_ceiling(true, eligible, x, accounts, 200) / oracle
    assert shares["told"] >= 0.95, shares
    assert shares["hidden"] < 0.6, shares


# -- the estimator on data whose effect is known ------------------------------------------------------


@dataclass
class Confounded:
    x: doubly_robust.Matrix
    treated: np.ndarray
    randomised: np.ndarray
    known: np.ndarray
    outcome: np.ndarray
    groups: np.ndarray
    true_ate: float
    true_effect: np.ndarray = field(repr=False)


def confounded(seed: int, n: int = 6000, random_share: float = 0.02) -> Confounded:
    """Risky rows (high z) are targeted more and churn more; the action lowers churn more for them."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n)
    other = rng.normal(size=n)
    p0 = 1 / (1 + np.exp(-(-1.2 + 1.3 * z)))
    p1 = 1 / (1 + np.exp(-(-1.2 + 1.3 * z - 0.8)))
    targeted = rng.random(n) < 1 / (1 + np.exp(-(-2.0 + 1.5 * z)))
    randomised = (rng.random(n) < random_share) & ~targeted
    treated = (targeted | randomised).astype(np.int8)
    outcome = (rng.random(n) < np.where(treated == 1, p1, p0)).astype(np.int8)
    x = doubly_robust.Matrix(np.column_stack([z, other]), ["z", "other"], [])
    groups = np.arange(n) // 3  # three rows per account
    return Confounded(
        x,
        treated,
        randomised.astype(np.int8),
        np.full(n, random_share),
        outcome,
        groups,
        float((p1 - p0).mean()),
        p1 - p0,
    )


def dr_effect(data: Confounded, seed: int) -> doubly_robust.Effect:
    splits = doubly_robust.folds(data.groups, 3, seed)
    nuisance = doubly_robust.cross_fit(
        data.x,
        data.treated,
        data.outcome,
        data.randomised,
        data.known,
        splits,
        data.groups,
        clip=0.001,
        seed=seed,
    )
    psi = doubly_robust.pseudo_outcomes(data.treated, data.outcome, nuisance)
    return doubly_robust.average_effect(psi, data.treated, data.outcome, data.groups)


def test_dr_interval_holds_the_true_effect_where_the_naive_difference_is_biased() -> None:
    covered = 0
    for seed in range(5):
        data = confounded(seed)
        effect = dr_effect(data, seed)
        covered += effect.ci_low <= data.true_ate <= effect.ci_high
        # targeting the risky makes the treated look worse off than they are
        assert effect.naive_difference - data.true_ate > 0.1
        assert abs(effect.ate - data.true_ate) < 0.05
    assert covered >= 4


def test_a_placebo_treatment_shows_no_effect() -> None:
    data = confounded(7)
    rng = np.random.default_rng(7)
    placebo = (rng.random(len(data.outcome)) < 0.2).astype(np.int8)
    effect = dr_effect(
        Confounded(
            data.x,
            placebo,
            placebo,
            np.full(len(placebo), 0.2),
            data.outcome,
            data.groups,
            0.0,
            data.true_effect,
        ),
        7,
    )
    assert effect.ci_low <= 0.0 <= effect.ci_high


@dataclass(frozen=True)
class Targeted:
    """Rows where the risky are targeted more, beside a 2% experiment arm: the world of the share tests."""

    rng: np.random.Generator
    p0: np.ndarray
    targeting: np.ndarray
    treated: np.ndarray
    randomised: np.ndarray
    x: doubly_robust.Matrix
    groups: np.ndarray

    @staticmethod
    def draw(seed: int, n: int = 12_000) -> Targeted:
        rng = np.random.default_rng(seed)
        z = rng.normal(size=n)
        targeting = 1 / (1 + np.exp(-(-2.0 + 1.5 * z)))
        targeted = rng.random(n) < targeting
        randomised = (rng.random(n) < 0.02) & ~targeted
        x = doubly_robust.Matrix(np.column_stack([z, rng.normal(size=n)]), ["z", "other"], [])
        p0 = 1 / (1 + np.exp(-(-2.0 + 1.3 * z)))
        treated = (targeted | randomised).astype(np.int8)
        return Targeted(rng, p0, targeting, treated, randomised.astype(np.int8), x, np.arange(n) // 3)

    def share(self, outcome: np.ndarray, seed: int) -> tuple[doubly_robust.RelativeEffect, np.ndarray]:
        """The DR slope of `outcome` on its cross-fitted baseline, as training fits it, and the propensity."""
        splits = doubly_robust.folds(self.groups, 3, seed)
        baseline = doubly_robust.out_of_fold_baseline(self.x, outcome, splits, seed=seed)
        arm = np.full(len(outcome), 0.02)
        propensity, _ = doubly_robust.fit_propensity(
            self.x, self.treated, self.randomised, arm, splits, self.groups, clip=0.001, seed=seed
        )
        mu0, mu1 = doubly_robust.fit_outcomes(self.treated, outcome, splits, baseline, propensity)
        psi = doubly_robust.pseudo_outcomes(
            self.treated, outcome, doubly_robust.Nuisance(mu0, mu1, propensity, propensity < 0)
        )
        return doubly_robust.relative_effect(
            psi, baseline, propensity * (1 - propensity), self.groups
        ), propensity

    def true_slope(self, cut: float, untreated_exposure: float) -> float:
        """The slope the true risk gives where the action removes `cut` of it, and the untreated rows get
        `untreated_exposure` of that anyway (the baseline counts the treated, whose risk is lower)."""
        e = self.targeting + (1 - self.targeting) * 0.02
        m, w = self.p0 * (1 - cut * (e + (1 - e) * untreated_exposure)), e * (1 - e)
        return float((w * -cut * self.p0 * m).sum() / (w * m * m).sum())


def test_the_relative_effect_is_the_share_of_risk_an_action_removes_under_confounded_targeting() -> None:
    """The risky are targeted more; the action removes 30% of anyone's risk, so 0.3 of a point at 1% and 15
    at 50%. The slope of the pseudo-outcomes on the baseline risk finds about 30%, and its interval holds
    the slope the true risk and effect give (a little over 30%: the baseline counts the treated, whose
    risk is lower); the naive ratio of the treated's churn to the untreated's shows harm."""
    for seed in range(3):
        world = Targeted.draw(seed)
        treated = world.treated
        outcome = (world.rng.random(len(treated)) < np.where(treated == 1, 0.7, 1.0) * world.p0).astype(
            np.int8
        )
        share = world.share(outcome, seed)[0].as_dict()
        true_slope = world.true_slope(0.3, 0.0)
        assert -0.5 < share["share"] < -0.2, (seed, share)
        assert share["ci_low"] <= true_slope <= share["ci_high"], (seed, share, true_slope)
        naive = outcome[treated == 1].mean() / outcome[treated == 0].mean() - 1
        assert naive > 0, naive  # the treated churn more: they were the risky ones


def test_a_share_against_the_usual_course_that_acts_later_anyway_scales_to_one_against_never() -> None:
    """The action removes up to 30% of the risk, in proportion to the share of the horizon it has to work,
    and 80% of the untreated weeks get it later anyway, at a uniformly drawn time: the usual course gives
    it 40% of the horizon on average. Against that course acting this week removes about 18%; scaled by
    the rise in the time the action works (from 40% of the horizon to all of it) the share is the 30% the
    truth and a plan compare with never acting. Scaled by the rise in the chance of acting at all (from 80%
    to 1) it would be five times the measured share, not one and two thirds."""
    for seed in range(3):
        world = Targeted.draw(seed)
        treated, n = world.treated, len(world.treated)
        later = (treated == 0) & (world.rng.random(n) < 0.8)
        horizon_left = np.where(treated == 1, 1.0, np.where(later, world.rng.random(n), 0.0))
        outcome = (world.rng.random(n) < world.p0 * (1 - 0.3 * horizon_left)).astype(np.int8)
        against_usual, propensity = world.share(outcome, seed)
        assert doubly_robust.control_treated_later(treated, later, propensity) == pytest.approx(0.8, abs=0.02)
        horizon_later = doubly_robust.control_treated_later(treated, horizon_left, propensity)
        assert horizon_later == pytest.approx(0.4, abs=0.02)
        against_never = against_usual.against_never_acting(horizon_later)
        true_never = world.true_slope(0.3, 0.4)
        for share, truth in ((against_never, true_never), (against_usual, true_never * 0.6)):
            bounds = share.as_dict()
            assert bounds["ci_low"] <= truth <= bounds["ci_high"], (seed, share, truth)
        assert against_never.se == pytest.approx(against_usual.se / (1 - horizon_later))
    assert doubly_robust.RelativeEffect(-0.2, 0.1).against_never_acting(None) == doubly_robust.RelativeEffect(
        -0.2, 0.1
    )
    assert doubly_robust.RelativeEffect(-0.2, 0.1).against_never_acting(1.0).value == pytest.approx(
        -0.2 / (1 - doubly_robust.MAX_WORTH_TAKEN_LATER)
    )


def test_a_share_of_an_action_settling_at_the_renewal_scales_by_how_often_the_usual_course_took_it() -> None:
    """A QBR's value case counts once, at the renewal: shown a few weeks later, still before it, it is worth
    as much as shown now. The action removes 30% of the risk, and 60% of the untreated weeks get it later
    anyway, at a uniformly drawn time: against that course acting this week removes 40% of the 30%. Scaled
    by the rise in the chance of taking it at all (from 60% to 1), the share is the 30% against never;
    scaled by the rise in the time it works (from 30% of the horizon to all of it), as for an action whose
    effect accrues, it would be short by a third."""
    assert CATALOGUE["qbr_roi_review"].settles_at_renewal
    assert not CATALOGUE["training_session"].settles_at_renewal
    for seed in range(3):
        world = Targeted.draw(seed)
        treated, n = world.treated, len(world.treated)
        later = (treated == 0) & (world.rng.random(n) < 0.6)
        horizon_left = np.where(treated == 1, 1.0, np.where(later, world.rng.random(n), 0.0))
        outcome = (world.rng.random(n) < world.p0 * (1 - 0.3 * ((treated == 1) | later))).astype(np.int8)
        against_usual, propensity = world.share(outcome, seed)
        worth_later = {
            settles: Overlap(
                n_treated=int(treated.sum()),
                n_randomised=int(world.randomised.sum()),
                effective_treated=doubly_robust.effective_sample_size(1 / propensity[treated == 1]),
                clipped_share=0.0,
                propensity_quantiles={},
                min_effective=0.0,
                control_treated_later=doubly_robust.control_treated_later(treated, later, propensity),
                control_horizon_later=doubly_robust.control_treated_later(treated, horizon_left, propensity),
                settles_at_renewal=settles,
            ).worth_taken_later
            for settles in (True, False)
        }
        assert worth_later[True] == pytest.approx(0.6, abs=0.02)
        assert worth_later[False] == pytest.approx(0.3, abs=0.02)
        truth = world.true_slope(0.3, 0.6)
        settled = against_usual.against_never_acting(worth_later[True]).as_dict()
        assert settled["ci_low"] <= truth <= settled["ci_high"], (seed, settled, truth)
        accrued = against_usual.against_never_acting(worth_later[False]).as_dict()
        assert accrued["ci_low"] > truth, (seed, accrued, truth)


def test_per_renewal_a_qbr_s_share_is_against_never_acting_with_the_arm_s_draws_in_its_propensity() -> None:
    """One row per renewal: the riskier renewals get the QBR more often, 2% more at random, and a QBR before
    the renewal removes 30% of the risk. With no later take to scale for, the share's interval holds the
    true slope; the propensity, learnt whole, sees the experiment arm's draws as part of the team's."""
    for seed in range(3):
        world = Targeted.draw(seed)
        outcome = (world.rng.random(len(world.treated)) < world.p0 * (1 - 0.3 * world.treated)).astype(
            np.int8
        )
        renewals = RenewalRows(np.arange(len(outcome)), world.treated)
        assert renewals.enough
        fitted = fit_renewal(
            renewals, world.x, {"churn": outcome}, world.groups, folds=3, clip=0.001, seed=seed, threads=1
        )
        share = fitted.relative["churn"].as_dict()
        assert share["ci_low"] <= world.true_slope(0.3, 0.0) <= share["ci_high"], (seed, share)
        assert fitted.average["churn"].ci_high < 0
        assert fitted.propensity[world.randomised == 1].min() > 0.001


def test_the_treated_arm_carries_its_relative_effect_not_its_level_to_rows_unlike_it() -> None:
    """The team treats only the riskiest fifth; the action cuts anyone's odds of churning by the same ratio.
    The average effect over every row needs the treated outcome of rows the team never treats: a model of
    the treated arm's own level would hand them the risky fifth's churn (a harm where the action helps);
    the baseline shifted by the arm's log-odds gives them their own risk, cut by the same ratio."""
    rng = np.random.default_rng(0)
    n, seed = 20_000, 0
    z = rng.uniform(-2.0, 2.0, n)
    p0 = 1 / (1 + np.exp(-(-3.0 + 1.2 * z)))
    p1 = 1 / (1 + np.exp(-(-3.0 + 1.2 * z - 0.8)))
    treated = ((z > 1.2) & (rng.random(n) < 0.4)).astype(np.int8)
    outcome = (rng.random(n) < np.where(treated == 1, p1, p0)).astype(np.int8)
    x = doubly_robust.Matrix(z[:, None], ["z"], [])
    groups = np.arange(n) // 5
    splits = doubly_robust.folds(groups, 3, seed)
    nobody = np.zeros(n)
    propensity, clipped = doubly_robust.fit_propensity(
        x, treated, nobody.astype(np.int8), nobody, splits, groups, clip=0.001, seed=seed
    )
    baseline = doubly_robust.out_of_fold_baseline(x, outcome, splits, seed=seed)
    mu0, mu1 = doubly_robust.fit_outcomes(treated, outcome, splits, baseline, propensity)

    odds_ratio = (mu1 / (1 - mu1)) / (np.clip(baseline, 1e-6, None) / (1 - baseline))
    assert np.ptp(np.log(odds_ratio)) < 1.0 and np.exp(np.log(odds_ratio).mean()) < 1.0
    psi = doubly_robust.pseudo_outcomes(
        treated, outcome, doubly_robust.Nuisance(mu0, mu1, propensity, clipped)
    )
    effect = doubly_robust.average_effect(psi, treated, outcome, groups)
    true_ate = float((p1 - p0).mean())
    assert effect.ate < 0 and abs(effect.ate - true_ate) < 0.01, (effect, true_ate)


def test_a_treated_arm_s_log_odds_shift_is_its_odds_ratio_and_a_handful_of_rows_moves_it_little() -> None:
    rng = np.random.default_rng(1)
    margin = rng.normal(-2.0, 1.0, 50_000)
    label = (rng.random(len(margin)) < 1 / (1 + np.exp(-(margin - 0.7)))).astype(float)
    assert doubly_robust.log_odds_shift(margin, label) == pytest.approx(-0.7, abs=0.05)
    # five rows without an event: the ridge keeps the shift finite and short of the bound
    few = doubly_robust.log_odds_shift(np.full(5, -3.0), np.zeros(5))
    assert -doubly_robust.SHIFT_BOUND < few < 0
    assert doubly_robust.log_odds_shift(np.zeros(0), np.zeros(0)) == 0.0


def test_known_propensity_is_the_log_s_where_nothing_was_targeted() -> None:
    data = confounded(3)
    randomised_only = data.randomised
    propensity, clipped = doubly_robust.fit_propensity(
        data.x,
        randomised_only,
        randomised_only,
        data.known,
        doubly_robust.folds(data.groups, 3, 0),
        data.groups,
        clip=0.001,
        seed=0,
    )
    np.testing.assert_allclose(propensity, data.known)
    assert not clipped.any()


def test_a_rare_treatment_drawn_at_random_gets_propensities_near_its_rate() -> None:
    """No feature predicts a coin flip: a propensity model that spreads it over 0.1-25% (fixed boosting
    rounds did) fits noise, and the DR estimate of a placebo then shows an effect where there is none."""
    rng = np.random.default_rng(0)
    n, rate = 20_000, 0.01
    x = doubly_robust.Matrix(rng.normal(size=(n, 5)), [f"noise_{i}" for i in range(5)], [])
    groups = np.arange(n) // 10
    treated = (rng.random(n) < rate).astype(np.int8)
    nobody = np.zeros(n)

    propensity, _ = doubly_robust.fit_propensity(
        x,
        treated,
        nobody.astype(np.int8),
        nobody,
        doubly_robust.folds(groups, 2, 0),
        groups,
        clip=0.001,
        seed=0,
    )

    low, high = np.quantile(propensity, [0.01, 0.99])
    assert rate / 2 < low and high < 2.5 * rate, (low, high)


def test_the_control_that_got_the_action_later_is_weighted_to_resemble_the_treated() -> None:
    """Untreated rows the team was likely to treat stand for the treated: that they went on to get the action
    (a "later" comparison) weighs by their propensity odds, not by their count."""
    treated = np.array([1, 1, 0, 0, 0, 0, 0, 0], np.int8)
    later = np.array([1, 1, 1, 0, 0, 0, 0, 0], np.int8)
    propensity = np.array([0.8, 0.8, 0.8, 0.2, 0.2, 0.2, 0.2, 0.2])

    share = doubly_robust.control_treated_later(treated, later, propensity)

    # odds 4 for the one likely row (treated later), 0.25 for each of five unlikely ones (never treated)
    assert share == pytest.approx(4.0 / (4.0 + 5 * 0.25))
    assert later[treated == 0].mean() == pytest.approx(1 / 6)  # unweighted, the comparison looks "never"
    assert (
        doubly_robust.control_treated_later(np.ones(3, np.int8), np.ones(3, np.int8), np.full(3, 0.5)) is None
    )


def test_standard_errors_cluster_on_the_account() -> None:
    """Copies of an account's row are not new evidence: the clustered SE must not shrink with them."""
    rng = np.random.default_rng(0)
    psi = rng.normal(size=500)
    t = (rng.random(500) < 0.5).astype(np.int8)
    y = (rng.random(500) < 0.3).astype(np.int8)
    once = doubly_robust.average_effect(psi, t, y, np.arange(500))
    tripled = doubly_robust.average_effect(
        np.repeat(psi, 3), np.repeat(t, 3), np.repeat(y, 3), np.repeat(np.arange(500), 3)
    )
    assert tripled.ate == pytest.approx(once.ate)
    assert tripled.se == pytest.approx(once.se, rel=1e-9)


# -- trained on a simulation, judged against its truth --------------------------------------------------


def test_every_action_has_effects_with_intervals_and_the_naive_difference(uplift_world: UpliftWorld) -> None:
    effects = uplift_world.result.metrics["effects"]
    assert set(effects) == {f"{a}_{o}" for a in ACTIONS for o in ("churn", "expansion")}
    for effect in effects.values():
        assert effect["ci_low"] <= effect["ate"] <= effect["ci_high"]
        assert effect["n_treated"] > 0 and effect["n_control"] > effect["n_treated"]
    # the placebo: asking for a reference changes nothing in the simulator
    placebo = effects["reference_ask_churn"]
    assert placebo["ci_low"] <= 0.0 <= placebo["ci_high"]


def test_each_action_says_how_often_its_comparison_got_the_action_later(uplift_world: UpliftWorld) -> None:
    overlap, flat = uplift_world.result.metrics["overlap"], uplift_world.result.flat_metrics
    # the QBR is compared per renewal, taken before it or never: no later take to count
    weekly = [a for a in ACTIONS if a != "qbr_roi_review"]
    qbr = overlap["qbr_roi_review"]
    assert qbr["design"] == "renewal" and qbr["control_treated_later"] is None, qbr
    assert qbr["worth_taken_later"] is None and "qbr_roi_review_control_treated_later" not in flat
    later = {a: overlap[a]["control_treated_later"] for a in weekly}
    assert all(overlap[a]["design"] == "weekly" for a in weekly)
    assert all(0.0 < share < 1.0 for share in later.values()), later
    assert {a: flat[f"{a}_control_treated_later"] for a in weekly} == later
    # the team goes on to chase an overdue invoice almost always; it asks for a reference now and then
    assert later["billing_outreach"] > 0.5 > later["reference_ask"], later


def test_held_out_weeks_stay_out_of_every_action_s_comparison_and_measure_the_usual_course(
    uplift_world: UpliftWorld,
) -> None:
    metrics, flat = uplift_world.result.metrics, uplift_world.result.flat_metrics
    held = metrics["held_out_rows"]
    assert held > 0
    # a held-out week is neither this week's act nor the usual course
    for effect in metrics["effects"].values():
        assert effect["n_treated"] + effect["n_control"] == metrics["rows"] - held
    program = metrics["program_effect"]
    assert set(program) == {"churn", "expansion"}
    for outcome, effect in program.items():
        assert MIN_HELD_WEEKS <= effect["n_control"] <= held
        assert effect["n_treated"] > effect["n_control"]
        assert effect["ci_low"] < effect["ate"] < effect["ci_high"]
        assert 0.0 < effect["never_rate"] < 1.0
        assert flat[f"program_{outcome}_ate"] == effect["ate"]


def test_true_average_effects_fall_inside_most_intervals(uplift_world: UpliftWorld) -> None:
    coverage = uplift_world.result.metrics["truth"]["coverage"]
    for outcome in ("churn", "expansion"):
        covered = [a["covered"] for a in coverage[outcome].values()]
        assert sum(covered) >= 9, (outcome, coverage[outcome])


@pytest.fixture(scope="module")
def held_out(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Month-end feature rows of another simulation (another seed), its true effects and its actions."""
    root = tmp_path_factory.mktemp("held-out")
    simulate_to(SimConfig(accounts=500, days=300, seed=23, start=date(2024, 9, 1)), root / "sim")
    store = Store(root / "store")
    ingest_path(store, root / "sim")
    build_and_publish(store, Settings(home=store.root), None, None, online=False)
    rows = read_features(store).to_pandas()
    rows = rows[~(rows["days_to_renewal"] < 0)].reset_index(drop=True)
    effects = pd.read_parquet(root / "sim" / "truth" / "action_effects.parquet")
    return rows, effects, read_interventions(store)


def test_uplift_ranking_beats_the_rules_and_the_riskiest_first_on_a_held_out_simulation(
    uplift_world: UpliftWorld, held_out: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]
) -> None:
    rows, effects, interventions = held_out
    model, _ = load_uplift_model(uplift_world.store, uplift_world.settings)
    truth = against_truth.true_effects(effects, rows)
    values = against_truth.policy_values(model, rows, truth, interventions, budget_share=0.1)
    averted = values["churn_averted"]
    assert averted["oracle"] > 0
    assert averted["uplift"] >= 2 * max(averted["rules"], averted["highest_risk"]), values
    assert values["share_of_oracle"]["uplift"] >= 0.4, values
    # some of the oracle's value is on actions the team took within the horizon anyway
    assert 0 < values["taken_anyway_share"]["oracle"] < 1, values


def test_the_judge_offers_what_serving_would_at_each_cutoff(
    held_out: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame],
) -> None:
    """The judged rows' offer is serving's eligibility at the cutoff over its cool-down register seeded
    from the same interventions, counting takes strictly before the cutoff (a take at it is that week's)."""
    rows, _, interventions = held_out
    judged = policy.Offer.of(rows, policy.at_cutoffs(rows, recency.last_taken(rows, interventions)), ACTIONS)
    register = LastTaken(pa.Table.from_pandas(interventions[["account_id", "action", "ts"]]))
    as_of = recency.cutoff_instants(rows["cutoff"])
    served = policy.eligible_mask(
        [
            eligibility(row, register.of(row["account_id"], when - timedelta(microseconds=1)), when)
            for row, when in zip(rows.to_dict("records"), as_of, strict=True)
        ]
    )
    assert (judged.eligible == served).all()
    assert (
        ~judged.eligible
        & policy.eligible_mask(policy.verdicts(rows.to_dict("records"), [{}] * len(rows), as_of))
    ).any()


def test_the_judge_credits_no_policy_with_an_action_inside_the_team_s_cool_down(
    uplift_world: UpliftWorld, held_out: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]
) -> None:
    """The team took every action the day before every cutoff: the endpoint offers nothing, so no policy,
    the oracle included, averts anything."""
    rows, effects, interventions = held_out
    model, _ = load_uplift_model(uplift_world.store, uplift_world.settings)
    days = pd.to_datetime(rows["cutoff"], utc=True).drop_duplicates() - UTC_DAY
    accounts = rows["account_id"].unique()
    grid = pd.MultiIndex.from_product([accounts, ACTIONS, days], names=["account_id", "action", "ts"])
    cooling = pd.concat([interventions, grid.to_frame(index=False)], ignore_index=True)
    truth = against_truth.true_effects(effects, rows)
    values = against_truth.policy_values(model, rows, truth, cooling, budget_share=0.1)
    assert set(values["churn_averted"].values()) == {0.0}, values


def month_end_rows(world: UpliftWorld) -> pd.DataFrame:
    """The store's month-end feature rows with days since each action, as the uplift models read them."""
    rows = read_features(world.store).to_pandas()
    return recency.with_recency(rows, recency.last_taken(rows, read_interventions(world.store)))


def test_the_registered_model_answers_through_mlflow_as_it_does_in_process(
    uplift_world: UpliftWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow.pyfunc

    from registry.tracking import active_uri, tracking_uri

    model, info = load_uplift_model(uplift_world.store, uplift_world.settings)
    assert info.name == "uplift" and "champion" in info.aliases
    rows = month_end_rows(uplift_world).head(20)
    assert set(recency.days_since_column(a) for a in ACTIONS) <= set(model.features)
    # pyfunc puts the model's copy of our code first on sys.path; later tests' worker processes inherit it
    monkeypatch.setattr(sys, "path", list(sys.path))
    with active_uri(tracking_uri(uplift_world.store, uplift_world.settings)):
        served = mlflow.pyfunc.load_model("models:/uplift@champion").predict(rows[model.features])
    expected = output_frame(model, rows)
    assert list(served.columns) == [f"{a}_{o}" for o in ("churn", "expansion") for a in ACTIONS]
    np.testing.assert_allclose(served.to_numpy(), expected.to_numpy())


def as_data(shares: dict[tuple[str, str], doubly_robust.RelativeEffect]) -> dict[tuple[str, str], Posterior]:
    """Posteriors that are the data's shares themselves: under a prior too vague to move them."""
    return {(a, o): with_prior(share, Prior(0.0, 1e9, LEARNT), o) for (a, o), share in shares.items()}


def test_predicted_effects_are_shares_of_the_risk_that_keep_probabilities_in_0_1(
    uplift_world: UpliftWorld,
) -> None:
    # the actions whose tournament a learner won are ranked by it (tested below): these rank by shares
    model = replace(load_uplift_model(uplift_world.store, uplift_world.settings)[0], learners={})
    rows = month_end_rows(uplift_world)
    x = doubly_robust.Matrix.of(rows, model.features, model.categories)
    base = doubly_robust.predict(model.baselines["churn"], x, np.arange(len(rows)))
    # what ranks is each action's posterior share
    shares = np.array([model.effect(a, "churn").value for a in model.actions])
    inside = (shares >= -1) & (shares * base.max() <= 1 - base.max())
    effects = model.uplift(rows)["churn"]
    np.testing.assert_allclose(effects[:, inside], base[:, None] * shares[inside])
    # the 95% interval's ends scale the same way, the estimate between them
    ses = np.array([model.effect(a, "churn").se for a in model.actions])
    inputs = model.inputs(rows)
    low, high = (
        model.scaled(inputs, -doubly_robust.Z95)["churn"],
        model.scaled(inputs, doubly_robust.Z95)["churn"],
    )
    assert (low <= effects + 1e-12).all() and (effects <= high + 1e-12).all()
    top = shares + doubly_robust.Z95 * ses
    unclipped = (top >= -1) & (top * base.max() <= 1 - base.max())
    np.testing.assert_allclose(high[:, unclipped], base[:, None] * top[unclipped])

    # shares fitted to noise can promise more than the whole risk, or more than its headroom
    extreme = replace(
        model,
        posterior=as_data(
            {
                k: doubly_robust.RelativeEffect(-3.0 if k[0] == "save_offer" else 50.0, 0.0)
                for k in model.relative
            }
        ),
    )
    after = base[:, None] + extreme.uplift(rows)["churn"]
    assert after.min() >= -1e-12 and after.max() <= 1 + 1e-12
    np.testing.assert_allclose(after[:, model.actions.index("save_offer")], 0.0, atol=1e-12)


def test_a_playbook_prior_moves_its_action_until_the_data_outweigh_it(uplift_world: UpliftWorld) -> None:
    """Trained with a confident prior on one action (the cross-fits read from the store's cache), its
    posterior starts from that prior and names its source; every other action is pooled as before."""
    store, settings = uplift_world.store, uplift_world.settings
    config = UpliftConfig(seed=7).resolved(settings)
    design = store_design(store, settings, int(config.horizon_days or 90), config.threads)
    source = "save-desk pilot, 2024"
    prior = ActionPrior(source=source, churn=Belief(mean=-0.5, sd=0.01))
    actions = design.actions | {
        "save_offer": design.actions["save_offer"].model_copy(update={"prior": prior})
    }
    given = fit_uplift(replace(design, actions=actions), config, "uplift", cache=crossfit_cache(store))
    plain = fit_uplift(design, config, "uplift", cache=crossfit_cache(store))
    save = given.effect("save_offer", "churn")
    assert save.prior.source == source and save.decided_by == "prior"
    assert abs(save.value + 0.5) < abs(plain.effect("save_offer", "churn").value + 0.5)
    assert given.relative == plain.relative, "the data's own estimates do not move"
    assert given.effect("save_offer", "expansion").prior.learnt
    assert f"mostly the playbook's prior ({source})" in how_sure(save)


def test_a_learner_that_won_its_tournament_ranks_its_action_s_churn_and_only_that(
    uplift_world: UpliftWorld,
) -> None:
    model, _ = load_uplift_model(uplift_world.store, uplift_world.settings)
    assert set(model.tournament) <= set(model.usable()) and all(
        t.winner in ENTRANTS and t.runner_up != t.winner for t in model.tournament.values()
    )
    assert set(model.learners) == {a for a, t in model.tournament.items() if t.winner != POOLED}
    rows = month_end_rows(uplift_world)
    plain = replace(model, learners={})
    column = model.features.index("health_band")
    levels = tuple(model.categories["health_band"])
    bands = BandShares(column, levels, {"critical": -0.5}, 0.0, scale=2.0)
    banded = replace(plain, learners={"training_session": bands})
    j = model.actions.index("training_session")
    inputs = banded.inputs(rows)
    risk = inputs.risks["churn"]
    critical = (rows["health_band"] == "critical").to_numpy()
    assert critical.any() and (~critical).any()
    churn = banded.scaled(inputs)["churn"]
    np.testing.assert_allclose(churn[critical, j], np.maximum(-1.0 * risk[critical], -risk[critical]))
    np.testing.assert_allclose(churn[~critical, j], 0.0)
    others = [k for k in range(len(model.actions)) if k != j]
    np.testing.assert_allclose(churn[:, others], plain.scaled(inputs)["churn"][:, others])
    np.testing.assert_allclose(banded.scaled(inputs)["expansion"], plain.scaled(inputs)["expansion"])


def test_an_action_shows_a_benefit_only_where_an_interval_lies_wholly_on_the_side_that_helps(
    uplift_world: UpliftWorld,
) -> None:
    model, _ = load_uplift_model(uplift_world.store, uplift_world.settings)

    def given(churn: doubly_robust.RelativeEffect, expansion: doubly_robust.RelativeEffect) -> bool:
        shares = {k: churn if k[1] == "churn" else expansion for k in model.relative}
        return replace(model, posterior=as_data(shares)).shows_benefit("training_session")

    none = doubly_robust.RelativeEffect(0.0, 0.01)
    assert given(
        doubly_robust.RelativeEffect(-0.2, 0.05), none
    )  # removes a fifth of the risk, give or take a tenth
    assert not given(doubly_robust.RelativeEffect(-0.2, 0.15), none)  # the interval reaches past 0
    assert given(none, doubly_robust.RelativeEffect(0.3, 0.1))  # a clear gain in expansion
    assert not given(
        doubly_robust.RelativeEffect(0.2, 0.05), doubly_robust.RelativeEffect(-0.3, 0.1)
    )  # clearly harmful is no benefit


# -- served -------------------------------------------------------------------------------------------


@dataclass
class _ServedWorld:
    store: Store
    keys: dict[str, str]


@pytest.fixture(scope="module")
def server(uplift_world: UpliftWorld, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    _, key = KeyFile.for_store(uplift_world.store).create(["admin"], name="uplift test")
    table = read_features(uplift_world.store, columns=["cutoff"]).to_pandas()
    as_of = table["cutoff"].max().date()
    running = Server(
        _ServedWorld(uplift_world.store, {"admin": key}), tmp_path_factory.mktemp("log") / "serve.log", as_of
    )  # type: ignore[arg-type]
    yield running
    running.stop()


def test_next_best_actions_are_ranked_by_expected_value_from_the_uplift_champion(
    uplift_world: UpliftWorld, server: Server
) -> None:
    model, info = load_uplift_model(uplift_world.store, uplift_world.settings)
    table = read_features(uplift_world.store).to_pandas()
    latest = table[table["cutoff"] == table["cutoff"].max()].reset_index(drop=True)
    # the server's clock is the end of the latest cutoff's day: its days-since count every take up to then
    as_of = datetime.combine(latest["cutoff"].max().date(), time.max, tzinfo=UTC)
    log = read_interventions(uplift_world.store)
    log = log[pd.to_datetime(log["ts"], utc=True) <= as_of]
    taken: dict[str, dict[str, datetime]] = {}
    for (account, action), ts in log.groupby(["account_id", "action"])["ts"].max().items():
        taken.setdefault(account, {})[action] = ts.to_pydatetime()
    days_since = [recency.for_account(taken.get(a, {}), as_of) for a in latest["account_id"]]
    latest = latest.join(pd.DataFrame(days_since))
    assert latest[[recency.days_since_column(a) for a in ACTIONS]].notna().any().any()
    uplift = model.uplift(latest)
    values = expected_values(
        uplift["churn"], uplift["expansion"], latest["arr"].to_numpy(float), model.actions, Settings().value
    )
    seen_uplift = 0
    for i in range(0, len(latest), max(1, len(latest) // 15)):
        account = latest.loc[i, "account_id"]
        body = server.call("GET", f"/v1/accounts/{account}/next-best-actions?limit=12").json()
        assert body["ranking"] == "uplift", body
        assert f"uplift/{info.version}" in body["ranking_note"]
        ranked = [a for a in body["actions"] if a["expected_value"] is not None]
        evs = [a["expected_value"] for a in ranked]
        assert evs == sorted(evs, reverse=True) and all(v > 0 for v in evs)
        for a in ranked:
            j = model.actions.index(a["action"])
            assert a["expected_value"] == pytest.approx(values[i, j], abs=0.01)
            assert a["rationale"].startswith("Expected value $")
            for outcome in ("churn", "expansion"):
                change = a[f"{outcome}_change"]
                assert change["estimate"] == pytest.approx(uplift[outcome][i, j], abs=1e-9)
                assert change["ci_low"] <= change["estimate"] <= change["ci_high"]
            # where the data cannot tell the effect from none, the CSM is told so in words
            clear = model.shows_benefit(a["action"])
            assert a["effect_evidence"] == ("clear" if clear else "uncertain"), a
            assert ("cannot yet tell its effect from none" in a["rationale"]) is not clear, a["rationale"]
            # how sure, as a number and in words, from the posterior that ranked it
            p_helps = model.p_helps(a["action"])
            assert a["probability_helps"] == pytest.approx(p_helps, abs=1e-3)
            assert f"{chance_of(p_helps)} chance it lowers churn risk; decided by mostly" in a["rationale"]
        seen_uplift += len(ranked)
    assert seen_uplift > 0


def test_a_new_action_in_the_store_s_playbook_is_ranked_by_the_rules_until_uplift_has_learnt_it(
    uplift_world: UpliftWorld, server: Server, tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = tmp_path_factory.mktemp("own-playbook")
    path = own(folder, with_workshop())
    model, _ = load_uplift_model(uplift_world.store, uplift_world.settings)
    assert "success_plan_workshop" not in model.actions
    mine = Server(server.world, folder / "serve.log", server.as_of, RETAIN_PLAYBOOK=str(path))
    try:
        table = read_features(uplift_world.store, columns=["account_id", "cutoff"]).to_pandas()
        accounts = table[table["cutoff"] == table["cutoff"].max()]["account_id"].tolist()
        seen = 0
        for account in accounts[:: max(1, len(accounts) // 40)]:
            body = mine.call("GET", f"/v1/accounts/{account}/next-best-actions?limit=13").json()
            assert body["ranking"] == "uplift", body
            names = [a["action"] for a in body["actions"]]
            if "success_plan_workshop" not in names:
                continue
            seen += 1
            workshop = body["actions"][names.index("success_plan_workshop")]
            assert workshop["expected_value"] is None and NOT_MODELLED in workshop["rationale"]
            assert workshop["channel"] == "meeting" and workshop["cost_hours"] == 1.5
            valued = [a["expected_value"] is not None for a in body["actions"]]
            assert valued == sorted(valued, reverse=True), "the uplift-ranked actions come first"
        assert seen > 0
        unknown = server.call(
            "POST", "/v1/accounts/x/next-best-actions", json={"exclude": ["success_plan_workshop"]}
        )
        assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "unknown_action"
    finally:
        mine.stop()


# -- promotion ------------------------------------------------------------------------------------------


def test_policies_are_judged_from_the_log_by_dr_and_self_normalised_ipw(uplift_world: UpliftWorld) -> None:
    result = CliRunner().invoke(
        app, ["policy", "evaluate", "--store", str(uplift_world.store.root), "--weeks", "8", "--json"]
    )
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    policies = {p["policy"].split(" v")[0]: p for p in found["policies"]}
    assert set(policies) == {"champion", "rules", "highest_risk"}  # the challenger is the champion
    budget = found["window"]["budget"]
    for p in policies.values():
        assert 0 < p["pairs"] <= budget
        assert p["dr_ci"][0] <= p["dr"] <= p["dr_ci"][1] and p["snipw_ci"][0] < p["snipw_ci"][1]
    # the DR figure is the one promotion's gate sums, on the same weeks
    model, _ = load_uplift_model(uplift_world.store, uplift_world.settings)
    weeks = evaluation_weeks(uplift_world.store, uplift_world.settings, UpliftConfig(), 8)
    assert policies["champion"]["dr"] == pytest.approx(float(estimated_averted(model, weeks).sum()))
    # two estimators that lean on different models agree within their intervals on the champion
    champion = policies["champion"]
    assert champion["snipw_ci"][0] <= champion["dr_ci"][1] and champion["dr_ci"][0] <= champion["snipw_ci"][1]


def test_the_uplift_gate_refuses_a_policy_that_averts_significantly_less() -> None:
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(300), 4)
    champion = rng.normal(0.05, 0.2, len(groups))
    assert uplift_gate(champion, champion + rng.normal(0, 0.01, len(groups)), groups)[0]
    passed, verdict, _ = uplift_gate(champion, champion - 0.05, groups)
    assert not passed and "fails" in verdict


def test_promoting_an_uplift_challenger_judges_both_on_the_latest_weeks(uplift_world: UpliftWorld) -> None:
    log_and_register(uplift_world.store, uplift_world.settings, uplift_world.result, "uplift")
    result = promote(uplift_world.store, uplift_world.settings, "uplift")
    assert result.decision == "promoted", result  # the same model again: no shortfall
    assert result.scores is not None and result.window is not None and result.window.budget is not None
    assert result.scores.champion.churn_averted == pytest.approx(result.scores.challenger.churn_averted)
    assert result.window.budget > 0 and "DR" in str(result.rule)
    _, info = load_uplift_model(uplift_world.store, uplift_world.settings)
    assert info.version == result.champion == "2"


def test_an_uplift_model_pickled_under_earlier_names_still_loads(
    uplift_world: UpliftWorld,
) -> None:
    """Earlier releases kept the estimator in `training.causal.dr` and its shares as `Share`."""
    from mlflow.artifacts import download_artifacts

    world, name = uplift_world, "uplift-renamed"
    log_and_register(world.store, world.settings, world.result, name)
    mlflow_client = client(world.store, world.settings)
    info = resolve(mlflow_client, f"{name}/1")
    location = mlflow_client.get_logged_model(info.source.removeprefix("models:/")).artifact_location
    # protocol 0 names each class as a text line, so the earlier names can be written in place
    today = pickle.dumps(world.result.model, protocol=0)
    earlier = today.replace(
        b"ctraining.causal.doubly_robust\nRelativeEffect\n", b"ctraining.causal.dr\nShare\n"
    ).replace(b"ctraining.causal.doubly_robust\n", b"ctraining.causal.dr\n")
    assert b"training.causal.doubly_robust" not in earlier and b"ctraining.causal.dr\nShare\n" in earlier
    Path(download_artifacts(f"{location}/artifacts/{MODEL_ARTIFACT}")).write_bytes(earlier)
    model, _ = load_uplift_model(world.store, world.settings, f"{name}/1")
    assert model.readable() and model.relative == world.result.model.relative
    rows = month_end_rows(world).head(50)
    assert np.array_equal(model.uplift(rows)["churn"], world.result.model.uplift(rows)["churn"])


def test_an_uplift_model_from_an_earlier_retain_is_refused_by_name_and_replaced_on_promotion(
    uplift_world: UpliftWorld,
) -> None:
    from mlflow.artifacts import download_artifacts

    world, name = uplift_world, "uplift-earlier"
    log_and_register(world.store, world.settings, world.result, name)
    mlflow_client = client(world.store, world.settings)
    info = resolve(mlflow_client, f"{name}/1")
    location = mlflow_client.get_logged_model(info.source.removeprefix("models:/")).artifact_location
    # what an earlier Retain pickled: shares as plain floats, without standard errors
    earlier = replace(
        world.result.model, relative={k: s.value for k, s in world.result.model.relative.items()}
    )
    Path(download_artifacts(f"{location}/artifacts/{MODEL_ARTIFACT}")).write_bytes(pickle.dumps(earlier))
    with pytest.raises(StaleModel, match="retain train --model uplift"):
        load_uplift_model(world.store, world.settings, name)
    log_and_register(world.store, world.settings, world.result, name)
    result = promote(world.store, world.settings, name)
    assert result.decision == "promoted" and "earlier Retain" in str(result.verdict), result
    model, info = load_uplift_model(world.store, world.settings, name)
    assert info.version == "2" and model.readable()
