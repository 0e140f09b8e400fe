"""The numba TreeSHAP against LightGBM's own `pred_contrib`: the same values on seeded boosters with missing
values, zeros, categorical splits and paths long enough to be computed per row; and the same
probabilities and reasons from `ScoringModel.explain` as the `pred_contrib` path it replaced."""

from __future__ import annotations

import math
import pickle
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from features.rows import FeatureRows
from tests.support.models import FEATURES, feature_rows, fit_model
from training.artifact import ScoringModel
from training.logodds import expit
from training.treeshap import PATH_FEATURES, UNIT_SPLITS, Forest, top_of

LEVELS = 40  # more than 32: a categorical split's bitset takes two words
WEAK = 8  # features of small effect: with them, deep trees have paths of more than PATH_FEATURES


def synthetic(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Columns that reach every branch of a split: NaNs, many exact zeros, tiny values, negatives, a
    category of 40 levels with missing codes, and weak features that make long paths."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "gappy": np.where(rng.random(n) < 0.15, np.nan, rng.normal(0, 1, n)),
            "counts": np.where(rng.random(n) < 0.4, 0.0, rng.integers(1, 6, n).astype(float)),
            "level": pd.Categorical(
                np.where(rng.random(n) < 0.05, None, rng.integers(0, LEVELS, n).astype(str))
            ),
            "uniform": rng.uniform(-1, 1, n),
            "signed": np.where(rng.random(n) < 0.2, 0.0, rng.normal(0, 1e-3, n)),
            **{f"weak{i}": rng.normal(0, 1, n) for i in range(WEAK)},
        }
    )
    level = frame["level"].cat.codes.to_numpy()
    logit = (
        np.nan_to_num(frame["gappy"].to_numpy(), nan=1.5)
        - 0.7 * frame["counts"]
        + np.where(level % 3 == 0, 1.2, -0.4)
        + 2 * frame["uniform"] ** 2
        + 300 * frame["signed"]
        + 0.3 * frame[[f"weak{i}" for i in range(WEAK)]].sum(axis=1)
    )
    return frame, (rng.random(n) < expit(logit.to_numpy())).astype(int)


def matrix(frame: pd.DataFrame) -> np.ndarray:
    """The float array LightGBM reads: category codes, NaN for a missing one."""
    out = frame.assign(level=frame["level"].cat.codes.replace(-1, np.nan).astype(float))
    return out.to_numpy(dtype="float64")


def edge_rows(booster: lgb.Booster, width: int) -> np.ndarray:
    """Values exactly at thresholds and just around zero, and codes no split has seen."""
    thresholds = [
        float(t) for t in booster.trees_to_dataframe()["threshold"].dropna() if not isinstance(t, str)
    ]
    specials = [np.nan, 0.0, -0.0, 1e-36, -1e-36, 1e-35, -1.0, -0.5, 0.5, 39.0, 63.0, 64.0, 1e10, 2.0**31 + 5]
    values = np.array([*specials, *thresholds], dtype="float64")
    rng = np.random.default_rng(0)
    return values[rng.integers(0, len(values), (400, width))]


def boosted(seed: int, **params: Any) -> tuple[lgb.Booster, np.ndarray]:
    frame, labels = synthetic(3_000, seed)
    settings = {"objective": "binary", "verbose": -1, "seed": seed, "num_threads": 1, "min_data_in_leaf": 5}
    booster = lgb.train({**settings, **params}, lgb.Dataset(frame, labels), 40)
    return booster, np.vstack([matrix(frame), edge_rows(booster, frame.shape[1])])


CASES = {
    "small trees": {"num_leaves": 7, "max_depth": 3},
    "deep trees": {"num_leaves": 48, "max_depth": -1, "min_data_in_leaf": 2, "max_cat_threshold": 64},
    "zero as missing": {"num_leaves": 15, "zero_as_missing": True},
    "no missing type": {"num_leaves": 15, "use_missing": False},
    "one-hot categories": {"num_leaves": 15, "max_cat_to_onehot": 64},
}


@pytest.mark.parametrize("case", CASES)
def test_contributions_are_pred_contrib_on_every_kind_of_split(case: str) -> None:
    booster, x = boosted(seed=len(case), **CASES[case])
    forest = Forest.of(booster)
    assert forest is not None
    expected = booster.predict(x, pred_contrib=True)
    for threads in (1, 0):
        np.testing.assert_allclose(forest.contributions(x, threads), expected, rtol=0, atol=1e-9)
    top = forest.top(x, 3, 0)
    np.testing.assert_allclose(top.margin, booster.predict(x, raw_score=True), rtol=0, atol=1e-9)
    order = np.argsort(-np.abs(expected[:, :-1]), axis=1, kind="stable")[:, :3]
    np.testing.assert_array_equal(top.order, order)
    np.testing.assert_allclose(top.picked, np.take_along_axis(expected, order, axis=1), rtol=0, atol=1e-9)


def test_the_cases_reach_what_they_are_named_for() -> None:
    """Without these, the exactness test above could pass on boosters that never take the hard paths."""
    dumps = {case: boosted(seed=len(case), **params)[0].dump_model() for case, params in CASES.items()}

    def splits(case: str) -> list[dict[str, Any]]:
        found, stack = [], [t["tree_structure"] for t in dumps[case]["tree_info"]]
        while stack:
            node = stack.pop()
            if "split_index" in node:
                found.append(node)
                stack += [node["left_child"], node["right_child"]]
        return found

    def kinds(case: str) -> set[tuple[str, str]]:
        return {(s["decision_type"], s["missing_type"]) for s in splits(case)}

    assert ("<=", "NaN") in kinds("small trees") and "==" in {kind for kind, _ in kinds("small trees")}
    assert ("<=", "Zero") in kinds("zero as missing")
    assert {m for _, m in kinds("no missing type")} == {"None"}
    assert any(
        "||" not in str(s["threshold"]) for s in splits("one-hot categories") if s["decision_type"] == "=="
    )
    assert any(max(int(c) for c in str(s["threshold"]).split("||")) >= 32 for s in splits("deep trees")
               if s["decision_type"] == "==")  # fmt: skip
    deep = Forest.of(boosted(seed=len("deep trees"), **CASES["deep trees"])[0])
    assert deep is not None
    assert deep.path_depth.max() > PATH_FEATURES and (deep.path_table < 0).any()
    assert len(deep.loose_path) and len(deep.unit_first)
    assert np.diff(deep.tree_nodes).max() > UNIT_SPLITS


def test_trees_of_one_leaf_only_add_to_the_bias() -> None:
    frame, labels = synthetic(300, 4)
    settings = {"objective": "binary", "verbose": -1, "num_threads": 1, "min_data_in_leaf": 200}
    booster = lgb.train(settings, lgb.Dataset(frame, labels), 3)
    assert {t["num_leaves"] for t in booster.dump_model()["tree_info"]} == {1}
    forest = Forest.of(booster)
    assert forest is not None
    x = matrix(frame)
    np.testing.assert_allclose(forest.contributions(x), booster.predict(x, pred_contrib=True), atol=1e-12)


def test_boosters_it_does_not_cover_are_left_to_pred_contrib() -> None:
    frame, labels = synthetic(600, 3)
    settings = {"verbose": -1, "num_threads": 1, "num_leaves": 7}
    multiclass = lgb.train(
        {**settings, "objective": "multiclass", "num_class": 3},
        lgb.Dataset(frame, labels + (frame["uniform"] > 0)),
        5,
    )
    forest = {"objective": "binary", "boosting": "rf", "bagging_fraction": 0.5, "bagging_freq": 1}
    averaged = lgb.train({**settings, **forest}, lgb.Dataset(frame, labels), 5)
    assert Forest.of(multiclass) is None
    assert Forest.of(averaged) is None

    x = matrix(frame)
    contributions = averaged.predict(x, pred_contrib=True)
    top = top_of(contributions, 2)
    np.testing.assert_allclose(top.margin, averaged.predict(x, raw_score=True), atol=1e-9)
    np.testing.assert_array_equal(
        top.order, np.argsort(-np.abs(contributions[:, :-1]), axis=1, kind="stable")[:, :2]
    )


def reference_explain(model: ScoringModel, rows: pd.DataFrame, top: int = 3) -> tuple[np.ndarray, list[Any]]:
    """`ScoringModel.explain` as it was before the numba kernels: LightGBM's `pred_contrib`, a stable sort,
    and each reason worded on its own."""
    contrib = model.booster.predict(model.array(rows), pred_contrib=True)
    margin = contrib.sum(axis=1)
    probability = model.calibrate(expit(margin))
    values = contrib[:, :-1]
    order = np.argsort(-np.abs(values), axis=1, kind="stable")[:, :top]
    picked = np.take_along_axis(values, order, axis=1)
    without = model.calibrate(expit((margin[:, None] - picked).ravel())).reshape(picked.shape)
    points = (probability[:, None] - without) * 100.0
    reasons = []
    for i in range(len(rows)):
        row = []
        for k, j in enumerate(order[i]):
            if picked[i, k] == 0.0:
                continue
            name = model.features[j]
            value = np.asarray(rows[name], dtype=object)[i]
            template = model.texts.get(name)
            unknown = value is None or (isinstance(value, float) and math.isnan(value))
            text = (
                template.describe(value)
                if template is not None
                else f"{name.replace('_', ' ')} is {'unknown' if unknown else value}"
            )
            row.append((name, text, "raises" if picked[i, k] > 0 else "lowers", points[i, k], value))
        reasons.append(row)
    return probability, reasons


def same_value(a: Any, b: Any) -> bool:
    both_nan = isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)
    return type(a) is type(b) and (both_nan or a == b)


def assert_same_explanations(model: ScoringModel, rows: pd.DataFrame) -> None:
    probability, reasons = model.explain(rows)
    expected_probability, expected = reference_explain(model, rows)
    np.testing.assert_allclose(probability, expected_probability, rtol=0, atol=1e-12)
    assert [len(r) for r in reasons] == [len(r) for r in expected]
    for got, want in zip(
        (r for row in reasons for r in row), (r for row in expected for r in row), strict=True
    ):
        assert (got.feature, got.text, got.direction) == want[:3]
        assert got.points == pytest.approx(want[3], abs=1e-9)
        assert same_value(got.value, want[4])


@pytest.mark.parametrize("seed", [11, 12])
def test_explain_gives_the_probabilities_and_reasons_of_pred_contrib(seed: int) -> None:
    model = fit_model(seed=seed, trees=40)
    rows, _ = feature_rows(500, seed=seed + 100)
    rows.loc[::7, "seat_utilisation"] = -0.0  # a sign a grouped wording must not lose
    rows.loc[::11, "days_since_last_session"] = None
    rows.loc[::13, "tier"] = "enterprise"  # a level the model never saw
    assert_same_explanations(model, rows)


def test_one_row_at_a_time_explains_as_the_batch_does() -> None:
    model = fit_model(seed=5, trees=40)
    model.threads = 1
    rows, _ = feature_rows(40, seed=6)
    probability, reasons = model.explain(rows)
    text = frozenset({"tier"})
    for i in range(len(rows)):
        served = FeatureRows.from_frame(rows.iloc[[i]], text)
        one_probability, one_reasons = model.explain(served)
        assert one_probability[0] == pytest.approx(probability[i], abs=1e-12)
        assert [(r.feature, r.text, r.direction) for r in one_reasons[0]] == [
            (r.feature, r.text, r.direction) for r in reasons[i]
        ]


def test_a_table_without_reason_texts_gets_generic_sentences() -> None:
    model = fit_model(seed=7, trees=30)
    model.texts = {}
    rows, _ = feature_rows(200, seed=8)
    assert_same_explanations(model, rows)
    assert any(r.text.startswith("seat utilisation is ") for row in model.explain(rows)[1] for r in row)


def test_a_pickled_model_rebuilds_its_kernels_and_answers_the_same() -> None:
    model = fit_model(seed=9, trees=30)
    rows, _ = feature_rows(300, seed=10)
    before = model.contributions(rows)
    assert model.forest() is not None
    loaded = pickle.loads(pickle.dumps(model))
    assert "_forest" in loaded.__dict__  # built at load, not on the first request
    np.testing.assert_array_equal(loaded.contributions(rows), before)
    assert "_forest" not in model.__getstate__()
    assert list(FEATURES) == loaded.features
