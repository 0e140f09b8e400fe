"""The house rules a newcomer relies on: layers import one way, functions stay short, boundaries are typed
and the manual stays a manual (tests/unit/test_docs.py keeps the documents true to the code)."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: the top-level packages, each one floor: the import-linter contract's root packages
PACKAGES = tuple(
    tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["root_packages"]
)
MAX_FUNCTION_LINES = 60
#: a shipped module longer than this says why in its docstring, on a line starting `Over 500 lines:`
MAX_MODULE_LINES = 500
MAX_README_BYTES = 12 * 1024


def _python_files(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


def _lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    lint = Path(sys.executable).with_name("lint-imports")
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(lint), "--no-cache"], cwd=tree, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def copied_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The packages and their import-linter contracts, copied so a test may break them."""
    tree = tmp_path_factory.mktemp("layers")
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tree / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    return tree


def test_the_layers_hold(copied_tree: Path) -> None:
    kept = _lint_imports(copied_tree)
    assert kept.returncode == 0, kept.stdout + kept.stderr


@pytest.mark.parametrize(
    ("module", "above"),
    [
        ("core/errors.py", "serving.app"),
        ("store/delta.py", "ingest.readers"),
        ("serving/errors.py", "retain.api"),
        ("features/health.py", "products.plan"),
    ],
)
def test_a_top_level_folder_importing_one_above_it_breaks_the_lint(
    copied_tree: Path, module: str, above: str
) -> None:
    path = copied_tree / module
    original = path.read_text()
    path.write_text(original + f"\nimport {above}  # noqa: E402,F401\n")
    try:
        broken = _lint_imports(copied_tree)
    finally:
        path.write_text(original)
    assert broken.returncode != 0
    assert "Top-level folders import one way" in broken.stdout
    importer = module.removesuffix(".py").replace("/", ".")
    assert f"{importer} -> {above}" in broken.stdout


def test_an_import_cycle_inside_a_package_breaks_the_lint(copied_tree: Path) -> None:
    low = copied_tree / "training" / "labels.py"
    original = low.read_text()
    low.write_text(original + "\nimport training.run  # noqa: E402,F401\n")
    try:
        broken = _lint_imports(copied_tree)
    finally:
        low.write_text(original)
    assert broken.returncode != 0
    assert "No import cycles" in broken.stdout


def test_no_shipped_function_is_over_60_lines() -> None:
    long = []
    for path in _python_files(*PACKAGES):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, "\n".join(long)


def test_no_shipped_module_is_over_500_lines_without_its_reason() -> None:
    """A long module is usually two ideas; one that is not says so where a reader starts."""
    unexplained = []
    for path in _python_files(*PACKAGES):
        text = path.read_text()
        lines = text.count("\n")
        docstring = ast.get_docstring(ast.parse(text)) or ""
        said = any(line.startswith("Over 500 lines: ") for line in docstring.splitlines())
        if lines > MAX_MODULE_LINES and not said:
            unexplained.append(f"{path.relative_to(ROOT)} ({lines} lines)")
    assert not unexplained, "\n".join(unexplained)


def _public_signatures_with_untyped_dicts(paths: list[Path]) -> list[str]:
    found = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) or node.name.startswith("_"):
                continue
            annotations = [a.annotation for a in node.args.args + node.args.kwonlyargs] + [node.returns]
            text = " ".join(ast.unparse(a) for a in annotations if a is not None)
            if re.search(r"dict\[str,\s*Any\]", text):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}")
    return found


def test_serving_and_the_cli_have_no_untyped_dicts_in_public_signatures() -> None:
    paths = _python_files("serving", "retain/cli", "retain/api")
    found = _public_signatures_with_untyped_dicts(paths)
    assert not found, "\n".join(found)


def test_the_readme_is_a_manual_of_at_most_12_kb() -> None:
    """Reference parts live in docs/ (the CLI's in docs/cli.md, generated), linked from the manual."""
    assert (ROOT / "README.md").stat().st_size <= MAX_README_BYTES
