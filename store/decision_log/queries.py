"""The decision log's synchronous reads, and the actions taken it records at once: answers and feedback
newest first, the previous score "what changed" compares with, the actions taken and their merge into the
store, and the counts the monitor and the digest read.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from store.decision_log.connection import BATCH, LogDatabase
from store.decision_log.records import (
    AnswerSource,
    FeedbackCount,
    FeedbackOnAction,
    LoggedDecision,
    TakenAction,
)
from store.decision_log.tables import DECISIONS, FEEDBACK, RECOMMENDATIONS, TAKEN, UTCDateTime, dumps

#: the columns a `TakenAction` holds
TAKEN_COLUMNS = [TAKEN.c[f.name] for f in fields(TakenAction)]


#: the columns a `LoggedDecision` holds (all but the row id)
DECISION_COLUMNS = [DECISIONS.c[f.name] for f in fields(LoggedDecision)]


def _previous_score_query() -> sa.Select[Any]:
    """`previous_score`'s query, built once: a request that serves an account for the first time asks
    it, and building the statement costs several times running it."""
    d = DECISIONS.c
    other_data = d.cutoff.is_distinct_from(sa.bindparam("cutoff", type_=UTCDateTime))
    other_models = sa.cast(d.models, sa.Text) != sa.bindparam("models", type_=sa.Text)
    return (
        sa.select(*DECISION_COLUMNS)
        .where(d.account_id == sa.bindparam("account_id"), d.kind == "score")
        .where(sa.or_(other_data, other_models))
        .order_by(d.served_at.desc(), d.id.desc())
        .limit(1)
    )


_PREVIOUS_SCORE = _previous_score_query()


class LogQueries(LogDatabase):
    """What is read from the log's database, and written there while the caller waits."""

    def record_taken(self, action: TakenAction, request_id: str, key_id: str | None) -> bool:
        """Store an action taken, durably before answering, with who reported it; False when its id was
        recorded before."""
        row = {
            **{f.name: getattr(action, f.name) for f in fields(TakenAction)},
            "request_id": request_id,
            "key_id": key_id,
        }
        try:
            with self.connect(write=True) as conn:
                conn.execute(TAKEN.insert(), row)
        except sa.exc.IntegrityError:
            return False
        return True

    def taken(self, *, pending_only: bool, account_id: str | None = None) -> list[TakenAction]:
        """Actions recorded here, oldest first: all, or those not yet merged into the store; of one account,
        or of all."""
        query = sa.select(*TAKEN_COLUMNS).order_by(TAKEN.c.ts, TAKEN.c.intervention_id)
        if pending_only:
            query = query.where(TAKEN.c.merged_version.is_(None))
        if account_id is not None:
            query = query.where(TAKEN.c.account_id == account_id)
        with self.connect() as conn:
            return [TakenAction(**row) for row in conn.execute(query).mappings()]

    def mark_merged(self, intervention_ids: list[str], version: int) -> None:
        """Say these actions are in the store's interventions table as of `version`."""
        with self.connect(write=True) as conn:
            for start in range(0, len(intervention_ids), BATCH):
                chunk = intervention_ids[start : start + BATCH]
                conn.execute(
                    TAKEN.update().where(TAKEN.c.intervention_id.in_(chunk)).values(merged_version=version)
                )

    def previous_score(
        self, account_id: str, cutoff: datetime | None, models: dict[str, str | None]
    ) -> LoggedDecision | None:
        """The latest score for the account from other data or other models: what changed since then."""
        row = self._one(
            _PREVIOUS_SCORE, {"account_id": account_id, "cutoff": cutoff, "models": dumps(models)}
        )
        return None if row is None else LoggedDecision(**row)

    def decisions(
        self, account_id: str | None = None, kind: str | None = None, limit: int = 50
    ) -> list[LoggedDecision]:
        """Newest first."""
        query = (
            sa.select(*DECISION_COLUMNS)
            .order_by(DECISIONS.c.served_at.desc(), DECISIONS.c.id.desc())
            .limit(limit)
        )
        if account_id is not None:
            query = query.where(DECISIONS.c.account_id == account_id)
        if kind is not None:
            query = query.where(DECISIONS.c.kind == kind)
        with self.connect() as conn:
            return [LoggedDecision(**row) for row in conn.execute(query).mappings()]

    def feedback(self, account_id: str | None = None, limit: int = 50) -> list[FeedbackOnAction]:
        """Newest first, with the recommendation's account and action."""
        r = RECOMMENDATIONS.c
        query = (
            sa.select(FEEDBACK, r.account_id, r.action)
            .join(RECOMMENDATIONS, FEEDBACK.c.recommendation_id == r.recommendation_id)
            .order_by(FEEDBACK.c.at.desc())
            .limit(limit)
        )
        if account_id is not None:
            query = query.where(r.account_id == account_id)
        with self.connect() as conn:
            return [FeedbackOnAction(**row) for row in conn.execute(query).mappings()]

    def answer_sources(self, since: datetime | None = None) -> list[AnswerSource]:
        """How many answers came from the model and from the rules (by fallback code) since `since`."""
        code = DECISIONS.c.output[("fallback_reason", "code")].as_string()
        query = sa.select(DECISIONS.c.source, code.label("code"), sa.func.count().label("answers"))
        if since is not None:
            query = query.where(DECISIONS.c.served_at >= since)
        with self.connect() as conn:
            rows = conn.execute(query.group_by(DECISIONS.c.source, code)).all()
        return [AnswerSource(source, code, int(answers)) for source, code, answers in rows]

    def feedback_counts(self, since: datetime | None = None) -> list[FeedbackCount]:
        """Feedback since `since` counted by the recommendation's action, the status and the reason."""
        f, r = FEEDBACK.c, RECOMMENDATIONS.c
        query = sa.select(r.action, f.status, f.reason, sa.func.count().label("n")).join(
            RECOMMENDATIONS, f.recommendation_id == r.recommendation_id
        )
        if since is not None:
            query = query.where(f.at >= since)
        with self.connect() as conn:
            rows = conn.execute(query.group_by(r.action, f.status, f.reason)).all()
        return [FeedbackCount(action, status, reason, int(n)) for action, status, reason, n in rows]
