"""The model card: built from real, small training results (a churn run on synthetic rows with a health score
and a truth, a bring-your-own table, an uplift model of real parts), it shows their own numbers."""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from core.catalogue import ACTIONS
from core.settings import Settings
from registry.card import DESCRIPTION_LIMIT, MODEL_CARD, model_card, version_description
from tests.support.models import FEATURES, TIERS, feature_rows, fit_model, train_result
from training.artifact import ScoringModel, model_matrix
from training.causal.doubly_robust import Effect, RelativeEffect
from training.causal.tournament import Standing
from training.causal.uplift import OUTCOMES, Overlap, UpliftModel
from training.columns import category_levels
from training.config import TrainConfig
from training.dataset import LABEL, WINDOW, TrainingSet, check_windows
from training.logodds import expit
from training.result import TrainResult
from training.run import fit_and_evaluate, train_table

CUTOFFS = pd.to_datetime(
    ["2025-01-31", "2025-02-28", "2025-03-31", "2025-04-30", "2025-05-31", "2025-06-30"], utc=True
).astype("datetime64[us, UTC]")
WINDOWS = ["train", "train", "train", "calibration", "calibration", "test"]
CONFIG = TrainConfig(n_trials=2, plots=False, min_train_rows=100, min_window_positives=5, slices=["tier"])


def sections(card: str) -> dict[str, str]:
    """The card's sections by title."""
    return {part.split("\n", 1)[0]: part for part in card.split("\n## ")[1:]}


@pytest.fixture(scope="module")
def churn() -> TrainResult[ScoringModel]:
    """A churn run over six month-end cutoffs of synthetic rows, with a weak health score and the truth."""
    rows, labels = feature_rows(3_000, 5)
    rows["cutoff"] = CUTOFFS[np.arange(len(rows)) % len(CUTOFFS)]
    rows[WINDOW] = np.array(WINDOWS, dtype=object)[np.arange(len(rows)) % len(CUTOFFS)]
    rows[LABEL] = labels
    rows["health_score"] = (100 * rows["seat_utilisation"] - 15 * rows["open_p1p2_tickets"]).clip(0, 100)
    # the logit feature_rows draws its labels from (tests/support/models.py)
    days = rows["days_since_last_session"].fillna(30)
    logit = 0.12 * days - 3.0 * rows["seat_utilisation"] + 0.6 * rows["open_p1p2_tickets"] - 1.2
    truth = pd.DataFrame({"account_id": rows["account_id"], "cutoff": rows["cutoff"], "oracle": expit(logit)})
    config = CONFIG.resolved(Settings())
    lineage = {
        "source": "store",
        "store": "/stores/acme",
        "table_versions": {"accounts": 3, "events": 12, "interventions": 1, "quarantine": None},
        "feature_service": "churn_v2",
        "target": "churn",
        "horizon_days": 90,
        "cutoffs": {
            w: sorted({str(c.date()) for c, n in zip(CUTOFFS, WINDOWS, strict=True) if n == w})
            for w in set(WINDOWS)
        },
        "cutoffs_unused": [],
        "rows_dropped_already_churned": 17,
        "windows": check_windows(rows, config),
        "train_fingerprint": "0123456789abcdef",
    }
    categories = category_levels(rows[rows[WINDOW] == "train"], ["tier"])
    data = TrainingSet(rows, FEATURES, categories, "account_id", "cutoff", lineage)
    return fit_and_evaluate(data, "churn", "churn", config, truth[rows[WINDOW] == "test"])


def test_a_churn_card_shows_the_run_s_own_windows_metrics_calibration_and_features(
    churn: TrainResult[ScoringModel],
) -> None:
    card = model_card(churn, "churn", "7")
    assert card.startswith("# Model card: churn, version 7\n")
    parts = sections(card)
    assert list(parts) == [
        "What it predicts",
        "Training window and data volumes",
        "Metrics on the out-of-time test window",
        "Calibration",
        "Known limits",
        "The features that matter most",
    ]
    assert "churns within 90 days" in parts["What it predicts"] and "**Intended use:**" in card

    windows = churn.lineage["windows"]
    train = windows["train"]
    assert (
        f"| train | 3 | 2025-01-31 | 2025-03-31 | {train['rows']:,} | {train['positives']:,} | "
        f"{train['positives'] / train['rows']:.1%} |" in parts["Training window and data volumes"]
    )
    assert "| test | 1 | 2025-06-30 | 2025-06-30 |" in parts["Training window and data volumes"]
    assert "`churn_v2`" in card and "accounts v3, events v12, interventions v1." in card

    m = churn.metrics
    metrics = parts["Metrics on the out-of-time test window"]
    assert "| metric | model | health formula | logistic regression | oracle (simulator truth) |" in metrics
    auc = [m[c]["auc"] for c in ("model", "health", "logistic", "oracle")]
    assert "| ROC-AUC | " + " | ".join(f"{a:.3f}" for a in auc) + " |" in metrics
    assert f"| Brier score (lower is better) | {m['model']['brier']:.4f} |" in metrics
    assert f"{auc[0] - auc[1]:+.3f} against the health formula" in metrics
    assert f"{m['oracle']['rows']:,} test rows its truth covers" in metrics
    lift_gap = m["model"]["lift_top_decile"] - m["logistic"]["lift_top_decile"]
    assert "The model's top-10% lift: " in metrics and f"{lift_gap:+.2f} against the logistic" in metrics
    pr_gap = m["model"]["pr_auc"] - m["logistic"]["pr_auc"]
    assert "The model's PR-AUC: " in metrics and f"{pr_gap:+.3f} against the logistic" in metrics
    assert f"its PR-AUC {m['oracle']['model_pr_auc_same_rows']:.3f} and its top-10% lift" in metrics

    calibration = parts["Calibration"]
    assert calibration.startswith("Calibration\n\nPlatt scaling")
    assert f"{m['ece_raw']:.3f} before calibration, {m['model']['ece']:.3f} after" in calibration
    assert "(2025-04-30 to 2025-05-31)" in calibration

    gains = churn.model.booster.feature_importance(importance_type="gain")
    top = churn.model.features[int(np.argmax(gains))]
    features = parts["The features that matter most"]
    assert f"| 1 | `{top}` |" in features
    assert f"{gains.max() / gains.sum():.1%}" in features
    assert "| `days_since_last_session` | Last login … days ago |" in features
    assert features.count("never lowers the risk") == 2  # days since the last login, urgent tickets

    limits = parts["Known limits"]
    assert "97 days after its cutoff" in limits and "judged on is 2025-06-30" in limits
    assert "health rules instead" in limits and "`tier`" in limits
    assert "tier = (missing)" in limits  # the few rows without a tier
    assert len(card) < DESCRIPTION_LIMIT and version_description(card, "run") == card


def test_a_table_card_has_no_health_formula_and_says_an_id_split_is_not_out_of_time(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    logins, plan = rng.gamma(2.0, 10.0, 2_000), rng.choice(["basic", "pro"], 2_000)
    churned = rng.random(2_000) < expit(-1.0 - 0.08 * logins + np.where(plan == "basic", 1.0, 0.0))
    path = tmp_path / "snapshots.csv"
    pd.DataFrame({"customer": range(2_000), "logins": logins, "plan": plan, "churned": churned}).to_csv(
        path, index=False
    )
    # a table past cv_max_rows keeps the train/calibration/test split (a small one is cross-validated)
    held_out = CONFIG.model_copy(update={"cv_max_rows": 0})
    result = train_table(path, "churned", "customer", None, "acme", held_out, settings=Settings())

    parts = sections(model_card(result, "acme", "1"))
    assert "`churned` is true" in parts["What it predicts"]
    assert "| window | rows | positives | base rate |" in parts["Training window and data volumes"]
    assert "Split by id (seeded hash)." in parts["Training window and data volumes"]
    metrics = parts["Metrics on the test window"]
    assert "| metric | model | logistic regression |" in metrics and "No health formula" in metrics
    assert (
        f"| ROC-AUC | {result.metrics['model']['auc']:.3f} | {result.metrics['logistic']['auc']:.3f} |"
        in metrics
    )
    assert "| `logins` | logins |" in parts["The features that matter most"]
    assert "Split by id, not by time" in parts["Known limits"]
    assert "health rules" not in parts["Known limits"]


def test_a_cross_validated_table_card_says_every_row_trains_and_the_figures_are_out_of_fold(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(4)
    logins = rng.gamma(2.0, 10.0, 1_500)
    churned = rng.random(1_500) < expit(-1.0 - 0.08 * logins)
    path = tmp_path / "snapshots.csv"
    pd.DataFrame({"customer": range(1_500), "logins": logins, "churned": churned}).to_csv(path, index=False)
    result = train_table(path, "churned", "customer", None, "acme", CONFIG, settings=Settings())

    parts = sections(model_card(result, "acme", "1"))
    assert "Not split: every row trains the final model" in parts["Training window and data volumes"]
    metrics = parts["Cross-validated metrics"]
    assert "Every row (1,500" in metrics and "| metric | model | logistic regression |" in metrics
    assert f"| ROC-AUC | {result.metrics['model']['auc']:.3f} |" in metrics
    assert (
        "every out-of-fold prediction" in parts["Calibration"]
        and "out of fold (10 bins)" in parts["Calibration"]
    )
    assert "Cross-validated, not out of time" in parts["Known limits"]


def test_a_result_missing_its_metrics_still_gives_a_card() -> None:
    card = model_card(train_result(fit_model(), {}), "churn", "1")
    parts = sections(card)
    assert "| ROC-AUC | — |" in parts["Metrics on the out-of-time test window"]
    assert "No oracle" in card and "| train | 2 | 2025-01-31 | 2025-02-28 | — | — | — |" in card
    assert "Isotonic regression" in parts["Calibration"]


def uplift_result() -> TrainResult[UpliftModel]:
    """An uplift model of real parts: a LightGBM churn baseline, shares, average effects and overlaps."""
    rows, labels = feature_rows(600, 4)
    params = {"objective": "binary", "num_leaves": 2, "verbose": -1, "num_threads": 1}
    churn = lgb.train(params, lgb.Dataset(model_matrix(rows, FEATURES, {"tier": TIERS}), labels), 20)
    poor, helps = {"save_offer", "reference_ask"}, {"training_session", "billing_outreach"}
    overlap = {
        a: Overlap(
            n_treated=30 if a in poor else 400,
            n_randomised=10,
            effective_treated=12.0 if a in poor else 95.0,
            clipped_share=0.0,
            propensity_quantiles={},
            min_effective=40.0,
            control_treated_later=0.7 if a == "health_check_call" else 0.2,
        )
        for a in ACTIONS
    }
    relative = {(a, o): RelativeEffect(-0.2 if a in helps else 0.0, 0.05) for a in ACTIONS for o in OUTCOMES}
    average = {(a, o): Effect(-0.01, 0.005, -0.02, 0.0, 0.02, 400, 9_000) for a in ACTIONS for o in OUTCOMES}
    model = UpliftModel(
        "uplift", FEATURES, {"tier": TIERS}, list(ACTIONS), 90, {"churn": churn, "expansion": 0.1},
        relative, overlap, average,
        tournament={"training_session": Standing(
            "training_session", {"pooled_share": 10.0, "dr_learner": 25.0}, "dr_learner", "pooled_share",
            15.0, 5.0,
        )},
    )  # fmt: skip
    truth = {
        "policy": {
            "rows": 2_000,
            "budget": 200,
            "share_of_oracle": {"oracle": 1.0, "uplift": 0.62, "rules": 0.305, "highest_risk": 0.41},
        },
        "coverage": {o: {a: {"covered": a != "save_offer"} for a in ACTIONS} for o in OUTCOMES},
        "churn_shares": {a: {"true_share": -0.18} for a in ACTIONS},
    }
    program = {"outcome": "churn", "ate": -0.012, "ci_low": -0.03, "ci_high": 0.006}
    metrics = {
        "rows": 9_400,
        "held_out_rows": 900,
        "accounts": 600,
        "weeks": 40,
        "program_effect": {"churn": program},
        "truth": truth,
    }
    lineage = {"source": "store", "cutoffs": ["2024-09-04", "2025-06-04"], "horizon_days": 90}
    return TrainResult(model, {}, metrics, {}, {}, lineage, rows.head(5))


def test_an_uplift_card_shows_each_action_s_shares_overlap_and_the_judgement_against_the_truth() -> None:
    card = model_card(uplift_result(), "uplift", "3")
    parts = sections(card)
    assert list(parts) == [
        "What it predicts",
        "Training window and data volumes",
        "Effects per action",
        "Against the oracle",
        "Calibration",
        "Known limits",
        "The features that matter most",
    ]
    assert "from 2024-09-04 to 2025-06-04 (40 weeks): 9,400 account-weeks of 600 accounts" in card
    effects = parts["Effects per action"]
    # the posterior pools each estimate with the others: -20% ± 5% among ten at 0% ± 5% moves toward them
    assert (
        "| training_session | 400 | 95 | -13% (-23% to -3%) | -20% ± 5.0% | 99.9% | -13% (-23% to -3%) | — "
        "| -18% | clear | the model |" in effects
    )
    assert "| save_offer | 30 | 12 | -1% (-9% to +6%) | 0% ± 5.0% | 64.4% |" in effects
    assert "the rules (poor overlap)" in effects
    assert "churn -1.2 points (95% -3.0 to +0.6)" in effects
    assert "| training_session | dr learner | pooled share | +15.0 (5.0) |" in effects
    truth = parts["Against the oracle"]
    assert "treats 10.0% of 2,000 month-end rows" in truth
    assert "the uplift ranking 62.0%, the rules 30.5%, the riskiest first 41.0%" in truth
    assert "11 of 12 churn intervals; 11 of 12 expansion intervals hold it" in truth
    assert "Last login … days ago" in parts["The features that matter most"]
    limits = parts["Known limits"]
    assert "rank them by the rules: `save_offer`, `reference_ask`." in limits
    assert "`effect_evidence: uncertain`: every action but `training_session`, `billing_outreach`." in limits
    assert (
        "in over 50% of comparable weeks, so their scaling to never acting rests on a small difference: "
        "`health_check_call`." in limits
    )


def test_a_card_too_long_for_the_registry_keeps_its_leading_sections_and_says_where_the_rest_is() -> None:
    card = "# Model card: x, version 1\n\n## First\n\nshort\n\n## Second\n\n" + "long " * 400 + "\n"
    assert version_description(card, "abc", limit=10_000) == card
    cut = version_description(card, "abc", limit=500)
    assert len(cut) <= 500 and "## First\n\nshort" in cut and "## Second" not in cut
    assert f"`{MODEL_CARD}` in run `abc`" in cut
