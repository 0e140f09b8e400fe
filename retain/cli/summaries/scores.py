"""What `retain score` and `retain example-account` tell a person."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Group, RenderableType

from retain.cli.summaries.common import alerted, count, written_to

if TYPE_CHECKING:
    from serving.batch import ModelAnswered, StoreScores, TableScores


def scored(s: StoreScores) -> RenderableType:
    used = [f"{v.name} version {v.version}" for v in (s.models.churn, s.models.expansion) if v is not None]
    return Group(
        f"Scored {count(s.rows)} accounts active at {s.cutoff} with {' and '.join(used)} "
        f"in {s.seconds:.1f} s ({count(round(s.rows_per_second))} a second)",
        f"  scores, health and top reasons: {written_to(s.out, f'rows at {s.cutoff}')}",
        f"  and in the store's scores table, version {s.scores_version}",
        *(f"  note: {note}" for note in s.models.notes),
        *alerted(s.alerts),
    )


def table_scored(s: TableScores) -> RenderableType:
    return Group(
        f"Scored {count(s.rows)} rows of {s.table} with {s.model.name} version {s.model.version} in "
        f"{s.seconds:.1f} s",
        f"  probabilities and top reasons: {s.out}",
    )


def example_account(a: ModelAnswered) -> str:
    return a.account_id
