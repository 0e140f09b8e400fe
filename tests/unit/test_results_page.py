"""docs/results.md is generated from stamped JSON for a person to read: each section leads with its headline
figures beside their peers and aims, names the run they came from and links its JSON, and the committed page
is what the committed JSON renders to."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from experiments.results import PAGE, RESULTS_DIR, SOURCES, main, record, render

MAX_PAGE_BYTES = 25 * 1024
HEADLINE_HEADER = "| figure | measured | peer | aim | met |"


def _sections(page: str) -> dict[str, str]:
    """Each `## ` section's body by its title, the page's overview left out."""
    parts = page.split("\n## ")[1:]
    return {p.split("\n", 1)[0]: p for p in parts if not p.startswith("At a glance")}


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


def test_the_committed_page_is_what_the_committed_json_renders_to() -> None:
    assert PAGE.read_text() == render(RESULTS_DIR), "docs/results.md is stale: run `make results`"


def test_the_page_is_at_most_25_kb() -> None:
    assert PAGE.stat().st_size <= MAX_PAGE_BYTES


def test_every_section_leads_with_its_headline_table_of_peers_and_aims() -> None:
    sections = _sections(PAGE.read_text())

    assert set(sections) == {s.title for s in SOURCES}
    for title, body in sections.items():
        lines = body.split("\n")
        # the title, a blank line, the headline sentence, a blank line, then the table
        assert lines[4] == HEADLINE_HEADER, title
        assert lines[6].startswith("| ") and lines[6].count(" | ") == 4, title


def test_every_run_links_its_json_and_names_its_stamp() -> None:
    sections = _sections(PAGE.read_text())
    by_name = {s.name: sections[s.title] for s in SOURCES}

    for path in sorted(RESULTS_DIR.glob("*.json")):
        payload = json.loads(path.read_text())
        body = by_name[path.stem]
        assert f"[{path.stem}.json](../experiments/results/{path.name})" in body
        assert f"`{payload['commit'][:10]}`" in body and f"`{payload['command']}`" in body
        flattened = re.findall(r"\| `[\w\[\]]+(?:\.[\w\[\]]+)+` \|", body)
        assert not flattened, f"figures are linked, not flattened: {flattened[:3]}"


def test_every_plot_on_the_page_is_in_docs() -> None:
    plots = re.findall(r"!\[[^\]]+\]\(([^)]+\.png)\)", PAGE.read_text())

    assert len(plots) >= 5
    for png in plots:
        assert (PAGE.parent / png).is_file(), png


def test_the_page_shows_each_run_under_its_stamp_and_says_which_runs_are_missing(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    shutil.copy(RESULTS_DIR / "serving.json", results / "serving.json")
    stamped = json.loads((results / "serving.json").read_text())
    stamped.update(dirty=True, commit="0123456789abcdef0123456789abcdef01234567")
    (results / "serving.json").write_text(json.dumps(stamped))
    (results / "homemade.json").write_text(json.dumps({"figures": [{"rows": 12_345}]}))
    out = tmp_path / "docs" / "results.md"

    assert main(["--results", str(results), "--out", str(out)]) == 0
    page = out.read_text()

    serving = page.split("## Serving latency and throughput")[1].split("\n## ")[0]
    assert "`0123456789`, with uncommitted changes" in serving
    aims = stamped["figures"]["aims"]
    p50 = f"| p50 latency, one request at a time | {aims['p50_ms']['value']:.4g} ms |"
    assert p50 in serving
    assert "[serving.json](../results/serving.json)" in serving
    assert (out.parent / "results-serving.png").is_file()
    for source in SOURCES:
        if source.name != "serving":
            assert f"Not run yet: `{source.run}` measures it." in page
    homemade = page.split("## homemade")[1]
    assert HEADLINE_HEADER in homemade and "[homemade.json](../results/homemade.json)" in homemade
    assert page == render(results, out.parent)
