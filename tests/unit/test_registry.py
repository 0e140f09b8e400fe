"""The registry's pure parts: model references, the promotion rule and its table, and what a logged model
carries so that it loads outside this project."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import pytest
from rich.console import Console

from core.errors import RetainError
from registry.aliases import CHALLENGER, CHAMPION
from registry.environment import DISTRIBUTIONS, ModelCode, copy_code, model_code, pip_requirements
from registry.models import parse_ref
from registry.promotion import Comparison, Promotion, Scores, VersionScores, comparison_table, scoring_gate


def test_parse_ref() -> None:
    assert parse_ref("churn") == ("churn", CHAMPION, None)
    assert parse_ref("churn@challenger") == ("churn", CHALLENGER, None)
    assert parse_ref("churn/3") == ("churn", None, "3")
    for bad in ("churn/x", "@champion", "churn@"):
        with pytest.raises(RetainError):
            parse_ref(bad)


def test_the_scoring_gate_allows_a_small_auc_drop_but_no_worse_brier() -> None:
    champion = Scores(auc=0.80, brier=0.150)
    assert scoring_gate(champion, Scores(auc=0.796, brier=0.150))[0]
    assert not scoring_gate(champion, Scores(auc=0.794, brier=0.140))[0]
    passed, verdict = scoring_gate(champion, Scores(auc=0.90, brier=0.151))
    assert not passed and verdict.endswith("Brier 0.1510 vs 0.1500 (may not rise): fails")


def test_the_comparison_table_shows_the_shared_window_and_the_training_figures() -> None:
    result = Promotion(
        name="churn",
        champion_before="1",
        verdict="ok",
        scores=Comparison(
            champion=VersionScores(version="1", auc=0.8, brier=0.15, at_training={"test_auc": 0.79}),
            challenger=VersionScores(version="2", auc=0.81, brier=0.14, at_training={"test_auc": 0.82}),
        ),
        decision="promoted",
        reason="ok",
        champion="2",
    )
    console = Console(width=120, record=True)
    console.print(comparison_table(result))
    text = console.export_text()
    assert "champion v1" in text and "challenger v2" in text
    assert "auc (shared window)" in text and "+0.0100" in text and "-0.0100" in text
    assert "test_auc (own test window)" in text and "churn_averted" not in text
    assert result.model_dump(exclude_none=True).keys() == {
        "name", "champion_before", "verdict", "scores", "decision", "reason", "champion"
    }  # fmt: skip


def test_the_model_carries_the_modules_unpickling_imports_and_nothing_above_them() -> None:
    code = model_code()
    needed = {"registry.pyfunc", "training.artifact", "training.causal.uplift", "core.contract"}
    parents = {"registry", "training", "training.causal", "core", "features"}
    assert needed | parents <= set(code.modules)
    unneeded = ("serving", "retain", "products", "store", "simulate", "training.run", "features.run")
    assert not [m for m in code.modules if m.startswith(unneeded)]
    assert code.imports == DISTRIBUTIONS.keys()


def test_the_copied_code_keeps_the_package_layout(tmp_path: Path) -> None:
    code = model_code()
    paths = copy_code(code, tmp_path)
    assert paths == [str(tmp_path / top) for top in ("core", "features", "registry", "training")]
    copied = {
        ".".join(p.relative_to(tmp_path).with_suffix("").parts).removesuffix(".__init__")
        for p in tmp_path.rglob("*.py")
    }
    assert copied == set(code.modules)


def test_requirements_pin_the_installed_versions_and_refuse_an_unknown_import() -> None:
    pins = pip_requirements(model_code())
    assert f"scikit-learn=={version('scikit-learn')}" in pins
    assert f"cloudpickle=={version('cloudpickle')}" in pins
    assert len(pins) == len(DISTRIBUTIONS) + 1
    with pytest.raises(RetainError, match="imports shap"):
        pip_requirements(ModelCode(modules=(), imports=frozenset({"numpy", "shap"})))
