"""The CLI tells a person what it did, a program gets the whole result with --json, and bad input is one
line with exit code 2, never a traceback."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from retain.cli import app, main


def test_a_summary_by_default_and_the_whole_result_with_json(tmp_path: Path) -> None:
    runner = CliRunner()
    store, simulation = ["--store", str(tmp_path / "store")], tmp_path / "store" / "simulation"
    simulated = runner.invoke(app, ["simulate", *store, "--accounts", "20", "--days", "40", "--seed", "3"])
    assert simulated.exit_code == 0, simulated.output
    assert simulated.stdout.startswith("Simulated 20 accounts over 40 days from 2025-01-01 (seed 3)")
    assert f"telemetry in {simulation}" in simulated.stdout
    assert "simulating 20 accounts" in simulated.stderr, "the stage line goes to stderr"

    ingested = runner.invoke(app, ["ingest", str(simulation), *store])
    assert ingested.exit_code == 0, ingested.output
    title, header, *rows = ingested.stdout.splitlines()
    assert title.startswith(f"Ingested {simulation} into the store {tmp_path / 'store'}")
    assert header.split() == ["table", "accepted", "duplicates", "quarantined"]
    accepted = {row.split()[0]: int(row.split()[1].replace(",", "")) for row in rows}

    again = runner.invoke(app, ["ingest", str(simulation), *store, "--json"])
    assert again.exit_code == 0, again.output
    result = json.loads(again.stdout)
    assert result["duplicates"] == accepted and set(accepted) == {"accounts", "events", "interventions"}
    assert accepted["events"] > 0 and result["quarantined"]["total"] == 0


def test_simulate_holds_out_a_tenth_by_default_and_none_on_request(tmp_path: Path) -> None:
    runner = CliRunner()
    held = {}
    for name, extra in (("default", []), ("none", ["--holdout-share", "0"])):
        args = ["simulate", "--out", str(tmp_path / name), "--accounts", "200", "--days", "40", "--json"]
        done = runner.invoke(app, [*args, *extra])
        assert done.exit_code == 0, done.output
        held[name] = json.loads(done.stdout)["held_out"]
    # 200 accounts drawn at day 0 with probability 0.1
    assert 5 <= held["default"] <= 40 and held["none"] == 0, held
    refused = runner.invoke(app, ["simulate", "--out", str(tmp_path / "x"), "--holdout-share", "0.6"])
    assert refused.exit_code == 2 and "--holdout-share" in refused.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["simulate", "--start", "2025-02-30"], "--start: expected one date like 2025-06-30"),
        (["score", "--cutoff", "2025-06-30", "--model", "churn", "--out", "x"], "drop --model"),
        (["train", "--model", "churn_v2"], "--model: expected one of churn, expansion, uplift"),
        (["ingest", "nowhere"], "nowhere"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(
    args: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["retain", *args, "--store", str(tmp_path / "store")])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in captured.err
    assert captured.out == ""
