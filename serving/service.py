"""What each endpoint does, over the loaded resources: assess, rank actions, log, record.

The routes in `serving/routes/` only parse and authorise; everything here is callable without HTTP and
answers with the response models of `serving/schemas/`. What changed since a score is `serving/changes.py`,
the webhook endpoints' work `serving/webhook_admin.py`.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal

import pyarrow as pa

from core.contract import INTERVENTION_SCHEMA
from features.playbook import DEFAULT_BAND, Verdict, eligibility
from features.playbook_file import Playbook
from features.rows import FeatureRows
from ingest.readers import Frame
from ingest.validate import check_interventions
from serving.assess import INACTIVE_FALLBACK, Assessment, assess
from serving.caller import Caller
from serving.changes import ScoreHistory, model_labels
from serving.errors import ApiError
from serving.inline_rows import inline_rows
from serving.metrics import Metrics
from serving.online import OnlineStoreUnavailable
from serving.ranking import Ranking, rank
from serving.resources import Loaded, Resources, rows_without_values
from serving.schemas import (
    ActionOut,
    ActionsRequest,
    ActionsResponse,
    Fallback,
    FeedbackIn,
    FeedbackOut,
    Ineligible,
    InterventionIn,
    InterventionOut,
    ItemError,
    ModelRef,
    ReloadOut,
    Risk,
    RiskResponse,
    ScoreItem,
    ScoreResponse,
)
from store.decision_log import Decision, DecisionLogUnavailable, LoggedFeedback, Recommendation, TakenAction

#: the error code of a next-best-actions request for an account that has left
INACTIVE_ERROR = "account_inactive"


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


class Service:
    def __init__(self, resources: Resources, metrics: Metrics) -> None:
        self.resources = resources
        self.metrics = metrics
        #: per account: the latest score served and the one 'what changed' compares it with
        self._history = ScoreHistory()

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
        risk.changes = self._history.changes(risk, risk.notes, self.resources.log)
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
        """An action taken: checked against the contract, stored once per id in the decision log (merged
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


def _unread(assessment: Assessment, unavailable: Fallback | None) -> Assessment:
    """An assessment of a row the online store could not give, said as that rather than as no row."""
    return assessment if unavailable is None else dataclasses.replace(assessment, fallback=unavailable)


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
