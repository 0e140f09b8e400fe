"""Rows an engine brought itself (`POST /v1/score` with `features`), in the online layout and checked
against the feature catalogue, with the health score recomputed from them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from core.settings import Settings
from features.definitions import FEATURE_BY_NAME, value_problem
from features.health import INPUTS
from features.health import score as health_score
from features.rows import FeatureRows
from serving.errors import ApiError
from serving.resources import Loaded
from serving.schemas import ScoreItem


def inline_rows(items: Sequence[ScoreItem], loaded: Loaded, settings: Settings) -> FeatureRows:
    """Rows an engine brought itself, in the online layout: every known feature column, unknown ones
    refused by name, values checked against the catalogue's types and ranges, and the health score
    recomputed from them by the one health definition."""
    names = list(loaded.features.names) if loaded.features else list(FEATURE_BY_NAME)
    text = loaded.features.text if loaded.features else frozenset()
    for i, item in enumerate(items):
        unknown = sorted(set(item.features or {}) - set(names))
        if unknown:
            raise ApiError(
                422, "unknown_feature", f"accounts[{i}].features: unknown feature(s) {', '.join(unknown)}"
            )
    _check_values(items)
    columns: dict[str, object] = {"account_id": [item.account_id for item in items], "cutoff": pd.NaT}
    for name in names:
        values = [(item.features or {}).get(name) for item in items]
        if name in text:
            columns[name] = np.array([v if isinstance(v, str) else None for v in values], dtype=object)
        else:
            columns[name] = np.array([np.nan if v is None else float(v) for v in values], dtype="float64")
    rows = pd.DataFrame(columns)
    health_inputs = pa.Table.from_pandas(rows[list(INPUTS)], preserve_index=False)
    health = health_score(health_inputs, settings).to_pandas()
    for column in health.columns:
        if column.startswith("health_"):
            rows[column] = health[column].to_numpy()
    return FeatureRows.from_frame(rows, text | {"health_band"})


def _check_values(items: Sequence[ScoreItem]) -> None:
    """A 422 naming every given value the catalogue cannot hold (NaN, 1e400, a negative tenure, an
    unknown tier): the model would score it as if it were real, and the health formula would stray."""
    fields = [
        {"field": f"body.accounts[{i}].features.{name}", "message": problem}
        for i, item in enumerate(items)
        for name, value in (item.features or {}).items()
        if (problem := value_problem(FEATURE_BY_NAME[name], value)) is not None
    ]
    if fields:
        names = ", ".join(f["field"] for f in fields[:5])
        raise ApiError(422, "invalid_feature", f"invalid feature value(s): {names}", fields)
