"""Scores and plans into a database table for reverse-ETL (`--out URL#TABLE`), through the CLI, on a real
PostgreSQL and on SQLite: the rows equal the Parquet's or the CSV's, a batch run again replaces its rows
and another cutoff or week adds its own; a bad URL, a missing table and a database out of reach are said
in words, exit 2, never show the password, and write nothing."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from core.urls import sqlalchemy_url
from features.stored import read_features, stored_cutoffs
from products.plan import COLUMNS
from retain.cli import app, main
from store.plan_table import recorded_plans
from tests.support.served import World
from tests.support.worlds import UpliftWorld

CAPACITY = "6"
PASSWORD = "s3cret-pw"
#: PostgreSQL's URL with a password, on a port nothing listens on
UNREACHABLE = f"postgresql://postgres:{PASSWORD}@127.0.0.1:1/crm"


@pytest.fixture
def read(database_url: str) -> Iterator[Any]:
    """The rows of a table in `database_url`, ordered by key and account."""
    engine = sa.create_engine(sqlalchemy_url(database_url))

    def rows(table: str, key: str) -> pd.DataFrame:
        with engine.connect() as connection:
            found = pd.read_sql(sa.text(f"SELECT * FROM {table}"), connection)
        found[key] = pd.to_datetime(found[key]).dt.date
        return found.sort_values([key, "account_id"], ignore_index=True)

    yield rows
    engine.dispose()


def cli(*args: str) -> dict[str, Any]:
    """`retain ARGS --json`, which must succeed; its result."""
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    said: dict[str, Any] = json.loads(result.stdout)
    return said


def refused(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> str:
    """`retain ARGS`, which must exit 2; its one error line, which never shows the password."""
    monkeypatch.setattr(sys, "argv", ["retain", *args])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert PASSWORD not in err and "Traceback" not in err
    return " ".join(err.split())


# -- scores --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scored_file(served_world: World, tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """The newest cutoff's batch as the Parquet file has it."""
    out = tmp_path_factory.mktemp("scores") / "scores.parquet"
    said = cli(
        "score",
        "--store",
        str(served_world.store.root),
        "--cutoff",
        str(served_world.latest),
        "--out",
        str(out),
    )
    assert said["out"] == str(out)
    return pd.read_parquet(out).sort_values("account_id", ignore_index=True)


def test_scores_replace_their_cutoffs_rows_and_another_cutoff_adds(
    served_world: World, scored_file: pd.DataFrame, database_url: str, read: Any
) -> None:
    store, latest = str(served_world.store.root), served_world.latest
    before = stored_cutoffs(served_world.store)[-2]
    out = f"{database_url}#churn_scores"
    said = cli("score", "--store", store, "--cutoff", str(latest), "--out", out)
    assert said["out"] == out and said["rows"] == len(scored_file)
    table = read("churn_scores", "cutoff")
    assert list(table.columns) == ["cutoff", *scored_file.columns]
    assert set(table["cutoff"]) == {latest}
    pd.testing.assert_frame_equal(table.drop(columns="cutoff"), scored_file, check_dtype=False)

    cli("score", "--store", store, "--cutoff", str(before), "--out", out)
    cli("score", "--store", store, "--cutoff", str(latest), "--out", out)
    table = read("churn_scores", "cutoff")
    counts = table.groupby("cutoff").size().to_dict()
    active_before = read_features(served_world.store, ["account_id", "cutoff"]).to_pandas()
    assert counts == {before: (active_before["cutoff"].dt.date == before).sum(), latest: len(scored_file)}
    again = table[table["cutoff"] == latest].drop(columns="cutoff").reset_index(drop=True)
    pd.testing.assert_frame_equal(again, scored_file, check_dtype=False)


# -- plans ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def monday(uplift_world: UpliftWorld) -> date:
    """The Monday on or before the feature table's latest cutoff: inside the store's span."""
    day = read_features(uplift_world.store, columns=["cutoff"])["cutoff"].to_pandas().max().date()
    return day - timedelta(days=day.weekday())


@pytest.fixture(scope="module")
def planned_file(
    uplift_world: UpliftWorld, monday: date, tmp_path_factory: pytest.TempPathFactory
) -> pd.DataFrame:
    """The week's plan as the CSV has it."""
    out = tmp_path_factory.mktemp("plans") / "plan.csv"
    args = ["--store", str(uplift_world.store.root), "--week", str(monday), "--capacity-hours", CAPACITY]
    cli("plan", *args, "--out", str(out))
    return pd.read_csv(out, dtype={"csm_id": str}).sort_values("account_id", ignore_index=True)


def test_a_plan_replaces_its_weeks_rows_and_another_week_adds(
    uplift_world: UpliftWorld, monday: date, planned_file: pd.DataFrame, database_url: str, read: Any
) -> None:
    args = ["--store", str(uplift_world.store.root), "--capacity-hours", CAPACITY]
    out = f"{database_url}#weekly_plan"
    said = cli("plan", *args, "--week", str(monday), "--out", out)
    assert said["out"] == out and said["rows"] == len(planned_file)
    table = read("weekly_plan", "week")
    assert list(table.columns) == ["week", *COLUMNS] and set(table["week"]) == {monday}
    # typed: the holdout a boolean, its action NULL where the CSV has an empty cell
    plan = table.drop(columns="week").assign(holdout=table["holdout"].astype(bool))
    assert plan.loc[plan["holdout"], "action"].isna().all() and plan["holdout"].any()
    as_none = [frame.astype(object).where(frame.notna(), None) for frame in (plan, planned_file)]
    pd.testing.assert_frame_equal(*as_none)

    earlier = monday - timedelta(days=7)
    cli("plan", *args, "--week", str(earlier), "--out", out)
    cli("plan", *args, "--week", str(monday), "--out", out)
    table = read("weekly_plan", "week")
    recorded = recorded_plans(uplift_world.store)
    weeks = table.groupby("week").size().to_dict()
    assert set(weeks) == {earlier, monday} and weeks[monday] == len(planned_file)
    assert weeks[earlier] == (recorded["arm"] != "none")[recorded["week"].dt.date == earlier].sum()
    assert table[table["week"] == monday]["account_id"].tolist() == planned_file["account_id"].tolist()


def test_a_plan_table_an_earlier_retain_made_gains_the_propensity_column(
    uplift_world: UpliftWorld, monday: date, database_url: str, read: Any
) -> None:
    engine = sa.create_engine(sqlalchemy_url(database_url))
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TABLE earlier_plan (week DATE, account_id VARCHAR, action VARCHAR, csm_id VARCHAR, "
            "expected_value FLOAT, holdout BOOLEAN NOT NULL, PRIMARY KEY (week, account_id))"
        )
        connection.exec_driver_sql(
            "INSERT INTO earlier_plan VALUES ('2020-01-06', 'acc-old', 'in_app_nudge', NULL, 1.5, FALSE)"
        )
    engine.dispose()
    args = ["--store", str(uplift_world.store.root), "--capacity-hours", CAPACITY, "--week", str(monday)]
    cli("plan", *args, "--out", f"{database_url}#earlier_plan")
    table = read("earlier_plan", "week")
    assert list(table.columns) == ["week", *COLUMNS]
    old = table[table["account_id"] == "acc-old"]
    assert len(old) == 1 and old["propensity"].isna().all(), "the earlier row is kept, its propensity NULL"
    assert table.loc[table["week"] == monday, "propensity"].between(0, 1).all()


# -- refusals ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("out", "said"),
    [
        (f"mysql://root:{PASSWORD}@db/crm#scores", "mysql:// is not supported"),
        (f"postgresql://postgres:{PASSWORD}@db:port/crm#scores", "is not a database URL"),
        (f"postgresql://postgres:{PASSWORD}@db:5432/crm", "names no table: end it with #TABLE"),
    ],
)
@pytest.mark.parametrize("command", ["score", "plan"])
def test_a_bad_url_or_a_missing_table_exits_2_in_words(
    command: str,
    out: str,
    said: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    when = (
        ["--cutoff", "2025-06-30"]
        if command == "score"
        else ["--week", "2025-06-30", "--capacity-hours", "6"]
    )
    err = refused([command, "--store", str(tmp_path / "store"), *when, "--out", out], monkeypatch, capsys)
    assert said in err and ":***@db" in err
    assert not (tmp_path / "store").exists(), "refused before the store is opened"


def test_a_database_out_of_reach_is_said_by_its_redacted_url_and_nothing_is_written(
    served_world: World,
    uplift_world: UpliftWorld,
    monday: date,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    shown = "postgresql://postgres:***@127.0.0.1:1/crm#scores"
    versions = {"scores": served_world.store.version("scores"), "plans": uplift_world.store.version("plans")}
    score = ["score", "--store", str(served_world.store.root), "--cutoff", str(served_world.latest)]
    err = refused([*score, "--out", f"{UNREACHABLE}#scores"], monkeypatch, capsys)
    assert f"cannot write to {shown}: OperationalError" in err
    plan = ["plan", "--store", str(uplift_world.store.root), "--week", str(monday), "--capacity-hours", "6"]
    err = refused([*plan, "--out", f"{UNREACHABLE}#scores"], monkeypatch, capsys)
    assert f"cannot write to {shown}: OperationalError" in err
    assert versions == {
        "scores": served_world.store.version("scores"),
        "plans": uplift_world.store.version("plans"),
    }
