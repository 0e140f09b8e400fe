"""Running the causal report through the CLI and reading its effects, as the report tests do."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from retain.cli import app

#: the fields every estimated effect in report.json carries
EFFECT_KEYS = {
    "treatment",
    "outcome",
    "ate",
    "ci_low",
    "ci_high",
    "naive_difference",
    "n_treated",
    "n_control",
}


def report(args: list[str], out: Path) -> dict[str, Any]:
    result = CliRunner().invoke(app, ["report", "causal", *args, "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary == {
        "html": str(out / "report.html"),
        "json": str(out / "report.json"),
        "effects": summary["effects"],
        "covariates_dropped": summary["covariates_dropped"],
        "covariates_suspect": summary["covariates_suspect"],
        "robustness": summary["robustness"],
        "program": summary["program"],
        "cross_check": summary["cross_check"],
    }
    loaded: dict[str, Any] = json.loads((out / "report.json").read_text(), parse_constant=_no_nan)
    assert summary["effects"] == len(loaded["effects"])
    assert summary["covariates_dropped"] == loaded["covariates_dropped"]
    assert summary["covariates_suspect"] == loaded["covariates_suspect"]
    assert summary["program"] == loaded["program"]
    assert summary["cross_check"] == loaded["cross_check"]
    # the summary says how robust each effect whose interval excludes zero is
    clear = [
        (e["treatment"], e["outcome"]) for e in loaded["effects"] if not e["ci_low"] <= 0 <= e["ci_high"]
    ]
    assert [(s["treatment"], s["outcome"]) for s in summary["robustness"]] == clear
    assert all(s in loaded["sensitivity"] for s in summary["robustness"])
    return loaded


def _no_nan(constant: str) -> None:
    raise AssertionError(f"report.json holds {constant}")


def contains(effect: dict[str, Any], value: float) -> bool:
    return bool(effect["ci_low"] <= value <= effect["ci_high"])
