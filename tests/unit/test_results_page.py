"""docs/results.md is generated from stamped JSON: every figure shown names the run it came from."""

from __future__ import annotations

import json
from pathlib import Path

from experiments.results import SOURCES, flatten, main, record, render


def test_a_recorded_run_is_stamped_with_date_commit_and_command(tmp_path: Path) -> None:
    path = record(
        "features", "experiments.benchmarks.features", ["--sizes", "1e5"], {"speedup": 1.5}, tmp_path
    )

    payload = json.loads(path.read_text())

    assert path == tmp_path / "features.json"
    assert payload["command"] == "python -m experiments.benchmarks.features --sizes 1e5"
    assert len(payload["commit"]) == 40 or payload["commit"] == "unknown"
    assert isinstance(payload["dirty"], bool)
    assert payload["date"][:2] == "20"
    assert payload["figures"] == {"speedup": 1.5}


def test_the_page_shows_each_figure_under_its_stamp_and_says_which_runs_are_missing(tmp_path: Path) -> None:
    stamped = {
        "name": "uplift",
        "date": "2030-01-02T03:04:05+00:00",
        "commit": "0123456789abcdef0123456789abcdef01234567",
        "dirty": True,
        "command": "python -m experiments.benchmarks.uplift --accounts 500",
        "figures": {"timings_s": {"train": 12.5}, "policy": {"share_of_oracle": {"uplift": 0.5731}}},
    }
    (tmp_path / "uplift.json").write_text(json.dumps(stamped))
    (tmp_path / "homemade.json").write_text(json.dumps({"figures": [{"rows": 12_345}]}))
    out = tmp_path / "results.md"

    assert main(["--results", str(tmp_path), "--out", str(out)]) == 0
    page = out.read_text()

    uplift = page.split("## Uplift training and ranking")[1].split("\n## ")[0]
    assert "- date: 2030-01-02T03:04:05+00:00" in uplift
    assert "`0123456789abcdef0123456789abcdef01234567` (with uncommitted changes)" in uplift
    assert "`python -m experiments.benchmarks.uplift --accounts 500`" in uplift
    assert "| `timings_s.train` | 12.5 |" in uplift
    assert "| `policy.share_of_oracle.uplift` | 0.5731 |" in uplift
    for source in SOURCES:
        if source.name != "uplift":
            assert f"Not run yet: `{source.run}`" in page
    assert "## homemade" in page and "| `[0].rows` | 12,345 |" in page
    assert page == render(tmp_path)


def test_flatten_keeps_short_lists_whole_and_indexes_nested_ones() -> None:
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": [{"e": 3}]}) == [
        ("a.b", 1),
        ("a.c", [1, 2]),
        ("d[0].e", 3),
    ]
