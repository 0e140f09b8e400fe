"""What each endpoint does, over the loaded resources: assess, rank actions, log, record.

The routes in `serving/routes/` only parse and authorise; everything here is callable without HTTP and
answers with the response models of `serving/schemas.py`.
"""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import BaseModel

from features.definitions import FEATURE_BY_NAME, value_problem
from features.health import INPUTS
from features.health import score as health_score
from features.playbook import DEFAULT_BAND, Verdict, eligibility
from features.playbook_file import Playbook
from features.rows import FeatureRows
from retain.core.contract import INTERVENTION_SCHEMA
from retain.core.settings import Settings
from retain.ingest.readers import Frame
from retain.ingest.validate import check_interventions
from serving.assess import INACTIVE_FALLBACK, Assessment, assess
from serving.caller import Caller
from serving.decision_log import Decision, DecisionLogUnavailable, LoggedFeedback, Recommendation, TakenAction
from serving.errors import ApiError
from serving.metrics import Metrics
from serving.online import OnlineStoreUnavailable
from serving.ranking import Ranking, rank
from serving.resources import Loaded, Resources, rows_without_values
from serving.schemas import (
    ActionOut,
    ActionsRequest,
    ActionsResponse,
    Changes,
    FailedDeliveries,
    FailedDeliveryOut,
    Fallback,
    FeedbackIn,
    FeedbackOut,
    Ineligible,
    InterventionIn,
    InterventionOut,
    ItemError,
    ModelRef,
    ReloadOut,
    RetryIn,
    RetryOut,
    Risk,
    RiskResponse,
    ScoreItem,
    ScoreResponse,
    WebhookCreated,
    WebhookIn,
    WebhookList,
    WebhookOut,
    WebhookResponse,
    WebhookRotated,
    WebhookRotateIn,
)
from serving.webhooks.checks import WebhookInputError
from serving.webhooks.outbox import UnknownWebhook

#: the error code of a next-best-actions request for an account that has left
INACTIVE_ERROR = "account_inactive"


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


@dataclass(frozen=True)
class _ServedScore:
    """What 'what changed' compares: a score served for an account, and the data and models behind it."""

    #: (feature cutoff, source, model versions): a score with another key came from other data or models
    key: tuple[object, ...]
    at: datetime
    cutoff: datetime | None
    source: str
    churn_probability: float | None
    risk_band: str | None
    reasons: tuple[str, ...]


class _LoggedReason(BaseModel):
    text: str


class _LoggedRisk(BaseModel):
    """The part of a risk answer in the decision log that 'what changed' compares."""

    churn_probability: float | None = None
    risk_band: str | None = None
    reasons: list[_LoggedReason] = []


class Service:
    def __init__(self, resources: Resources, metrics: Metrics) -> None:
        self.resources = resources
        self.metrics = metrics
        #: per account: the latest score served and the one 'what changed' compares it with
        self._history: dict[str, tuple[_ServedScore, _ServedScore | None]] = {}
        self._history_lock = threading.Lock()

    # -- risk ------------------------------------------------------------------------------------------
    def risk(self, account_id: str, caller: Caller, actions: int) -> RiskResponse:
        """The account's explained risk, with its `actions` best next actions, logged as a score."""
        loaded = self.resources.loaded
        risk = self._answer(loaded, self._assess_one(loaded, account_id), caller, actions)
        return RiskResponse.answering(caller.request_id, risk)

    def _assess_one(self, loaded: Loaded, account_id: str) -> Assessment:
        if loaded.accounts and account_id not in loaded.accounts:
            raise ApiError(404, "account_not_found", f"no account {account_id!r} in the store")
        rows, unavailable = self._online_rows(loaded, [account_id])
        (assessment,) = assess(
            rows,
            loaded.churn,
            loaded.expansion,
            self.resources.settings,
            self.resources.as_of(),
            published=loaded.published,
            unloaded=loaded.errors.get("churn"),
        )
        return _unread(assessment, unavailable)

    def _online_rows(self, loaded: Loaded, account_ids: list[str]) -> tuple[FeatureRows, Fallback | None]:
        """The accounts' published rows; while the online store cannot be read, rows with nothing in
        them and the fallback that says so (the rules answer, as the contract has it for missing input)."""
        try:
            return self.resources.online_rows(loaded, account_ids), None
        except OnlineStoreUnavailable as e:
            return rows_without_values(account_ids), Fallback(
                code="feature_store_unavailable", message=str(e)
            )

    def score(self, items: Sequence[ScoreItem], caller: Caller, actions: int) -> ScoreResponse:
        """Explained risk per item, from the store (by id) or from the item's own features; unknown ids
        are item errors, not a failed call."""
        loaded = self.resources.loaded
        settings = self.resources.settings
        errors: list[ItemError] = []
        by_id: list[int] = []
        inline: list[int] = []
        for i, item in enumerate(items):
            if item.features is not None:
                inline.append(i)
            elif loaded.accounts and item.account_id not in loaded.accounts:
                message = f"no account {item.account_id!r} in the store"
                errors.append(
                    ItemError(index=i, account_id=item.account_id, code="account_not_found", message=message)
                )
            else:
                by_id.append(i)
        assessed: dict[int, Assessment] = {}
        as_of = self.resources.as_of()
        if by_id:
            rows, unavailable = self._online_rows(loaded, [items[i].account_id for i in by_id])
            found = assess(
                rows,
                loaded.churn,
                loaded.expansion,
                settings,
                as_of,
                published=loaded.published,
                unloaded=loaded.errors.get("churn"),
            )
            assessed.update(zip(by_id, (_unread(a, unavailable) for a in found), strict=True))
        if inline:
            rows = inline_rows([items[i] for i in inline], loaded, settings)
            brought = assess(
                rows,
                loaded.churn,
                loaded.expansion,
                settings,
                as_of,
                inline=True,
                unloaded=loaded.errors.get("churn"),
            )
            assessed.update(zip(inline, brought, strict=True))
        results = [self._answer(loaded, assessed[i], caller, actions) for i in sorted(assessed)]
        return ScoreResponse(request_id=caller.request_id, results=results, errors=errors)

    def _answer(self, loaded: Loaded, assessment: Assessment, caller: Caller, actions: int) -> Risk:
        """One account's risk with its `actions` best next actions and what changed, logged as a score."""
        offered = []
        if actions and _why_left(assessment) is None:
            offered = self._offer(self._verdicts_and_ranking(loaded, assessment)[1], actions, set(), None)
        risk = self._risk(loaded, assessment, offered)
        risk.changes = self._changes(risk, risk.notes)
        self._log("score", caller, risk, assessment, offered)
        return risk

    def _risk(self, loaded: Loaded, assessment: Assessment, offered: list[ActionOut]) -> Risk:
        """The answer for one assessed account; a rules answer is counted in the metrics by its reason."""
        if assessment.fallback is not None:
            self.metrics.fallbacks.labels(reason=assessment.fallback.code).inc()
        horizon = loaded.churn.model.horizon_days if loaded.churn else self.resources.settings.horizon_days
        return Risk(
            account_id=assessment.account_id,
            source=assessment.source,
            fallback_reason=assessment.fallback,
            churn_probability=assessment.churn_probability,
            expansion_probability=assessment.expansion_probability,
            horizon_days=horizon,
            risk_band=assessment.risk_band,
            health=assessment.health,
            reasons=assessment.reasons,
            changes=None,
            models=model_refs(loaded),
            features=assessment.freshness,
            notes=list(assessment.notes),
            next_best_actions=offered,
        )

    # -- what changed ----------------------------------------------------------------------------------
    def _changes(self, risk: Risk, notes: list[str]) -> Changes | None:
        """The difference from the last score served from other data or models: remembered per account,
        else looked up in the decision log (a note says so when it cannot be read)."""
        versions = tuple(m.version if m else None for m in risk.models.values())
        key = (risk.features.cutoff, risk.source, versions)
        now = _ServedScore(
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
        return None if previous is None else _difference(now, previous)

    def _previous_from_log(self, risk: Risk) -> _ServedScore | None:
        found = self.resources.log.previous_score(risk.account_id, risk.features.cutoff, model_labels(risk))
        if found is None:
            return None
        output = _LoggedRisk.model_validate(found.output)
        return _ServedScore(
            key=(),
            at=found.served_at,
            cutoff=found.cutoff,
            source=found.source,
            churn_probability=output.churn_probability,
            risk_band=output.risk_band,
            reasons=tuple(r.text for r in output.reasons),
        )

    # -- next-best actions -----------------------------------------------------------------------------
    def next_best_actions(self, account_id: str, caller: Caller, ask: ActionsRequest) -> ActionsResponse:
        """The ranked actions, logged as a recommendation; 409 for an account that has left."""
        _check_exclude(ask, self.resources.playbook)
        loaded = self.resources.loaded
        assessment = self._assess_one(loaded, account_id)
        if (why := _why_left(assessment)) is not None:
            raise ApiError(
                409, INACTIVE_ERROR, f"{account_id} is no longer active: {why}; no action is ranked"
            )
        return self._recommend(loaded, assessment, caller, ask)[1]

    def account(
        self, account_id: str, caller: Caller, ask: ActionsRequest
    ) -> tuple[Risk, ActionsResponse | None]:
        """The explained risk and the ranked actions from one assessment (the cockpit's account page),
        logged once as a recommendation; for an account that has left, its last risk and no actions,
        logged as a score."""
        _check_exclude(ask, self.resources.playbook)
        loaded = self.resources.loaded
        assessment = self._assess_one(loaded, account_id)
        if _why_left(assessment) is not None:
            return self._answer(loaded, assessment, caller, 0), None
        return self._recommend(loaded, assessment, caller, ask)

    def _recommend(
        self, loaded: Loaded, assessment: Assessment, caller: Caller, ask: ActionsRequest
    ) -> tuple[Risk, ActionsResponse]:
        verdicts, ranking = self._verdicts_and_ranking(loaded, assessment)
        offered = self._offer(ranking, ask.limit, set(ask.exclude), ask.channels)
        ineligible = None
        if ask.include_ineligible:
            ineligible = [
                Ineligible(action=v.action, reasons=list(v.reasons)) for v in verdicts if not v.eligible
            ] + [Ineligible(action=x, reasons=[why]) for x, why in ranking.unprofitable.items()]
        risk = self._risk(loaded, assessment, offered)
        self._log("recommendation", caller, risk, assessment, offered)
        return risk, ActionsResponse(
            request_id=caller.request_id,
            account_id=assessment.account_id,
            source=assessment.source,
            fallback_reason=assessment.fallback,
            ranking=ranking.kind,
            ranking_note=ranking.note,
            health_band=assessment.health.band,
            play=self.resources.playbook.plays[assessment.health.band or DEFAULT_BAND].name,
            actions=offered,
            ineligible=ineligible,
        )

    def _verdicts_and_ranking(self, loaded: Loaded, assessment: Assessment) -> tuple[list[Verdict], Ranking]:
        """The account's eligibility now (cool-downs included) and its ranking."""
        as_of = self.resources.as_of()
        taken = self.resources.taken.of(assessment.account_id, as_of)
        playbook = self.resources.playbook
        verdicts = eligibility(assessment.row, taken, as_of, playbook)
        value = self.resources.settings.value
        return verdicts, rank(assessment, verdicts, taken, as_of, loaded.uplift, value, playbook)

    def _offer(
        self, ranking: Ranking, limit: int, exclude: set[str], channels: list[str] | None
    ) -> list[ActionOut]:
        """The ranking's first `limit` actions on the allowed channels, each with a new recommendation id."""
        out: list[ActionOut] = []
        for candidate in ranking.candidates:
            action = self.resources.playbook.actions[candidate.action]
            if candidate.action in exclude or (channels is not None and action.channel not in channels):
                continue
            out.append(
                ActionOut(
                    recommendation_id=new_id("rec"),
                    rank=len(out) + 1,
                    action=action.name,
                    channel=action.channel,
                    rationale=candidate.rationale,
                    eligibility=list(candidate.eligibility),
                    expected_value=candidate.expected_value,
                    churn_change=candidate.churn,
                    expansion_change=candidate.expansion,
                    effect_evidence=candidate.evidence,
                    probability_helps=candidate.p_helps,
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
        caller: Caller,
        risk: Risk,
        assessment: Assessment,
        offered: list[ActionOut],
    ) -> None:
        decision = Decision(
            request_id=caller.request_id,
            served_at=datetime.now(UTC),
            kind=kind,
            account_id=risk.account_id,
            source=risk.source,
            models=model_labels(risk),
            cutoff=risk.features.cutoff,
            inputs_hash=assessment.inputs_hash,
            output=risk.model_dump(mode="json"),
            key_id=caller.key_id,
            recommendations=tuple(
                Recommendation(
                    r.recommendation_id, r.action, r.rank, r.expected_value, p_helps=r.probability_helps
                )
                for r in offered
            ),
        )
        self.resources.log.submit(decision)

    def record_intervention(self, body: InterventionIn, caller: Caller) -> InterventionOut:
        """An action taken: checked against the contract, stored once per id in the decision log (folded
        into the store's interventions by `retain store compact`), and into the cool-downs at once."""
        loaded = self.resources.loaded
        actions = self.resources.playbook.actions
        if body.action not in actions:
            raise ApiError(422, "unknown_action", f"action: {body.action!r} is not in the playbook")
        if loaded.accounts and body.account_id not in loaded.accounts:
            raise ApiError(404, "account_not_found", f"no account {body.account_id!r} in the store")
        # the serving clock, so a replayed past (`as_of`) sees the action it was just told about
        ts = body.ts or self.resources.as_of()
        if ts.tzinfo is None:
            raise ApiError(422, "invalid_request", "ts: give a timezone, e.g. 2025-06-30T10:00:00Z")
        ts = ts.astimezone(UTC)
        intervention_id = body.intervention_id or new_id("int")
        taken = TakenAction(
            intervention_id=intervention_id,
            account_id=body.account_id,
            ts=ts,
            action=body.action,
            owner=body.owner,
            channel=body.channel or actions[body.action].channel,
            assignment="targeted",
            propensity=None,
        )
        row = pa.Table.from_pylist([dataclasses.asdict(taken)], INTERVENTION_SCHEMA)
        frame = Frame("interventions", f"api:{caller.request_id}", row)
        checked = check_interventions(frame, pa.array([body.account_id]), actions=actions)
        if checked.rejected.num_rows:
            reason, detail = (checked.rejected.column(c)[0].as_py() for c in ("reason", "detail"))
            raise ApiError(422, "invalid_intervention", f"{reason}: {detail}")
        try:
            recorded = self.resources.log.record_taken(taken, caller.request_id, caller.key_id)
        except DecisionLogUnavailable as e:
            raise ApiError(503, "decision_log_unavailable", str(e)) from e
        self.resources.taken.record(body.account_id, body.action, ts)
        return InterventionOut(
            request_id=caller.request_id,
            intervention_id=intervention_id,
            account_id=body.account_id,
            action=body.action,
            ts=ts,
            recorded=recorded,
        )

    def feedback(self, recommendation_id: str, body: FeedbackIn, caller: Caller) -> FeedbackOut:
        """Feedback on a served recommendation, into the decision log; `done` also records the action.

        While the log cannot be read, `accepted` and `rejected` are queued without checking that the
        recommendation was served (202), so a playbook engine need not hold and retry them; `done` needs
        the recommendation's account and action to record the intervention, so it waits for the log (503).
        """
        if body.status == "rejected" and not (body.reason and body.reason.strip()):
            raise ApiError(422, "reason_required", "reason: say why the recommendation was rejected")
        log = self.resources.log
        if log.lost(recommendation_id):
            raise ApiError(
                410,
                "recommendation_not_logged",
                f"recommendation {recommendation_id!r} was served, but its decision-log entry was lost while "
                "the log could not take it (counted in /metrics); feedback on it cannot be recorded",
            )
        at = body.at.astimezone(UTC) if body.at and body.at.tzinfo else self.resources.as_of()
        try:
            found = log.recommendation(recommendation_id)
        except DecisionLogUnavailable as e:
            if body.status == "done":
                raise ApiError(
                    503, "decision_log_unavailable", f"{e}; `done` records the action, which needs the log"
                ) from e
            return self._record_feedback(recommendation_id, body, at, None, caller, checked=False)
        if found is None:
            raise ApiError(404, "recommendation_not_found", f"no recommendation {recommendation_id!r}")
        intervention_id = None
        if body.status == "done":
            taken = InterventionIn(
                account_id=found.account_id,
                action=found.action,
                owner=body.actor,
                channel=body.channel,
                ts=at,
                intervention_id=f"int_{recommendation_id}",
            )
            intervention_id = self.record_intervention(taken, caller).intervention_id
        return self._record_feedback(recommendation_id, body, at, intervention_id, caller, checked=True)

    def _record_feedback(
        self,
        recommendation_id: str,
        body: FeedbackIn,
        at: datetime,
        intervention_id: str | None,
        caller: Caller,
        *,
        checked: bool,
    ) -> FeedbackOut:
        """Write the feedback now, or queue it when the log cannot take it (`queued`); unchecked feedback
        goes straight to the queue: the log just failed a read."""
        given = LoggedFeedback(
            feedback_id=uuid.uuid4().hex,
            recommendation_id=recommendation_id,
            status=body.status,
            reason=body.reason,
            actor=body.actor,
            at=at,
            intervention_id=intervention_id,
            key_id=caller.key_id,
        )
        try:
            written = self.resources.log.record_feedback(given, now=checked)
        except DecisionLogUnavailable as e:
            raise ApiError(503, "decision_log_unavailable", str(e)) from e
        return FeedbackOut(
            request_id=caller.request_id,
            feedback_id=given.feedback_id,
            recommendation_id=recommendation_id,
            status=body.status,
            intervention_id=intervention_id,
            queued=not written,
        )

    def reload(self, request_id: str) -> ReloadOut:
        """Load the current champions and feature registry now; what changed and what failed to load."""
        changed, errors = self.resources.reload()
        models = model_refs(self.resources.loaded)
        return ReloadOut(request_id=request_id, models=models, changed=changed, errors=errors)

    # -- webhooks --------------------------------------------------------------------------------------
    def webhooks(self, request_id: str) -> WebhookList:
        listed = self.resources.outbox.webhooks()
        return WebhookList(request_id=request_id, webhooks=[WebhookOut(**asdict(w)) for w in listed])

    def add_webhook(self, body: WebhookIn, request_id: str) -> WebhookCreated:
        """Subscribe; the answer carries the signing secret, this once."""
        try:
            added = self.resources.outbox.add(body.url, body.events, self.resources.playbook.alert_types)
        except WebhookInputError as e:
            raise _invalid(e) from e
        return WebhookCreated(request_id=request_id, secret=added.secret, **asdict(added.webhook))

    def remove_webhook(self, webhook_id: str, request_id: str) -> WebhookResponse:
        try:
            removed = self.resources.outbox.remove(webhook_id)
        except UnknownWebhook as e:
            raise ApiError(404, "webhook_not_found", str(e)) from e
        return WebhookResponse(request_id=request_id, **asdict(removed))

    def rotate_webhook_secret(
        self, webhook_id: str, body: WebhookRotateIn, request_id: str
    ) -> WebhookRotated:
        """A new signing secret, in this answer only; the one it replaces signs beside it for the overlap."""
        default = self.resources.settings.webhooks.rotation_overlap_seconds
        overlap = default if body.overlap_seconds is None else body.overlap_seconds
        try:
            rotated = self.resources.outbox.rotate(webhook_id, overlap)
        except UnknownWebhook as e:
            raise ApiError(404, "webhook_not_found", str(e)) from e
        except WebhookInputError as e:
            raise _invalid(e) from e
        return WebhookRotated(
            request_id=request_id,
            secret=rotated.secret,
            previous_until=rotated.previous_until,
            **asdict(rotated.webhook),
        )

    def failed_deliveries(self, request_id: str) -> FailedDeliveries:
        dead = [FailedDeliveryOut(**asdict(f)) for f in self.resources.outbox.failed()]
        return FailedDeliveries(request_id=request_id, deliveries=dead)

    def retry_deliveries(self, body: RetryIn, request_id: str) -> RetryOut:
        try:
            retried = self.resources.outbox.retry(body.alert_id, body.webhook_id, every=body.all)
        except WebhookInputError as e:
            raise _invalid(e) from e
        return RetryOut(request_id=request_id, retried=retried.deliveries)


def _invalid(error: WebhookInputError) -> ApiError:
    """A 422 naming the body's field at fault, with the check's own code."""
    fields = [{"field": f"body.{error.field}", "message": str(error)}]
    return ApiError(422, error.code, str(error), fields)


def _unread(assessment: Assessment, unavailable: Fallback | None) -> Assessment:
    """An assessment of a row the online store could not give, said as that rather than as no row."""
    return assessment if unavailable is None else dataclasses.replace(assessment, fallback=unavailable)


def _difference(now: _ServedScore, previous: _ServedScore) -> Changes:
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


def _check_exclude(ask: ActionsRequest, playbook: Playbook) -> None:
    unknown = sorted(set(ask.exclude) - set(playbook.actions))
    if unknown:
        raise ApiError(422, "unknown_action", f"exclude: not playbook actions: {', '.join(unknown)}")


def _why_left(assessment: Assessment) -> str | None:
    """Why the account is no longer active, or None while it is."""
    fallback = assessment.fallback
    return fallback.message if fallback is not None and fallback.code == INACTIVE_FALLBACK else None


def model_refs(loaded: Loaded) -> dict[str, ModelRef | None]:
    """The champions an answer came from, by model kind (None where none is loaded)."""
    return {kind: (c.ref if (c := loaded.champion(kind)) else None) for kind in ("churn", "expansion")}


def model_labels(risk: Risk) -> dict[str, str | None]:
    """The versions an answer came from as the decision log keys them (`churn/3`)."""
    return {kind: ref.label if ref else None for kind, ref in risk.models.items()}


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
