"""The model card: what a registered version predicts, from which data, how well against the baselines and
the truth, and where it should not be trusted, in words a reviewer reads without opening the run.

Everything comes from the `TrainResult` the version was registered from (its metrics, lineage and model),
so the card is a pure function of it; `registry.tracking` logs it as the run's `model_card.md` and sets it
as the version's description (`version_description`: cut to fit the registry's column).

A risk model's sections come from `registry.card_risk`, an uplift model's from `registry.card_uplift`;
both draw on `registry.card_sections` (the sections they share) and `registry.markdown`.
"""

from __future__ import annotations

from registry.card_risk import risk_card
from registry.card_uplift import uplift_card
from training.artifact import ScoringModel
from training.causal.uplift import UpliftModel
from training.result import TrainResult

#: the card's file among the run's artifacts
MODEL_CARD = "model_card.md"
#: MLflow's `model_versions.description` is VARCHAR(5000): PostgreSQL and MySQL refuse a longer text
DESCRIPTION_LIMIT = 5000


def model_card(result: TrainResult[ScoringModel | UpliftModel], name: str, version: str) -> str:
    """The card of version `version` of `name` (markdown)."""
    model = result.model
    sections = uplift_card(result, model) if isinstance(model, UpliftModel) else risk_card(result, model)
    return "\n\n".join([f"# Model card: {name}, version {version}", *sections]) + "\n"


def version_description(card: str, run_id: str, limit: int = DESCRIPTION_LIMIT) -> str:
    """The card as a registered version's description: whole when it fits the registry's column, else its
    leading sections and where the whole card is."""
    if len(card) <= limit:
        return card
    pointer = f"\n\n*Shortened to fit the registry: the whole card is `{MODEL_CARD}` in run `{run_id}`.*\n"
    title, *sections = card.split("\n\n## ")
    kept = title
    for section in sections:
        longer = f"{kept}\n\n## {section}"
        if len(longer.rstrip()) + len(pointer) > limit:
            break
        kept = longer
    return kept.rstrip() + pointer
