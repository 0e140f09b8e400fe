"""`--out` as a database table: which URLs name one (and which are refused, in words, without the
password), and a batch replacing its key's rows in one transaction, on an SQLite file."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest
import sqlalchemy as sa

from core.errors import RetainError
from core.sql_out import SqlTable, batch_table, destination

COLUMNS = pa.schema(
    [pa.field("account_id", pa.string(), nullable=False), ("p", pa.float64()), ("held", pa.bool_())]
)
MONDAY, NEXT = date(2025, 7, 28), date(2025, 8, 4)


@pytest.mark.parametrize("out", ["scores.parquet", "out/plan.csv", "/abs/plan.csv", "sqlite.db#x"])
def test_a_path_is_a_file(out: str) -> None:
    assert destination(out) == Path(out)
    assert destination(Path(out)) == Path(out)


@pytest.mark.parametrize(
    ("out", "name", "schema"),
    [
        ("postgresql://retain:s3cret@db:5432/crm#churn_scores", "churn_scores", None),
        ("postgres://retain@db/crm#analytics.churn_scores", "churn_scores", "analytics"),
        ("postgresql+psycopg://retain@db/crm#Plans_2", "Plans_2", None),
        ("sqlite:////tmp/out.db#scores", "scores", None),
        ("sqlite:///relative.db#scores", "scores", None),
    ],
)
def test_a_url_with_a_table_is_a_table(out: str, name: str, schema: str | None) -> None:
    target = destination(out)
    assert isinstance(target, SqlTable)
    assert (target.url, target.name, target.schema) == (out.partition("#")[0], name, schema)
    assert "s3cret" not in str(target) and "s3cret" not in repr(target)


def test_a_table_is_shown_with_its_password_redacted() -> None:
    target = destination("postgresql://retain:s3cret@db:5432/crm#analytics.scores")
    assert str(target) == "postgresql://retain:***@db:5432/crm#analytics.scores"


@pytest.mark.parametrize(
    ("out", "said"),
    [
        ("mysql://retain:s3cret@db/crm#scores", "mysql:// is not supported"),
        ("s3://bucket/scores.parquet", "s3:// is not supported"),
        ("postgresql://retain:s3cret@db:port/crm#scores", "is not a database URL"),
        ("postgresql://retain:s3cret@db:5432/crm", "names no table: end it with #TABLE"),
        ("postgresql://retain:s3cret@db:5432/crm#", "names no table"),
        ("postgresql://retain:s3cret@db/crm#churn-scores", "'churn-scores', which is not a plain name"),
        ("postgresql://retain:s3cret@db/crm#a.b.c", "not a plain name"),
        ("sqlite://#scores", "SQLite needs a file"),
    ],
)
def test_a_bad_url_is_refused_in_words_without_the_password(out: str, said: str) -> None:
    with pytest.raises(RetainError) as refused:
        destination(out)
    assert said in str(refused.value) and "s3cret" not in str(refused.value)


def _rows(ids: list[str], p: float) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict(
        {"account_id": ids, "p": [p] * len(ids), "held": [i.endswith("1") for i in ids]}, schema=COLUMNS
    )


def _read(path: Path) -> list[tuple[object, ...]]:
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT week, account_id, p, held FROM plans ORDER BY 1, 2"))
        found = [tuple(r) for r in rows]
    engine.dispose()
    return found


def test_a_batch_replaces_its_keys_rows_in_one_transaction(tmp_path: Path) -> None:
    target = destination(f"sqlite:///{tmp_path / 'out.db'}#plans")
    assert isinstance(target, SqlTable)
    with batch_table(target, "week", COLUMNS, unique="account_id") as table:
        assert table.replace(MONDAY, [_rows(["a-0", "a-1"], 0.5)]) == 2
        assert table.replace(NEXT, [_rows(["a-0"], 0.1)]) == 1
        assert table.replace(MONDAY, [_rows(["a-1"], 0.7), _rows(["a-2"], 0.2)]) == 2

        def broken() -> Iterator[pa.RecordBatch]:
            yield _rows(["a-9"], 0.9)
            raise RuntimeError("the batch broke half-way")

        with pytest.raises(RuntimeError):
            table.replace(NEXT, broken())  # deleted and inserted, then rolled back: NEXT keeps its row
    assert _read(tmp_path / "out.db") == [
        ("2025-07-28", "a-1", 0.7, 1),
        ("2025-07-28", "a-2", 0.2, 0),
        ("2025-08-04", "a-0", 0.1, 0),
    ]
    columns = {
        c["name"]: str(c["type"]) for c in sa.inspect(sa.create_engine(target.url)).get_columns("plans")
    }
    assert columns == {"week": "DATE", "account_id": "TEXT", "p": "DOUBLE", "held": "BOOLEAN"}


def test_a_table_without_a_required_column_or_a_database_out_of_reach_is_said(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'theirs.db'}")
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE plans (week DATE, p FLOAT)"))
        connection.execute(sa.text("CREATE TABLE earlier (week DATE, account_id TEXT)"))
    theirs = destination(f"sqlite:///{tmp_path / 'theirs.db'}#plans")
    nowhere = destination(f"sqlite:///{tmp_path / 'no' / 'such' / 'folder.db'}#plans")
    assert isinstance(theirs, SqlTable) and isinstance(nowhere, SqlTable)
    for target, said in (
        (theirs, f"the table {theirs} lacks the column(s) account_id"),
        (nowhere, f"cannot write to {nowhere}: OperationalError"),
    ):
        with pytest.raises(RetainError) as refused, batch_table(target, "week", COLUMNS, unique="account_id"):
            pass
        assert said in str(refused.value)
    # a table an earlier Retain made gains the nullable columns a newer one writes
    earlier = destination(f"sqlite:///{tmp_path / 'theirs.db'}#earlier")
    assert isinstance(earlier, SqlTable)
    with batch_table(earlier, "week", COLUMNS, unique="account_id"):
        pass
    assert [c["name"] for c in sa.inspect(engine).get_columns("earlier")] == [
        "week",
        "account_id",
        "p",
        "held",
    ]
    engine.dispose()
