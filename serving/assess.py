"""From feature rows to explained risk: the champions' calibrated scores, or the health formula, saying why.

Pure over its inputs (rows, models, settings, the serving clock), so one code path answers the single
account endpoint, the batch endpoint and rows an engine brings itself. The rules answer whenever the
model cannot be trusted for a row: an account no longer active, no champion, no feature row, a stale one, a
value far outside training, or a model that fails; the answer names the reason and never becomes a 500.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import cast

from core.settings import Settings
from features.definitions import FEATURE_BY_NAME, HEALTH_COLUMNS
from features.rows import FeatureRows
from registry.models import VersionInfo
from serving.schemas import Fallback, FallbackCode, Freshness, Health, ModelRef, RiskBand, RiskReason
from training.artifact import ScoringModel

log = logging.getLogger("retain.serving")

CHURN, EXPANSION = "churn", "expansion"
COMPONENTS = ("usage", "engagement", "satisfaction", "payment")
#: a component below this reads as a reason in a rules answer
WEAK_COMPONENT = 60.0
RULES_RISK: dict[str, RiskBand] = {
    "healthy": "low",
    "neutral": "medium",
    "at_risk": "high",
    "critical": "critical",
}
#: a numeric input further than this share of its training span outside the training range falls back
RANGE_TOLERANCE = 0.5
DAY_SECONDS = 86_400.0
#: the fallback code of an account that has left (`inactive`): scored by the rules, offered no action
INACTIVE_FALLBACK: FallbackCode = "inactive_account"
#: one value of a feature row: a number, a category, the row's cutoff, or missing
FeatureValue = float | str | datetime | None
#: one account's feature row as `FeatureRows.records` gives it: `account_id`, `cutoff` and every feature
FeatureRow = dict[str, FeatureValue]


@dataclass(frozen=True)
class Champion:
    """A loaded model with the registry version it came from."""

    model: ScoringModel
    info: VersionInfo

    @property
    def ref(self) -> ModelRef:
        return ModelRef(name=self.info.name, version=self.info.version)

    @property
    def label(self) -> str:
        return self.ref.label


@dataclass
class Assessment:
    """One account's answer before it is dressed as a response (next actions and changes come later)."""

    account_id: str
    source: str
    fallback: Fallback | None
    churn_probability: float | None
    expansion_probability: float | None
    risk_band: RiskBand | None
    health: Health
    reasons: list[RiskReason]
    freshness: Freshness
    inputs_hash: str
    notes: list[str] = field(default_factory=list)
    #: the feature row itself (eligibility of next actions reads it)
    row: FeatureRow = field(default_factory=dict)


def risk_band(probability: float, settings: Settings) -> RiskBand:
    bands = settings.serve.risk_bands
    if probability >= bands.critical:
        return "critical"
    if probability >= bands.high:
        return "high"
    if probability >= bands.medium:
        return "medium"
    return "low"


def inputs_hash(row: FeatureRow) -> str:
    """A short fingerprint of the inputs an answer used, for the decision log."""
    text = json.dumps(row, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def health_of(row: FeatureRow, settings: Settings) -> Health:
    w = settings.health_weights
    return Health(
        score=row.get("health_score"),
        band=row.get("health_band"),
        components={c: row.get(f"health_{c}") for c in COMPONENTS},
        weights={
            "usage": w.usage,
            "engagement": w.engagement,
            "satisfaction": w.satisfaction,
            "payment": w.payment,
        },
    )


def rules_reasons(health: Health, top: int) -> list[RiskReason]:
    """The weakest health components, as sentences: what the rules score rests on."""
    weak = sorted(
        (value, name)
        for name, value in health.components.items()
        if value is not None and value < WEAK_COMPONENT
    )
    return [
        RiskReason(
            feature=f"health_{name}",
            text=FEATURE_BY_NAME[f"health_{name}"].describe(value),
            direction="raises",
            points=None,
            value=value,
        )
        for value, name in weak[:top]
    ]


def freshness(cutoff: datetime | None, as_of: datetime, settings: Settings) -> Freshness:
    limit = settings.serve.freshness_days
    if cutoff is None:
        return Freshness(cutoff=None, age_days=None, limit_days=limit, fresh=False)
    age = (as_of - cutoff).total_seconds() / DAY_SECONDS
    return Freshness(cutoff=cutoff, age_days=round(age, 2), limit_days=limit, fresh=age <= limit)


def inactive(cutoff: datetime | None, published: datetime | None) -> bool:
    """A feature build keeps only the accounts active at its cutoff, so an account whose latest row predates
    the newest published cutoff had cancelled or lapsed by then."""
    return cutoff is not None and published is not None and cutoff < published


def _cutoff(row: FeatureRow) -> datetime | None:
    """When the row's features were computed (None: no row in the store)."""
    return cast(datetime | None, row.get("cutoff"))


def _row_fallback(
    fresh: Freshness, flagged: list[str], no_champion: str | None, published: datetime | None
) -> Fallback | None:
    if inactive(fresh.cutoff, published):
        return Fallback(
            code=INACTIVE_FALLBACK,
            message=f"its contract was cancelled or lapsed: it has no row at the newest feature build "
            f"({published:%Y-%m-%d}), only at {fresh.cutoff:%Y-%m-%d}",
        )
    if no_champion is not None:
        return Fallback(code="no_champion", message=no_champion)
    if not fresh.fresh and fresh.cutoff is None:
        return Fallback(code="no_feature_row", message="no feature row for this account in the online store")
    if not fresh.fresh:
        return Fallback(
            code="stale_features",
            message=f"features computed at {fresh.cutoff:%Y-%m-%d} are {fresh.age_days:.0f} days "
            f"old (limit {fresh.limit_days})",
        )
    if flagged:
        return Fallback(
            code="out_of_range", message=f"outside the range the model was trained on: {', '.join(flagged)}"
        )
    return None


def _no_champion(churn: Champion | None, unloaded: str | None) -> str | None:
    """Why the rules answer for want of a churn model, or None when one is loaded."""
    if churn is not None:
        return None
    return (
        f"no churn champion is loaded: {unloaded}" if unloaded else "no churn model is registered as champion"
    )


#: columns of an inline row the caller did not give: its keys, and the health the service computes
_NOT_GIVEN = frozenset(("account_id", "cutoff", *HEALTH_COLUMNS))


def assess(
    rows: FeatureRows,
    churn: Champion | None,
    expansion: Champion | None,
    settings: Settings,
    as_of: datetime,
    *,
    inline: bool = False,
    explain: bool = True,
    published: datetime | None = None,
    unloaded: str | None = None,
) -> list[Assessment]:
    """Explained risk for each row. `inline` rows come from the caller, not the store: they have no
    cutoff to be stale by. `published` is the online store's newest cutoff, which rows from accounts
    that have since left predate. Without `explain`, model answers carry no reasons and skip TreeSHAP, the
    cost of a row (the cockpit's book scores every account). `unloaded` says why no churn champion is
    loaded (an unreadable registry is not a missing champion), for the rules' answers to say."""
    top = settings.serve.top_reasons
    records: list[FeatureRow] = rows.records()
    fresh = [
        Freshness(cutoff=None, age_days=None, limit_days=settings.serve.freshness_days, fresh=True)
        if inline
        else freshness(_cutoff(r), as_of, settings)
        for r in records
    ]
    flagged = churn.model.out_of_range(rows, RANGE_TOLERANCE) if churn else [[] for _ in records]
    fallbacks: list[Fallback | None] = [
        Fallback(code="no_feature_row", message="no feature values given")
        if inline and all(v is None for k, v in r.items() if k not in _NOT_GIVEN)
        else _row_fallback(f, flags, _no_champion(churn, unloaded), published)
        for r, f, flags in zip(records, fresh, flagged, strict=True)
    ]
    scores = _ModelScores()
    if churn is not None:
        scores.score_churn(rows, churn, fallbacks, explain, top)
    scores.score_expansion(rows, expansion)
    return [
        _assessment(i, record, fallbacks[i], fresh[i], scores, settings) for i, record in enumerate(records)
    ]


def _assessment(
    i: int,
    record: FeatureRow,
    fallback: Fallback | None,
    fresh: Freshness,
    scores: _ModelScores,
    settings: Settings,
) -> Assessment:
    """Row `i`'s answer: the model's when it has no fallback, else the rules' with the weakest components."""
    health = health_of(record, settings)
    churn_probability = None if fallback is not None else scores.churn[i]
    band: RiskBand | None
    if churn_probability is not None:
        source, band = "model", risk_band(churn_probability, settings)
        reasons = scores.reasons.get(i, [])
    else:
        source, band = "rules", (RULES_RISK.get(health.band) if health.band else None)
        reasons = rules_reasons(health, settings.serve.top_reasons)
    return Assessment(
        account_id=str(record["account_id"]),
        source=source,
        fallback=fallback,
        churn_probability=churn_probability,
        expansion_probability=scores.expansion.get(i),
        risk_band=band,
        health=health,
        reasons=reasons,
        freshness=fresh,
        inputs_hash=inputs_hash(record),
        notes=list(scores.notes),
        row=record,
    )


@dataclass
class _ModelScores:
    """The champions' answers for the rows the model may score (`scorable`), by row position."""

    scorable: list[int] = field(default_factory=list)
    churn: dict[int, float] = field(default_factory=dict)
    expansion: dict[int, float] = field(default_factory=dict)
    reasons: dict[int, list[RiskReason]] = field(default_factory=dict)
    #: notes for every answer (why the expansion probability is missing)
    notes: list[str] = field(default_factory=list)

    def score_churn(
        self, rows: FeatureRows, churn: Champion, fallbacks: list[Fallback | None], explain: bool, top: int
    ) -> None:
        """Churn probabilities (and reasons) for the rows without a fallback; a model that fails turns
        them all to the rules (`model_error`), never into a 500."""
        scorable = [i for i, f in enumerate(fallbacks) if f is None]
        if not scorable:
            return
        part = rows if len(scorable) == len(rows) else rows.take(scorable)
        try:
            if explain:
                probability, explained = churn.model.explain(part, top=top)
                self.reasons = {
                    i: [RiskReason.model_validate(r.as_dict()) for r in rs]
                    for i, rs in zip(scorable, explained, strict=True)
                }
            else:
                probability = churn.model.predict(part)
        except Exception as e:  # a broken model degrades to the rules, never to a 500
            log.exception("churn model failed on %d rows; answering with the rules", len(scorable))
            for i in scorable:
                fallbacks[i] = Fallback(
                    code="model_error", message=f"the model could not score this row ({type(e).__name__})"
                )
            return
        self.churn = dict(zip(scorable, probability.tolist(), strict=True))
        self.scorable = scorable

    def score_expansion(self, rows: FeatureRows, expansion: Champion | None) -> None:
        """Expansion probabilities for the rows the churn model scored; a note when there are none."""
        if expansion is None:
            self.notes.append("expansion_probability is null: no expansion model is registered as champion")
            return
        if not self.scorable:
            return
        part = rows if len(self.scorable) == len(rows) else rows.take(self.scorable)
        try:
            self.expansion = dict(zip(self.scorable, expansion.model.predict(part).tolist(), strict=True))
        except Exception:
            log.exception("expansion model failed on %d rows", len(self.scorable))
            self.notes.append("expansion_probability is null: the expansion model failed on these features")
