"""Training sets: labelled rows, their features, and the out-of-time split into train, calibration and test.

From a store, the rows are the feature table's (account, cutoff) pairs (only accounts active at a cutoff
appear there), labelled by `training.labels` and joined to their features point-in-time through a Feast
feature service. From a bring-your-own table, the rows are the table's. Either way the split is by time:
the model is judged on a later window than anything it (or its tuning) has seen.

The split rules are pure functions; reading the store, DuckDB and Feast happens in `store_training_set`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import duckdb
import numpy as np
import pandas as pd

from core.errors import RetainError
from core.settings import Settings
from features.definitions import HEALTH_COLUMNS, KEYS
from features.feast_repo import (
    EVENT_TIMESTAMP,
    feature_service,
    feature_store,
    historical_features,
)
from features.run import register_store
from features.stored import feature_columns, read_features
from store.delta import Store
from training.artifact import model_matrix
from training.columns import binary_labels, category_levels, fingerprint
from training.config import TrainConfig
from training.labels import DAYS_TO_EVENT, Target, label_delay_days, label_frame

#: the out-of-time windows of a split, oldest first: a row's value in the WINDOW column
WindowName = Literal["train", "calibration", "test"]
WINDOWS: tuple[WindowName, ...] = ("train", "calibration", "test")
LABEL = "label"
WINDOW = "window"
#: the baseline's score, carried along for evaluation (never a model input unless asked for)
HEALTH = "health_score"


@dataclass(frozen=True)
class TrainingSet:
    """Labelled rows with their window, the model's feature columns and their categorical levels."""

    rows: pd.DataFrame
    features: list[str]
    #: categorical feature -> levels seen in the train window (sorted); other levels become missing
    categories: dict[str, list[str]]
    id_col: str
    time_col: str | None
    lineage: dict[str, Any]

    def part(self, window: WindowName) -> pd.DataFrame:
        return self.rows[self.rows[WINDOW] == window]

    def matrix(self, window: WindowName) -> pd.DataFrame:
        return model_matrix(self.part(window), self.features, self.categories)

    def labels(self, window: WindowName) -> np.ndarray:
        return self.part(window)[LABEL].to_numpy(dtype=np.int8)

    def days_to_event(self, window: WindowName) -> np.ndarray:
        """Each row's days from its cutoff to its churn (NaN without one); a store's churn rows only."""
        if DAYS_TO_EVENT not in self.rows:
            raise RetainError("the hazard learner needs a store's churn labels; this set has no event times")
        return self.part(window)[DAYS_TO_EVENT].to_numpy(dtype="float64")


# -- the split: pure -----------------------------------------------------------------------------------


def split_by_cutoff(
    cutoffs: Sequence[pd.Timestamp],
    test_cutoffs: int,
    calibration_cutoffs: int,
    embargo: pd.Timedelta | None = None,
) -> dict[pd.Timestamp, WindowName]:
    """Assign matured cutoffs to windows: the latest `test_cutoffs` are the test, the `calibration_cutoffs`
    before them the calibration window, all earlier ones train.

    With an `embargo` (the label horizon), a window only takes cutoffs whose labels were decided by the
    next window's first cutoff, so no training label looks into the calibration or test period; the
    cutoffs in between are left out.
    """
    ordered = sorted(set(cutoffs))
    gap = embargo if embargo is not None else pd.Timedelta(0)
    test = ordered[-test_cutoffs:]
    rest = [c for c in ordered[: len(ordered) - len(test)] if test and c + gap <= test[0]]
    calibration = rest[len(rest) - calibration_cutoffs :] if len(rest) >= calibration_cutoffs else []
    train = [c for c in rest[: len(rest) - len(calibration)] if calibration and c + gap <= calibration[0]]
    if not train:
        listed = ", ".join(str(c.date()) for c in ordered) or "none"
        raise RetainError(
            f"too few matured cutoffs ({len(ordered)}: {listed}) for {test_cutoffs} test, "
            f"{calibration_cutoffs} calibration and at least 1 train cutoff"
            f"{' with the embargo gaps between them' if embargo is not None else ''}; ingest a longer "
            "history, build more cutoffs or shorten the horizon"
        )
    windows: dict[pd.Timestamp, WindowName] = {c: "train" for c in train}
    windows.update({c: "calibration" for c in calibration})
    windows.update({c: "test" for c in test})
    return windows


def split_by_time_share(times: pd.Series, test_fraction: float, calibration_fraction: float) -> pd.Series:
    """Windows for rows with a time column: the latest whole time values holding at least `test_fraction` of
    the rows are the test, the ones before holding `calibration_fraction` the calibration window."""
    counts = times.value_counts().sort_index(ascending=False)
    share = counts.cumsum() / counts.sum()
    windows = pd.Series("train", index=counts.index, dtype=object)
    test_end = int(np.searchsorted(share.to_numpy(), test_fraction)) + 1
    calibration_end = int(np.searchsorted(share.to_numpy(), test_fraction + calibration_fraction)) + 1
    windows.iloc[:test_end] = "test"
    windows.iloc[test_end : max(calibration_end, test_end + 1)] = "calibration"
    return times.map(windows)


def split_by_id(ids: pd.Series, test_fraction: float, calibration_fraction: float, seed: int) -> pd.Series:
    """Windows for rows without a time: by a seeded hash of the id, so all rows of one id share a window."""
    salt = str(seed).encode()
    unit = ids.astype(str).map(
        lambda v: int.from_bytes(hashlib.sha256(salt + v.encode()).digest()[:8], "big") / 2.0**64
    )
    return pd.Series(
        np.where(
            unit < test_fraction,
            "test",
            np.where(unit < test_fraction + calibration_fraction, "calibration", "train"),
        ),
        index=ids.index,
        dtype=object,
    )


# -- features and checks: pure -------------------------------------------------------------------------


def choose_features(
    columns: Sequence[str], config: TrainConfig, reserved: Sequence[str], baseline: Sequence[str] = ()
) -> list[str]:
    """The model's inputs: every column but the reserved ones (keys, label, time), the exclusions and,
    unless `use_health_features`, the `baseline` columns (a store's health score and its components: the
    score to beat, and a fixed function of the other inputs, so they add nothing the model cannot learn)."""
    unknown = sorted(set(config.exclude_features) - set(columns))
    if unknown:
        raise RetainError(f"exclude_features: no column(s) {', '.join(unknown)}")
    dropped = set(reserved) | set(config.exclude_features)
    if not config.use_health_features:
        dropped |= set(baseline)
    features = [c for c in columns if c not in dropped]
    if not features:
        raise RetainError("no feature columns left after the exclusions")
    return features


def check_windows(
    rows: pd.DataFrame, config: TrainConfig, windows: Sequence[WindowName] = WINDOWS
) -> dict[str, dict[str, int]]:
    """Rows and positives per window; refuses a split too small or one-sided to train or judge on."""
    summary: dict[str, dict[str, int]] = {}
    for window in windows:
        labels = rows.loc[rows[WINDOW] == window, LABEL]
        summary[window] = {"rows": len(labels), "positives": int(labels.sum())}
    if summary["train"]["rows"] < config.min_train_rows:
        raise RetainError(
            f"the train window has {summary['train']['rows']} rows, fewer than min_train_rows "
            f"({config.min_train_rows})"
        )
    for name, counts in summary.items():
        negatives = counts["rows"] - counts["positives"]
        if min(counts["positives"], negatives) < config.min_window_positives:
            raise RetainError(
                f"the {name} window has {counts['positives']} positive and {negatives} negative rows; each "
                f"window needs at least {config.min_window_positives} of both (min_window_positives)"
            )
    return summary


# -- a store: the I/O edge -----------------------------------------------------------------------------


def _service_name(fs: Any, target: Target, features: list[str]) -> str:
    """`<target>_v<N>`: the existing service with exactly these features, else the next version."""
    versions: dict[int, list[str]] = {}
    for service in fs.list_feature_services():
        prefix, _, number = service.name.rpartition("_v")
        if prefix == target and number.isdigit():
            names = [f.name for p in service.feature_view_projections for f in p.features]
            versions[int(number)] = names
    for number, names in sorted(versions.items()):
        if names == features:
            return f"{target}_v{number}"
    return f"{target}_v{max(versions, default=0) + 1}"


@dataclass(frozen=True)
class _Labelled:
    """The store's rows labelled and assigned to windows (rows outside every window dropped)."""

    rows: pd.DataFrame
    windows: dict[pd.Timestamp, WindowName]
    matured: pd.Series
    already_churned: int


def _label_store(store: Store, target: Target, config: TrainConfig) -> _Labelled:
    keys = read_features(store, list(KEYS)).to_pandas()
    with duckdb.connect(config={"threads": config.threads}) as con:
        register_store(con, store)
        labelled = label_frame(con, keys, target, config.horizon)
    matured = labelled.groupby("cutoff")["matured"].all()
    embargo = pd.Timedelta(days=label_delay_days(target, config.horizon)) if config.embargo else None
    windows = split_by_cutoff(
        list(matured.index[matured]), config.test_cutoffs, config.calibration_cutoffs, embargo
    )
    labelled[WINDOW] = labelled["cutoff"].map(windows)
    used = labelled[labelled[WINDOW].notna()].drop(columns="matured").reset_index(drop=True)
    return _Labelled(used, windows, matured, len(keys) - len(labelled))


#: what rides along with the key and the instant through Feast: never a feature
RIDING = (LABEL, DAYS_TO_EVENT, WINDOW)


def _entities(rows: pd.DataFrame) -> pd.DataFrame:
    """Feast's entity frame: the key and the instant (a cutoff), with the `RIDING` columns."""
    return pd.DataFrame(
        {"account_id": rows["account_id"], EVENT_TIMESTAMP: rows["cutoff"], **{c: rows[c] for c in RIDING}}
    )


def store_training_set(store: Store, settings: Settings, target: Target, config: TrainConfig) -> TrainingSet:
    """Label every (account, cutoff) of the store's feature table, split by cutoff, and fetch the rows'
    features point-in-time from Feast through a feature service registered for this feature set."""
    labelled = _label_store(store, target, config)
    columns = feature_columns(store)
    features = choose_features(columns, config, KEYS, HEALTH_COLUMNS)
    fs = feature_store(store, settings)
    service = _service_name(fs, target, features)
    feature_service(fs, service, features)
    entities = _entities(labelled.rows)
    parts = [historical_features(fs, entities, service)]
    extra = [c for c in (HEALTH, *config.slices) if c in columns and c not in features]
    if extra:
        parts.append(historical_features(fs, entities[["account_id", EVENT_TIMESTAMP]], extra)[extra])
    rows = pd.concat(parts, axis=1).rename(columns={EVENT_TIMESTAMP: "cutoff"})

    counts = check_windows(rows, config)
    categorical = [f for f in features if rows[f].dtype == object]
    categories = category_levels(rows[rows[WINDOW] == "train"], categorical)
    windows, matured = labelled.windows, labelled.matured
    lineage = {
        "source": "store",
        "store": store.location,
        "table_versions": store.versions(),
        "feature_service": service,
        "target": target,
        "horizon_days": config.horizon,
        "cutoffs": {w: sorted(str(c.date()) for c, name in windows.items() if name == w) for w in WINDOWS},
        "cutoffs_unused": sorted(str(c.date()) for c in matured.index if c not in windows),
        "rows_dropped_already_churned": labelled.already_churned,
        "windows": counts,
        "train_fingerprint": fingerprint(rows[rows[WINDOW] == "train"][[*KEYS, LABEL, *features]]),
    }
    return TrainingSet(rows, features, categories, "account_id", "cutoff", lineage)


def evaluation_window(
    store: Store, settings: Settings, kind: str, config: TrainConfig | None = None
) -> tuple[pd.DataFrame, np.ndarray]:
    """The store's latest matured test window for a churn or expansion model: every feature column of the
    feature table at those cutoffs (so any model version finds its inputs), and the labels. Promotion
    judges champion and challenger on it."""
    if kind not in ("churn", "expansion"):
        raise RetainError(
            f"a {kind!r} model has no store window to be judged on; only churn and expansion do"
        )
    target: Target = "churn" if kind == "churn" else "expansion"
    resolved = (config or TrainConfig()).resolved(settings)
    labelled = _label_store(store, target, resolved)
    test = labelled.rows[labelled.rows[WINDOW] == "test"].reset_index(drop=True)
    features = [c for c in feature_columns(store) if c not in KEYS]
    rows = historical_features(feature_store(store, settings), _entities(test), features)
    labels = rows[LABEL].to_numpy(dtype=np.int8)
    return rows.drop(columns=list(RIDING)).rename(columns={EVENT_TIMESTAMP: "cutoff"}), labels


# -- a bring-your-own table: pure on the frame ---------------------------------------------------------


def _feature_column(column: pd.Series, max_levels: int) -> tuple[pd.Series | None, str | None]:
    """A table column as a model input (float64, or object strings for categories), or why it is dropped."""
    if pd.api.types.is_bool_dtype(column):
        return column.astype("float64"), None
    if pd.api.types.is_numeric_dtype(column):
        return column.astype("float64"), None
    if pd.api.types.is_datetime64_any_dtype(column):
        return None, "a date/time column (derive numbers from it, e.g. days since)"
    text = column.map(lambda v: None if pd.isna(v) else str(v)).astype(object)
    if text.nunique() > max_levels:
        return None, f"text with more than {max_levels} distinct values (max_category_levels)"
    return text, None


def table_training_set(
    frame: pd.DataFrame, label: str, id_col: str, time_col: str | None, config: TrainConfig
) -> TrainingSet:
    """A prepared snapshot table (one row per id, or per id and time) as a training set: labels parsed,
    columns typed. Below `cv_max_rows` every row is in the train window (cross-validation judges the
    model); above, split by time when there is a time column, else by id."""
    for option, name in (("--label", label), ("--id", id_col), ("--time", time_col)):
        if name is not None and name not in frame.columns:
            raise RetainError(
                f"{option}: the table has no column {name!r} (columns: {', '.join(frame.columns)})"
            )
    labels = binary_labels(frame[label])
    kept = frame[labels.notna()].reset_index(drop=True)
    reserved = [c for c in (id_col, label, time_col) if c is not None]
    candidates = choose_features(list(kept.columns), config, reserved)
    columns: dict[str, Any] = {
        id_col: kept[id_col].astype(str),
        LABEL: labels[labels.notna()].to_numpy(dtype=np.int8),
    }
    if time_col is not None:
        columns[time_col] = _times(kept[time_col], time_col)
    typed, dropped = _typed_features(kept, candidates, config.max_category_levels)
    if not typed:
        raise RetainError(f"no usable feature columns ({'; '.join(f'{k}: {v}' for k, v in dropped.items())})")
    features = list(typed)
    rows = pd.DataFrame(columns | typed)
    cross_validated = len(rows) < config.cv_max_rows
    rows[WINDOW] = "train" if cross_validated else _table_windows(rows, id_col, time_col, config)
    counts = check_windows(rows, config, ("train",) if cross_validated else WINDOWS)
    categorical = [f for f in features if rows[f].dtype == object]
    categories = category_levels(rows[rows[WINDOW] == "train"], categorical)
    lineage = {
        "source": "table",
        "label": label,
        "id": id_col,
        "time": time_col,
        "rows_without_label": int(labels.isna().sum()),
        "columns_dropped": dropped,
        "split": _split_name(cross_validated, time_col, config),
        "folds": config.cv_folds if cross_validated else None,
        "windows": counts,
        "train_fingerprint": fingerprint(rows[rows[WINDOW] == "train"]),
    }
    return TrainingSet(rows, features, categories, id_col, time_col, lineage)


def _table_windows(rows: pd.DataFrame, id_col: str, time_col: str | None, config: TrainConfig) -> pd.Series:
    """A large table's windows: by its time column when it has one, else by a seeded hash of the id."""
    if time_col is not None:
        return split_by_time_share(rows[time_col], config.test_fraction, config.calibration_fraction)
    return split_by_id(rows[id_col], config.test_fraction, config.calibration_fraction, config.random_seed)


def _split_name(cross_validated: bool, time_col: str | None, config: TrainConfig) -> str:
    if cross_validated:
        return f"not split: {config.cv_folds}-fold cross-validation, stratified, an id's rows in one fold"
    return "by time" if time_col is not None else "by id (seeded hash)"


def _times(times: pd.Series, time_col: str) -> pd.Series:
    """A table's time column as numbers or UTC datetimes; a missing or unreadable value is an error."""
    parsed = (
        times if pd.api.types.is_numeric_dtype(times) else pd.to_datetime(times, utc=True, errors="coerce")
    )
    if parsed.isna().any():
        raise RetainError(
            f"--time: column {time_col!r} has {int(parsed.isna().sum())} missing or unreadable values"
        )
    return parsed


def _typed_features(
    kept: pd.DataFrame, candidates: list[str], max_levels: int
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The candidate columns usable as model inputs, typed (`_feature_column`), and why each other one was
    dropped."""
    typed: dict[str, np.ndarray] = {}
    dropped: dict[str, str] = {}
    for name in candidates:
        column, reason = _feature_column(kept[name], max_levels)
        if column is None:
            dropped[name] = str(reason)
        else:
            typed[name] = column.to_numpy()
    return typed, dropped


def read_table(path: Path) -> pd.DataFrame:
    """A CSV or Parquet file as a frame."""
    if not path.exists():
        raise RetainError(f"--table: {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".parquet" or path.is_dir():
        return pd.read_parquet(path)
    if suffix in (".csv", ".txt", ".gz"):
        return pd.read_csv(path)
    raise RetainError(f"--table: {path} is neither CSV nor Parquet (by its extension)")
