"""Documents that cannot drift from the code: the architecture names every shipped module, the layer chain
is the import-linter contract, the CLI reference is the Typer app's, and every path a document names
exists."""

from __future__ import annotations

import ast
import re
import subprocess
import tomllib
from pathlib import Path

from experiments.cli_docs import PAGE, render

ROOT = Path(__file__).resolve().parents[2]
#: the top-level packages, each one floor: the import-linter contract's root packages
PACKAGES = tuple(
    tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["root_packages"]
)
ARCHITECTURE = ROOT / "docs" / "architecture.md"
TICKED = re.compile(r"`([^`\n]+)`")


def _section(text: str, heading: str) -> str:
    """The text under a `## heading`, up to the next heading of that level."""
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def _holds_something(init: Path) -> bool:
    """An `__init__.py` holds something when it defines more than a docstring, imports and `__all__`."""
    for node in ast.parse(init.read_text()).body:
        if isinstance(node, ast.Expr | ast.Import | ast.ImportFrom):
            continue
        targets = node.targets if isinstance(node, ast.Assign) else []
        if [ast.unparse(target) for target in targets] == ["__all__"]:
            continue
        return True
    return False


def _shipped_modules() -> set[str]:
    modules = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "__pycache__" in path.parts or (path.name == "__init__.py" and not _holds_something(path)):
                continue
            modules.add(str(path.relative_to(ROOT)))
    return modules


def _modules_named_in_where_things_live() -> set[str]:
    where = _section(ARCHITECTURE.read_text(), "Where things live")
    return {name for name in TICKED.findall(where) if name.endswith(".py") and name.startswith(PACKAGES)}


def test_the_architecture_names_every_shipped_module() -> None:
    missing = _shipped_modules() - _modules_named_in_where_things_live()
    assert not missing, "add to docs/architecture.md, 'Where things live':\n" + "\n".join(sorted(missing))


def test_the_architecture_names_no_module_that_is_gone() -> None:
    gone = _modules_named_in_where_things_live() - _shipped_modules()
    assert not gone, "docs/architecture.md names modules that are not shipped:\n" + "\n".join(sorted(gone))


def _contract_layers() -> list[set[str]]:
    """The import-linter contract of pyproject.toml's top-level folders, from the floor up."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c["layers"] for c in config["contracts"] if c["type"] == "layers" and "containers" not in c]
    return [{name.strip() for name in layer.split("|")} for layer in reversed(layers)]


def test_contributing_states_the_layer_chain_of_the_contract() -> None:
    text = (ROOT / "CONTRIBUTING.md").read_text()
    chain = _section(text, "The layers").split("from the floor up:", 1)[1].split("(", 1)[0]
    stated = [set(TICKED.findall(layer)) for layer in chain.split("→")]
    assert stated == _contract_layers()


def test_the_architecture_table_of_layers_is_the_contract() -> None:
    layers = _section(ARCHITECTURE.read_text(), "Layers, from the floor up")
    rows = re.findall(r"^\| \d+b?\. [^|]*\|([^|]*)\|", layers, flags=re.MULTILINE)
    assert [set(TICKED.findall(row)) for row in rows] == _contract_layers()


def test_the_cli_reference_is_generated_from_the_app() -> None:
    assert PAGE.read_text() == render(), "docs/cli.md is stale: run `make cli-docs`"


def _tracked_files() -> list[str]:
    return subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()


FILES = _tracked_files()
#: every folder of the repository, as a path relative to its root
FOLDERS = {str(parent) for name in FILES for parent in Path(name).parents if str(parent) != "."}
#: the suffixes the repository's files have: a token ending in one of them is a path
SUFFIXES = {Path(name).suffix for name in FILES if Path(name).suffix}
#: folders Retain writes into a store or a simulation's output, named in documents by their own names
WRITTEN_AT_RUN = {"lake", "feast", "mlflow", "truth", "events", "out"}
#: markdown Retain writes (an MLflow run's model card), not a document of the repository
WRITTEN_BY_RETAIN = {"model_card.md"}
FENCED = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#+ (.+)$", re.MULTILINE)


def _resolves(path: str, folder: Path) -> str | None:
    """`path` relative to `folder` (a folder of the repository) as a path from the root, if inside it."""
    resolved = (ROOT / folder / path).resolve()
    return str(resolved.relative_to(ROOT)) if resolved.is_relative_to(ROOT) else None


def _exists(path: str, folders: tuple[Path, ...]) -> bool:
    """Whether a path names a file or folder of the repository from one of `folders`; a glob matches one."""
    for folder in folders:
        if any(char in path for char in "*?["):
            if any((ROOT / folder).glob(path)):
                return True
            continue
        found = _resolves(path, folder)
        if found in FOLDERS or (not path.endswith("/") and found in FILES):
            return True
    return False


def _slug(heading: str) -> str:
    """A heading's anchor, as GitHub makes it."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: str) -> set[str]:
    return {_slug(heading) for heading in HEADING.findall(FENCED.sub("", (ROOT / page).read_text()))}


def _broken_link(target: str, name: str) -> bool:
    """Whether a link of the Markdown file `name` misses: its file, folder or heading is not there."""
    if re.match(r"[a-z][a-z+.-]*:", target):
        return False
    path, _, anchor = target.partition("#")
    page = _resolves(path, Path(name).parent) if path else name
    if page not in FILES and page not in FOLDERS:
        return True
    return bool(anchor) and page is not None and page.endswith(".md") and anchor not in _anchors(page)


def _is_path(token: str) -> bool:
    """A backticked token that names a path of the repository: `products/plan.py`, `docs/`, `results.md`."""
    if " " in token or "://" in token or token.startswith(("/", "$", "-")):
        return False
    if not (token.endswith("/") or Path(token).suffix in SUFFIXES):
        return False
    first, _, rest = token.partition("/")
    if first.isupper() or first in WRITTEN_AT_RUN or token in WRITTEN_BY_RETAIN:
        return False
    return bool(rest.rstrip("/")) or token.endswith(".md")


def _broken_in_markdown(name: str) -> list[str]:
    """The links and backticked paths of one Markdown file that name nothing in the repository."""
    folder = Path(name).parent
    text = FENCED.sub("", (ROOT / name).read_text())
    broken = [target for target in LINK.findall(text) if _broken_link(target, name)]
    for token in TICKED.findall(text):
        if _is_path(token) and not _exists(token, (Path(), folder)):
            broken.append(f"`{token}`")
    return [f"{name}: {reference}" for reference in broken]


def test_every_link_and_path_in_the_markdown_names_what_the_repository_has() -> None:
    """Links resolve from their file's folder (with their heading, if they name one); a backticked path
    resolves from the root or from its file's folder."""
    broken = [found for name in FILES if name.endswith(".md") for found in _broken_in_markdown(name)]
    assert not broken, "\n".join(broken)


#: a Markdown file named in code, configuration or a notebook
CITED = re.compile(r"\b[A-Za-z_][\w./-]*\.md\b")
TEXT_SUFFIXES = {".py", ".toml", ".yaml", ".ipynb", ".html", ".sql", ".cfg", ".css"}


def test_no_file_cites_a_document_the_repository_does_not_have() -> None:
    """Every `*.md` a non-Markdown file names exists: a path from the root or from the file's folder, a bare
    name as some file's name; design notes outside the repository are not cited."""
    names = {Path(name).name for name in FILES} | WRITTEN_BY_RETAIN
    missing = []
    for name in FILES:
        if Path(name).suffix not in TEXT_SUFFIXES and name != "Makefile":
            continue
        text = (ROOT / name).read_text(errors="replace")
        for cited in sorted(set(CITED.findall(text))):
            found = _exists(cited, (Path(), Path(name).parent)) if "/" in cited else cited in names
            if not found:
                missing.append(f"{name}: {cited}")
        if "../shared" in text and name != str(Path(__file__).relative_to(ROOT)):
            missing.append(f"{name}: ../shared")
    assert not missing, "\n".join(missing)
