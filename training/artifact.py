"""The scoring model: everything needed to turn feature rows into calibrated probabilities and reasons.

One object travels from training to the MLflow artifact, batch scoring and the API, so the encoders,
booster, calibrator, feature list and reason texts can never drift apart.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.definitions import CLOCK_FEATURES, FEATURE_BY_NAME, Feature
from features.rows import FeatureRows
from training.logodds import expit
from training.treeshap import Forest, Top, top_of

Kind = Literal["churn", "expansion", "table"]


@dataclass(frozen=True, slots=True)
class Reason:
    """One driver of a score: a sentence for a CSM, and how many probability points it moves the score.
    Slotted: a batch builds hundreds of thousands, and slots build faster."""

    feature: str
    text: str
    direction: Literal["raises", "lowers"]
    points: float
    value: Any

    def as_dict(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "text": self.text,
            "direction": self.direction,
            "points": round(self.points, 2),
            "value": None if _missing(self.value) else self.value,
        }


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a batch builds its reasons: its passes over the
    hundreds of thousands of new, acyclic objects cost as much as building them."""
    running = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if running:
            gc.enable()


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def model_matrix(rows: pd.DataFrame, features: list[str], categories: dict[str, list[str]]) -> pd.DataFrame:
    """The input frame a booster sees: `features` in order, categories with the given levels (others become
    missing), everything else float64. Training builds its matrices here too, so train and serve agree."""
    missing = [f for f in features if f not in rows.columns]
    if missing:
        raise KeyError(f"feature rows lack column(s): {', '.join(missing)}")
    out: dict[str, Any] = {}
    for name in features:
        column = rows[name]
        if name in categories:
            out[name] = pd.Categorical(column.astype("object"), categories=categories[name])
        else:
            out[name] = pd.to_numeric(column, errors="coerce").astype("float64")
    return pd.DataFrame(out, index=rows.index)


#: what a model scores: a DataFrame (training, batch) or the API's array-backed rows
Rows = pd.DataFrame | FeatureRows


def numbers(rows: Rows, columns: list[str]) -> np.ndarray:
    """`columns` as one float array (NaN for missing): a single selection when they are all numeric,
    else column by column with anything unparseable as NaN, as `model_matrix` reads them."""
    if isinstance(rows, FeatureRows):
        return rows.numbers(columns)
    try:
        return rows[columns].to_numpy(dtype="float64", na_value=math.nan)
    except (TypeError, ValueError):
        return np.column_stack(
            [
                pd.to_numeric(rows[c], errors="coerce").to_numpy(dtype="float64", na_value=math.nan)
                for c in columns
            ]
        ).reshape(len(rows), len(columns))


def encode(
    rows: Rows,
    features: list[str],
    categories: dict[str, list[str]],
    cache: dict[str, dict[str, float]] | None = None,
) -> np.ndarray:
    """`model_matrix`'s input as the float array LightGBM builds from it (a category becomes its level's
    index, an unseen level NaN). Building it directly skips pandas' per-column conversions, which cost
    ~10 ms for a single served row against ~1 ms for the prediction itself. `cache` keeps the level
    lookups between calls."""
    have = set(rows.columns)
    missing = [f for f in features if f not in have]
    if missing:
        raise KeyError(f"feature rows lack column(s): {', '.join(missing)}")
    cache = {} if cache is None else cache
    out = np.empty((len(rows), len(features)), dtype="float64")
    positions = [j for j, name in enumerate(features) if name not in categories]
    out[:, positions] = numbers(rows, [features[j] for j in positions])
    for j, name in enumerate(features):
        if name in categories:
            if name not in cache:
                cache[name] = {level: float(i) for i, level in enumerate(categories[name])}
            codes = cache[name]
            out[:, j] = [codes.get(v, math.nan) if isinstance(v, str) else math.nan for v in rows[name]]
    return out


class Calibrator(Protocol):
    """Maps raw probabilities to calibrated ones: sklearn's IsotonicRegression, or Platt scaling."""

    def predict(self, raw_probability: np.ndarray) -> np.ndarray: ...


@dataclass
class ScoringModel:
    """A fitted LightGBM booster with its encoders, calibrator and the texts its reasons are written in."""

    name: str
    kind: Kind
    booster: lgb.Booster
    features: list[str]
    #: categorical column -> its levels at training time; unseen levels become missing
    categories: dict[str, list[str]]
    calibrator: Calibrator | None
    horizon_days: int
    #: reason templates by feature; columns of a bring-your-own table get a generic sentence
    texts: dict[str, Feature] = field(default_factory=dict)
    #: training range of each numeric feature, for the serving fallback on out-of-range inputs
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    threads: int = 0

    @classmethod
    def texts_for(cls, features: list[str]) -> dict[str, Feature]:
        return {f: FEATURE_BY_NAME[f] for f in features if f in FEATURE_BY_NAME}

    def matrix(self, rows: pd.DataFrame) -> pd.DataFrame:
        """The model's input frame: its columns in order, categories with the training levels."""
        return model_matrix(rows, self.features, self.categories)

    def array(self, rows: Rows) -> np.ndarray:
        """The same input as `matrix`, as the float array LightGBM builds from it (`encode`)."""
        return encode(rows, self.features, self.categories, self.__dict__.setdefault("_code_cache", {}))

    def margin(self, rows: Rows) -> np.ndarray:
        return np.asarray(self.booster.predict(self.array(rows), raw_score=True, num_threads=self.threads))

    def calibrate(self, raw_probability: np.ndarray) -> np.ndarray:
        if self.calibrator is None:
            return raw_probability
        calibrated: np.ndarray = self.calibrator.predict(raw_probability)
        return calibrated

    def predict(self, rows: Rows) -> np.ndarray:
        """Calibrated probabilities of the event within the horizon."""
        return self.calibrate(expit(self.margin(rows)))

    def forest(self) -> Forest | None:
        """The booster as the TreeSHAP kernels read it, built once per booster and warmed; None for a
        booster they do not cover (then LightGBM's `pred_contrib` computes the same values)."""
        built = self.__dict__.get("_forest")
        if built is None or built[0] is not self.booster:
            forest = Forest.of(self.booster)
            if forest is not None:
                forest.warm()
            built = self.__dict__["_forest"] = (self.booster, forest)
        return built[1]

    def __getstate__(self) -> dict[str, Any]:
        """The fields only: the kernels' arrays are rebuilt from the booster at load."""
        return {k: v for k, v in self.__dict__.items() if k != "_forest"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.forest()  # at load, so the first request does not pay for it

    def contributions(self, rows: Rows) -> np.ndarray:
        """Exact TreeSHAP values in margin space, (n, features + 1); the last column is the base value.
        The same values as LightGBM's `pred_contrib` (`training.treeshap`), several times faster."""
        x = self.array(rows)
        forest = self.forest()
        if forest is None:
            return np.asarray(self.booster.predict(x, pred_contrib=True, num_threads=self.threads))
        return forest.contributions(x, self.threads)

    def explain(self, rows: Rows, top: int = 3) -> tuple[np.ndarray, list[list[Reason]]]:
        """Probabilities and the `top` reasons per row, from one TreeSHAP pass.

        A reason's size is the change in calibrated probability if that feature's contribution were
        removed, in percentage points: the margin-space SHAP value made readable. The margin is the sum of
        the contributions, so no second pass through the trees is needed.
        """
        x = self.array(rows)
        forest = self.forest()
        if forest is None:
            contributions = self.booster.predict(x, pred_contrib=True, num_threads=self.threads)
            best = top_of(np.asarray(contributions), top)
        else:
            best = forest.top(x, top, self.threads)
        margins = np.column_stack([best.margin, best.margin[:, None] - best.picked])
        calibrated = self.calibrate(expit(margins.ravel())).reshape(margins.shape)  # one call for both
        probability = calibrated[:, 0]
        points = (probability[:, None] - calibrated[:, 1:]) * 100.0
        with _collector_paused():
            return probability, self._reasons(rows, best, points)

    def _reasons(self, rows: Rows, best: Top, points: np.ndarray) -> list[list[Reason]]:
        """The picked contributions as reasons, in order; a zero contribution is no reason."""
        n, k = best.order.shape
        at = np.flatnonzero(best.picked.ravel() != 0.0)
        columns = best.order.ravel()[at]
        texts, values = self._wording(rows, columns, at // k)
        made = list(
            map(
                Reason,
                [self.features[j] for j in columns.tolist()],
                texts,
                np.where(best.picked.ravel()[at] > 0, "raises", "lowers").tolist(),
                points.ravel()[at].tolist(),
                values,
            )
        )
        ends = np.cumsum(np.bincount(at // k, minlength=n)).tolist()
        return [made[start:end] for start, end in zip([0, *ends[:-1]], ends, strict=True)]

    def _wording(self, rows: Rows, columns: np.ndarray, row: np.ndarray) -> tuple[list[str], list[Any]]:
        """Sentence and shown value of each (feature `columns[i]`, row `row[i]`), worded feature by
        feature: one column read and one sentence per distinct value, not one per reason."""
        texts: list[str] = [""] * len(columns)
        values: list[Any] = [None] * len(columns)
        if not len(columns):
            return texts, values
        by_feature = np.argsort(columns, kind="stable")
        ordered = columns[by_feature]
        starts = [0, *(np.flatnonzero(np.diff(ordered)) + 1).tolist()]
        for start, end in zip(starts, [*starts[1:], len(columns)], strict=True):
            group = by_feature[start:end]
            name = self.features[int(ordered[start])]
            sentences, shown = self._worded(name, rows[name], row[group])
            for i, sentence, value in zip(group.tolist(), sentences, shown.tolist(), strict=True):
                texts[i], values[i] = sentence, value
        return texts, values

    def _worded(self, name: str, column: Any, rows: np.ndarray) -> tuple[list[str], np.ndarray]:
        """The sentence and the value shown for feature `name` at `rows` of its column, the value as
        `np.asarray(column, dtype=object)` gives it. A numeric column's sentences are written once per
        distinct value (told apart bit for bit, so -0.0 keeps its sign)."""
        array = column if isinstance(column, np.ndarray) else None
        if isinstance(column, pd.Series) and isinstance(column.dtype, np.dtype):
            array = column.to_numpy()
        if array is None or array.dtype.kind not in "biuf":
            values = np.asarray(column, dtype=object)[rows]
            return [self._sentence(name, v) for v in values.tolist()], values
        picked = array[rows]
        values = picked.astype(object)
        keys = picked.astype("float64").view("int64") if picked.dtype.kind == "f" else picked.astype("int64")
        written: dict[int, str] = {}
        sentences = []
        for key, value in zip(keys.tolist(), values.tolist(), strict=True):
            if key not in written:
                written[key] = self._sentence(name, value)
            sentences.append(written[key])
        return sentences, values

    def _sentence(self, name: str, value: Any) -> str:
        template = self.texts.get(name)
        if template is None:
            return f"{name.replace('_', ' ')} is {'unknown' if _missing(value) else value}"
        return template.describe(value)

    def out_of_range(self, rows: Rows, tolerance: float = 0.0) -> list[list[str]]:
        """Per row, the numeric features outside the range seen in training, widened on each side by
        `tolerance` times its span (the serving fallback: trees extrapolate flat, so a value far outside
        what the model saw says more about a broken input than about the account). Clock features such
        as tenure outgrow training by design and are not checked."""
        names = [name for name in self.ranges if name not in CLOCK_FEATURES]
        if not names:
            return [[] for _ in range(len(rows))]
        low, high = np.array([self.ranges[n] for n in names], dtype="float64").T
        margin = tolerance * (high - low)
        with np.errstate(invalid="ignore"):
            values = numbers(rows, names)
            outside = (values < low - margin) | (values > high + margin)
        return [[names[j] for j in np.flatnonzero(row)] for row in outside]
