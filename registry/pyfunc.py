"""The MLflow pyfunc model: a thin wrapper whose one artifact is the pickled ScoringModel.

Encoders, booster, calibrator, feature list and reason texts all live in that one pickle (an uplift model's
boosters per action likewise), so `mlflow.pyfunc.load_model("models:/churn@champion")`, batch scoring and
the API run the same object.
`score_frame` is the output layout every path shares: `probability`, and `reasons` as a JSON list of
{feature, text, direction, points, value} per row. The code and requirements the model carries to load
anywhere are in `registry.environment`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.pyfunc import PythonModel

from registry import unpickling
from training.artifact import Reason, ScoringModel
from training.causal.uplift import UpliftModel

#: the model's folder name in MLflow, and the name of its one artifact inside it
MODEL_DIR = "model"
MODEL_ARTIFACT = "scoring_model.pkl"


def _plain(value: Any) -> Any:
    """JSON fallback for numpy scalars (`.item()`) and anything else (`str`)."""
    return value.item() if hasattr(value, "item") else str(value)


#: one encoder for every row, where `json.dumps` would build an equal one per call
_ENCODER = json.JSONEncoder(default=_plain)


def reasons_json(reasons: list[list[Reason]]) -> list[str]:
    encode = _ENCODER.encode
    return [encode([r.as_dict() for r in row]) for row in reasons]


def score_frame(model: ScoringModel, rows: pd.DataFrame, top: int = 3) -> pd.DataFrame:
    """Calibrated probability and the `top` reasons per row, from one exact TreeSHAP pass."""
    probability, reasons = model.explain(rows, top=top)
    return pd.DataFrame({"probability": probability, "reasons": reasons_json(reasons)}, index=rows.index)


def output_frame(model: ScoringModel | UpliftModel, rows: pd.DataFrame) -> pd.DataFrame:
    """What the pyfunc model answers: probability and reasons, or an uplift model's effect per action."""
    if isinstance(model, UpliftModel):
        return model.frame(rows)
    return score_frame(model, rows)


class RetainModel(PythonModel):
    """Stateless until `load_context` unpickles the ScoringModel (or UpliftModel) from its artifacts."""

    model: ScoringModel | UpliftModel

    def load_context(self, context: Any) -> None:
        self.model = unpickling.loads(Path(context.artifacts[MODEL_ARTIFACT]).read_bytes())

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> Any:
        return output_frame(self.model, model_input)
