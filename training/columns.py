"""Pure helpers over a training frame's columns, shared by the risk models, uplift training and the causal
report. They live apart from `training.dataset` so that the causal steps need not import Feast with it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pandas as pd

from core.errors import RetainError
from features.definitions import KEYS


def category_levels(train: pd.DataFrame, categorical: Sequence[str]) -> dict[str, list[str]]:
    """Levels of each categorical column as seen in the train window, sorted (fixed for serving)."""
    return {
        name: sorted({str(v) for v in train[name].dropna().unique()}) for name in categorical if name in train
    }


def design_columns(rows: pd.DataFrame) -> tuple[list[str], dict[str, list[str]]]:
    """An uplift design's covariates (every column but the keys) and the levels of its text ones: what
    uplift training, the holdout's baseline and the causal report over the store all adjust for."""
    covariates = [c for c in rows.columns if c not in KEYS]
    return covariates, category_levels(rows, [c for c in covariates if rows[c].dtype == object])


def fingerprint(frame: pd.DataFrame) -> str:
    """A hash of a frame's values and column names: the lineage's proof of which data trained a model."""
    digest = hashlib.sha256(",".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


_TRUE = {"1", "1.0", "true", "yes", "y", "t"}
_FALSE = {"0", "0.0", "false", "no", "n", "f"}


def binary_labels(column: pd.Series) -> pd.Series:
    """0/1 from 0/1, true/false or yes/no (any case); missing stays missing; anything else is an error."""
    text = column.map(lambda v: None if pd.isna(v) else str(v).strip().lower())
    bad = sorted(set(text.dropna()) - _TRUE - _FALSE)
    if bad:
        shown = ", ".join(repr(b) for b in bad[:5])
        raise RetainError(
            f"label column {column.name!r} is not binary: found {shown}{' ...' if len(bad) > 5 else ''}; "
            "expected 0/1, true/false or yes/no"
        )
    return text.map(lambda v: None if v is None else int(v in _TRUE)).astype("Int8")
