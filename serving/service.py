"""What each endpoint does, over the loaded resources: assess, rank actions, log, record.

The routes in `serving/app.py` only parse and authorise; everything here is callable without HTTP.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa

from features.definitions import FEATURE_BY_NAME
from features.health import INPUTS
from features.health import score as health_score
from features.playbook import DEFAULT_BAND, PLAYS, Verdict, eligibility, lower_first, rules_ranking
from features.rows import FeatureRows
from retain.core.catalogue import ACTIONS, CATALOGUE
from retain.core.contract import INTERVENTION_SCHEMA
from retain.core.settings import Settings
from retain.core.value import expected_values
from retain.ingest import record_interventions
from serving.assess import INACTIVE, Assessment, assess
from serving.decision_log import Decision, DecisionLogUnavailable, Recommendation
from serving.metrics import Metrics
from serving.resources import Loaded, Resources
from serving.schemas import (
    ActionOut,
    ActionsRequest,
    Changes,
    Evidence,
    FeedbackIn,
    Ineligible,
    InterventionIn,
    ItemError,
    ModelRef,
    PredictedChange,
    Risk,
    ScoreItem,
)
from training.causal import recency
from training.causal.dr import Z95

#: why the rules rank an account's actions, by what stood in the uplift ranking's way
RULES_NOTES = {
    "no_uplift_model": "ranked by the rules for the account's health band: no uplift model is promoted",
    "features_untrusted": "ranked by the rules for the account's health band: its features cannot be trusted",
}
#: fallbacks that say the feature row itself cannot be trusted (a missing churn model does not)
UNTRUSTED_FEATURES = frozenset({"no_feature_row", "stale_features", "out_of_range"})
#: the error code of a next-best-actions request for an account that has left
INACTIVE_ERROR = "account_inactive"
POOR_OVERLAP = (
    "ranked by the rules after the uplift-ranked actions: too little overlap to trust its uplift model"
)


@dataclass(frozen=True)
class _Entry:
    action: str
    rationale: str
    eligibility: tuple[str, ...]
    expected_value: float | None
    churn: PredictedChange | None = None
    expansion: PredictedChange | None = None
    evidence: Evidence | None = None


@dataclass(frozen=True)
class _Ranking:
    kind: Literal["uplift", "rules"]
    note: str
    entries: list[_Entry]
    #: eligible actions the uplift ranking leaves out, with why (they cost more than they return)
    unprofitable: dict[str, str]


def _money(value: float) -> str:
    return f"-${-value:,.0f}" if value < 0 else f"${value:,.0f}"


def _uncertain(churn: PredictedChange) -> str:
    return (
        "Uncertain: the data cannot yet tell its effect from none (95% interval of the change in churn risk: "
        f"{100 * churn.ci_low:+.1f} to {100 * churn.ci_high:+.1f} points)"
    )


def _value_rationale(
    churn: PredictedChange, expansion: PredictedChange, evidence: Evidence, ev: float, because: str
) -> str:
    parts = []
    if churn.estimate < 0:
        parts.append(f"lowers 90-day churn risk by {-100 * churn.estimate:.1f} points")
    elif churn.estimate > 0:
        parts.append(f"raises 90-day churn risk by {100 * churn.estimate:.1f} points")
    if expansion.estimate > 0:
        parts.append(f"raises the chance of expansion by {100 * expansion.estimate:.1f} points")
    effect = " and ".join(parts) or "changes little"
    text = f"Expected value {_money(ev)}: it {effect}, net of its cost; {because}."
    return text + (f" {_uncertain(churn)}." if evidence == "uncertain" else "")


class ApiError(Exception):
    """An answer other than 200, with a stable code a playbook engine can branch on."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


@dataclass(frozen=True)
class _Scored:
    """What 'what changed' compares: the last answer served from other data or another model."""

    key: tuple[Any, ...]
    at: datetime
    cutoff: datetime | None
    source: str
    churn_probability: float | None
    risk_band: str | None
    reasons: tuple[str, ...]


class Service:
    def __init__(self, resources: Resources, metrics: Metrics) -> None:
        self.res = resources
        self.metrics = metrics
        self._history: dict[str, tuple[_Scored, _Scored | None]] = {}
        self._history_lock = threading.Lock()

    # -- risk ------------------------------------------------------------------------------------------
    def risk(self, account_id: str, request_id: str, actions: int) -> Risk:
        loaded = self.res.loaded
        return self._answer(loaded, self._assess_one(loaded, account_id), request_id, actions)

    def _assess_one(self, loaded: Loaded, account_id: str) -> Assessment:
        if loaded.accounts and account_id not in loaded.accounts:
            raise ApiError(404, "account_not_found", f"no account {account_id!r} in the store")
        rows = self.res.online_rows(loaded, [account_id])
        (assessment,) = assess(
            rows,
            loaded.churn,
            loaded.expansion,
            self.res.settings,
            self.res.as_of(),
            published=loaded.published,
        )
        return assessment

    def score(
        self, items: Sequence[ScoreItem], request_id: str, actions: int
    ) -> tuple[list[Risk], list[ItemError]]:
        loaded = self.res.loaded
        errors: list[ItemError] = []
        by_id: list[int] = []
        inline: list[int] = []
        for i, item in enumerate(items):
            if item.features is not None:
                inline.append(i)
            elif loaded.accounts and item.account_id not in loaded.accounts:
                errors.append(
                    ItemError(
                        index=i,
                        account_id=item.account_id,
                        code="account_not_found",
                        message=f"no account {item.account_id!r} in the store",
                    )
                )
            else:
                by_id.append(i)
        assessed: dict[int, Assessment] = {}
        as_of = self.res.as_of()
        if by_id:
            rows = self.res.online_rows(loaded, [items[i].account_id for i in by_id])
            for i, a in zip(
                by_id,
                assess(
                    rows, loaded.churn, loaded.expansion, self.res.settings, as_of, published=loaded.published
                ),
                strict=True,
            ):
                assessed[i] = a
        if inline:
            rows = inline_rows([items[i] for i in inline], loaded, self.res.settings)
            results = assess(rows, loaded.churn, loaded.expansion, self.res.settings, as_of, inline=True)
            for i, a in zip(inline, results, strict=True):
                assessed[i] = a
        return [self._answer(loaded, assessed[i], request_id, actions) for i in sorted(assessed)], errors

    def _answer(self, loaded: Loaded, a: Assessment, request_id: str, actions: int) -> Risk:
        ranked = []
        if actions and _left(a) is None:
            ranked = self._ranked(self._rank(loaded, a)[1], actions, set(), None)
        risk = self._risk(loaded, a, ranked)
        risk.changes = self._changes(risk, risk.notes)
        self._log("score", request_id, risk, a, ranked)
        return risk

    def _risk(self, loaded: Loaded, a: Assessment, ranked: list[ActionOut]) -> Risk:
        """The answer for one assessed account; a rules answer is counted in the metrics by its reason."""
        if a.fallback is not None:
            self.metrics.fallbacks.labels(reason=a.fallback.code).inc()
        return Risk(
            account_id=a.account_id,
            source=a.source,
            fallback_reason=a.fallback,
            churn_probability=a.churn_probability,
            expansion_probability=a.expansion_probability,
            horizon_days=loaded.churn.model.horizon_days if loaded.churn else self.res.settings.horizon_days,
            risk_band=a.risk_band,
            health=a.health,
            reasons=a.reasons,
            changes=None,
            models=model_refs(loaded),
            features=a.freshness,
            notes=list(a.notes),
            next_best_actions=ranked,
        )

    # -- what changed ----------------------------------------------------------------------------------
    def _changes(self, risk: Risk, notes: list[str]) -> Changes | None:
        versions = tuple(m.version if m else None for m in risk.models.values())
        key = (risk.features.cutoff, risk.source, versions)
        now = _Scored(
            key=key,
            at=datetime.now(UTC),
            cutoff=risk.features.cutoff,
            source=risk.source,
            churn_probability=risk.churn_probability,
            risk_band=risk.risk_band,
            reasons=tuple(r.text for r in risk.reasons),
        )
        with self._history_lock:
            known = self._history.get(risk.account_id)
        if known is None:
            try:
                previous = self._previous_from_log(risk)
            except DecisionLogUnavailable:
                notes.append("changes unknown: the decision log cannot be read")
                previous = None
        elif known[0].key == key:
            previous = known[1]
        else:
            previous = known[0]
        with self._history_lock:
            self._history[risk.account_id] = (now, previous)
        if previous is None:
            return None
        points = (
            round((now.churn_probability - previous.churn_probability) * 100, 2)
            if now.churn_probability is not None and previous.churn_probability is not None
            else None
        )
        return Changes(
            previous_scored_at=previous.at,
            previous_cutoff=previous.cutoff,
            previous_source=previous.source,
            previous_churn_probability=previous.churn_probability,
            churn_points=points,
            previous_risk_band=previous.risk_band,
            new_reasons=[r for r in now.reasons if r not in previous.reasons],
            resolved_reasons=[r for r in previous.reasons if r not in now.reasons],
        )

    def _previous_from_log(self, risk: Risk) -> _Scored | None:
        found = self.res.log.previous_score(risk.account_id, risk.features.cutoff, model_labels(risk))
        if found is None:
            return None
        output = found["output"]
        return _Scored(
            key=(),
            at=found["served_at"],
            cutoff=found["cutoff"],
            source=found["source"],
            churn_probability=output.get("churn_probability"),
            risk_band=output.get("risk_band"),
            reasons=tuple(r["text"] for r in output.get("reasons", [])),
        )

    # -- next-best actions -----------------------------------------------------------------------------
    def next_best_actions(self, account_id: str, request_id: str, ask: ActionsRequest) -> dict[str, Any]:
        """The ranked actions, logged as a recommendation; 409 for an account that has left."""
        _check_exclude(ask)
        loaded = self.res.loaded
        a = self._assess_one(loaded, account_id)
        if (why := _left(a)) is not None:
            raise ApiError(
                409, INACTIVE_ERROR, f"{account_id} is no longer active: {why}; no action is ranked"
            )
        return self._recommend(loaded, a, request_id, ask)[1]

    def account(
        self, account_id: str, request_id: str, ask: ActionsRequest
    ) -> tuple[Risk, dict[str, Any] | None]:
        """The explained risk and the ranked actions from one assessment (the cockpit's account page),
        logged once as a recommendation; for an account that has left, its last risk and no actions,
        logged as a score."""
        _check_exclude(ask)
        loaded = self.res.loaded
        a = self._assess_one(loaded, account_id)
        if _left(a) is not None:
            return self._answer(loaded, a, request_id, 0), None
        return self._recommend(loaded, a, request_id, ask)

    def _recommend(
        self, loaded: Loaded, a: Assessment, request_id: str, ask: ActionsRequest
    ) -> tuple[Risk, dict[str, Any]]:
        verdicts, ranking = self._rank(loaded, a)
        ranked = self._ranked(ranking, ask.limit, set(ask.exclude), ask.channels)
        ineligible = None
        if ask.include_ineligible:
            ineligible = [
                Ineligible(action=v.action, reasons=list(v.reasons)) for v in verdicts if not v.eligible
            ] + [Ineligible(action=x, reasons=[why]) for x, why in ranking.unprofitable.items()]
        risk = self._risk(loaded, a, ranked)
        self._log("recommendation", request_id, risk, a, ranked)
        return risk, {
            "account_id": a.account_id,
            "source": a.source,
            "fallback_reason": a.fallback,
            "ranking": ranking.kind,
            "ranking_note": ranking.note,
            "health_band": a.health.band,
            "play": PLAYS[a.health.band or DEFAULT_BAND].name,
            "actions": ranked,
            "ineligible": ineligible,
        }

    def _rank(self, loaded: Loaded, a: Assessment) -> tuple[list[Verdict], _Ranking]:
        """The account's eligibility now (cool-downs included) and its ranking."""
        as_of = self.res.as_of()
        taken = self.res.taken.of(a.account_id, as_of)
        verdicts = eligibility(a.row, taken, as_of)
        return verdicts, self._ranking(loaded, a, verdicts, recency.for_account(taken, as_of))

    def _ranking(
        self, loaded: Loaded, a: Assessment, verdicts: list[Verdict], days_since: dict[str, float]
    ) -> _Ranking:
        """By expected value when an uplift champion is loaded and the features are trusted; actions whose
        uplift model has poor overlap follow in the rules' order; otherwise the rules rank everything.
        `days_since` is the account's days since each action was last taken (the uplift models' input)."""
        rules = rules_ranking(a.health.band, verdicts)
        by_rules = [_Entry(r.action, r.rationale, r.eligibility, None) for r in rules]
        if loaded.uplift is None:
            return _Ranking("rules", RULES_NOTES["no_uplift_model"], by_rules, {})
        if not a.row or (a.fallback is not None and a.fallback.code in UNTRUSTED_FEATURES):
            return _Ranking("rules", RULES_NOTES["features_untrusted"], by_rules, {})
        model = loaded.uplift.model
        risks = model.risk(pd.DataFrame([{**a.row, **days_since}]))
        uplift, low, high = model.scaled(risks), model.scaled(risks, -Z95), model.scaled(risks, Z95)
        values = expected_values(
            uplift["churn"],
            uplift["expansion"],
            np.array([a.row.get("arr")], float),
            model.actions,
            self.res.settings.value,
        )[0]
        usable = set(model.usable())
        column = {action: j for j, action in enumerate(model.actions)}
        reasons = {v.action: v.reasons for v in verdicts if v.eligible}
        ranked, unprofitable = [], {}
        for action in sorted((x for x in reasons if x in usable), key=lambda x: -values[column[x]]):
            j = column[action]
            churn, expansion = (
                PredictedChange(
                    estimate=float(uplift[o][0, j]), ci_low=float(low[o][0, j]), ci_high=float(high[o][0, j])
                )
                for o in ("churn", "expansion")
            )
            evidence: Evidence = "clear" if model.shows_benefit(action) else "uncertain"
            because = "; ".join(lower_first(r) for r in reasons[action])
            if values[j] <= 0:
                why = f"expected value {_money(values[j])}: it costs more than it returns"
                unprofitable[action] = why + (
                    f"; {lower_first(_uncertain(churn))}" if evidence == "uncertain" else ""
                )
                continue
            text = _value_rationale(churn, expansion, evidence, values[j], because)
            value = round(float(values[j]), 2)
            ranked.append(_Entry(action, text, reasons[action], value, churn, expansion, evidence))
        late = [
            _Entry(e.action, f"{e.rationale[:-1]}; {POOR_OVERLAP}.", e.eligibility, None)
            for e in by_rules
            if e.action not in usable
        ]
        note = f"ranked by expected value (uplift x value - cost) from {loaded.uplift.label}"
        if late:
            note += f"; {len(late)} by the rules, their uplift models lacking overlap"
        return _Ranking("uplift", note, ranked + late, unprofitable)

    def _ranked(
        self,
        ranking: _Ranking,
        limit: int,
        exclude: set[str],
        channels: list[str] | None,
    ) -> list[ActionOut]:
        out: list[ActionOut] = []
        for entry in ranking.entries:
            action = CATALOGUE[entry.action]
            if entry.action in exclude or (channels is not None and action.channel not in channels):
                continue
            out.append(
                ActionOut(
                    recommendation_id=new_id("rec"),
                    rank=len(out) + 1,
                    action=action.name,
                    channel=action.channel,
                    rationale=entry.rationale,
                    eligibility=list(entry.eligibility),
                    expected_value=entry.expected_value,
                    churn_change=entry.churn,
                    expansion_change=entry.expansion,
                    effect_evidence=entry.evidence,
                    cost_hours=action.cost_hours,
                    cost_usd=action.cost_usd,
                    cooldown_days=action.cooldown_days,
                    needs_approval=action.needs_approval,
                )
            )
            if len(out) == limit:
                break
        return out

    # -- logging and recording -------------------------------------------------------------------------
    def _log(
        self,
        kind: Literal["score", "recommendation"],
        request_id: str,
        risk: Risk,
        a: Assessment,
        ranked: list[ActionOut],
    ) -> None:
        decision = Decision(
            request_id=request_id,
            served_at=datetime.now(UTC),
            kind=kind,
            account_id=risk.account_id,
            source=risk.source,
            models=model_labels(risk),
            cutoff=risk.features.cutoff,
            inputs_hash=a.inputs_hash,
            output=risk.model_dump(mode="json"),
            recommendations=tuple(
                Recommendation(r.recommendation_id, r.action, r.rank, r.expected_value) for r in ranked
            ),
        )
        self.res.log.submit(decision)

    def record_intervention(self, body: InterventionIn, request_id: str) -> dict[str, Any]:
        loaded = self.res.loaded
        if body.action not in CATALOGUE:
            raise ApiError(422, "unknown_action", f"action: {body.action!r} is not in the catalogue")
        if loaded.accounts and body.account_id not in loaded.accounts:
            raise ApiError(404, "account_not_found", f"no account {body.account_id!r} in the store")
        # the serving clock, so a replayed past (`as_of`) sees the action it was just told about
        ts = body.ts or self.res.as_of()
        if ts.tzinfo is None:
            raise ApiError(422, "invalid_request", "ts: give a timezone, e.g. 2025-06-30T10:00:00Z")
        ts = ts.astimezone(UTC)
        intervention_id = body.intervention_id or new_id("int")
        row = {
            "intervention_id": intervention_id,
            "account_id": body.account_id,
            "ts": ts,
            "action": body.action,
            "owner": body.owner,
            "channel": body.channel or CATALOGUE[body.action].channel,
            "assignment": "targeted",
            "propensity": None,
        }
        summary = record_interventions(
            self.res.store, pa.Table.from_pylist([row], schema=INTERVENTION_SCHEMA), f"api:{request_id}"
        )
        if summary["rejected"]:
            first = summary["rejected"][0]
            raise ApiError(422, "invalid_intervention", f"{first['reason']}: {first['detail']}")
        self.res.taken.record(body.account_id, body.action, ts)
        return {
            "intervention_id": intervention_id,
            "account_id": body.account_id,
            "action": body.action,
            "ts": ts,
            "recorded": summary["accepted"]["interventions"] == 1,
        }

    def feedback(self, recommendation_id: str, body: FeedbackIn, request_id: str) -> dict[str, Any]:
        if body.status == "rejected" and not (body.reason and body.reason.strip()):
            raise ApiError(422, "reason_required", "reason: say why the recommendation was rejected")
        try:
            found = self.res.log.recommendation(recommendation_id)
        except DecisionLogUnavailable as e:
            raise ApiError(503, "decision_log_unavailable", str(e)) from e
        if found is None:
            raise ApiError(404, "recommendation_not_found", f"no recommendation {recommendation_id!r}")
        at = body.at.astimezone(UTC) if body.at and body.at.tzinfo else self.res.as_of()
        intervention_id = None
        if body.status == "done":
            done = self.record_intervention(
                InterventionIn(
                    account_id=found["account_id"],
                    action=found["action"],
                    owner=body.actor,
                    channel=body.channel,
                    ts=at,
                    intervention_id=f"int_{recommendation_id}",
                ),
                request_id,
            )
            intervention_id = done["intervention_id"]
        try:
            stored = self.res.log.record_feedback(
                recommendation_id, body.status, body.reason, body.actor, at, intervention_id
            )
        except DecisionLogUnavailable as e:
            raise ApiError(503, "decision_log_unavailable", str(e)) from e
        return {
            "feedback_id": stored["feedback_id"],
            "recommendation_id": recommendation_id,
            "status": body.status,
            "intervention_id": intervention_id,
        }


def _check_exclude(ask: ActionsRequest) -> None:
    unknown = sorted(set(ask.exclude) - set(ACTIONS))
    if unknown:
        raise ApiError(422, "unknown_action", f"exclude: not catalogue actions: {', '.join(unknown)}")


def _left(a: Assessment) -> str | None:
    """Why the account is no longer active, or None while it is."""
    return a.fallback.message if a.fallback is not None and a.fallback.code == INACTIVE else None


def model_refs(loaded: Loaded) -> dict[str, ModelRef | None]:
    """The champions an answer came from, by model kind (None where none is loaded)."""
    return {kind: (c.ref if (c := loaded.champion(kind)) else None) for kind in ("churn", "expansion")}


def model_labels(risk: Risk) -> dict[str, str | None]:
    """The versions an answer came from as the decision log keys them (`churn/3`)."""
    return {kind: ref.label if ref else None for kind, ref in risk.models.items()}


def inline_rows(items: Sequence[ScoreItem], loaded: Loaded, settings: Settings) -> FeatureRows:
    """Rows an engine brought itself, in the online layout: every known feature column, unknown ones
    refused by name, and the health score recomputed from them by the one health definition."""
    names = list(loaded.features.names) if loaded.features else list(FEATURE_BY_NAME)
    text = loaded.features.text if loaded.features else frozenset()
    for i, item in enumerate(items):
        unknown = sorted(set(item.features or {}) - set(names))
        if unknown:
            raise ApiError(
                422, "unknown_feature", f"accounts[{i}].features: unknown feature(s) {', '.join(unknown)}"
            )
    columns: dict[str, Any] = {"account_id": [item.account_id for item in items], "cutoff": pd.NaT}
    for name in names:
        values = [(item.features or {}).get(name) for item in items]
        if name in text:
            columns[name] = np.array([v if isinstance(v, str) else None for v in values], dtype=object)
        else:
            try:
                columns[name] = np.array([np.nan if v is None else float(v) for v in values], dtype="float64")
            except (TypeError, ValueError) as e:
                raise ApiError(422, "invalid_feature", f"features.{name}: expected a number ({e})") from e
    rows = pd.DataFrame(columns)
    health_inputs = pa.Table.from_pandas(rows[list(INPUTS)], preserve_index=False)
    health = health_score(health_inputs, settings).to_pandas()
    for column in health.columns:
        if column.startswith("health_"):
            rows[column] = health[column].to_numpy()
    return FeatureRows.from_frame(rows, text | {"health_band"})
