"""What a logged model carries so that it loads outside this project: its code and its pip requirements.

Unpickling the model imports `registry.pyfunc`, `training.artifact`, `training.causal.uplift` and whatever
those import in turn. Retain is not on PyPI, so the model carries copies of exactly those modules as
MLflow `code_paths` (copied into the model's `code/` folder, which MLflow puts first on `sys.path` before
unpickling) and pins the distributions they import. `mlflow models serve --env-manager local` then works
from a fresh virtualenv holding only the model's `requirements.txt`.
"""

from __future__ import annotations

import ast
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from importlib.metadata import version
from importlib.util import find_spec
from pathlib import Path

from core.errors import RetainError

#: Retain's top-level packages: imports of these are followed, any other must come from PyPI
PACKAGES = (
    "core",
    "store",
    "ingest",
    "simulate",
    "features",
    "training",
    "registry",
    "serving",
    "products",
    "retain",
)
#: where unpickling starts: the pyfunc wrapper, whose imports reach both model classes
ENTRY = "registry.pyfunc"
#: the distribution that provides each top-level name the model's code imports
DISTRIBUTIONS = {
    "lightgbm": "lightgbm",
    "mlflow": "mlflow",
    "numba": "numba",
    "numpy": "numpy",
    "pandas": "pandas",
    "pyarrow": "pyarrow",
    "sklearn": "scikit-learn",
}
#: needed though no module of ours imports it: MLflow pickles the pyfunc wrapper with it
PICKLER = "cloudpickle"


@dataclass(frozen=True)
class ModelCode:
    """The Retain modules a model needs (parent packages included), and what else they import."""

    modules: tuple[str, ...]
    #: top-level names outside Retain and the standard library, e.g. `sklearn`
    imports: frozenset[str]


def imported_names(source: str) -> Iterator[str]:
    """Every absolute name an import in `source` mentions, inside functions too: `from a.b import c`
    gives `a.b` and `a.b.c`, since `c` may be a module."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def _modules_along(dotted: str) -> list[str]:
    """The modules a dotted name passes through: `training.causal.uplift.UpliftModel` gives training,
    training.causal and training.causal.uplift."""
    parts = dotted.split(".")
    found: list[str] = []
    for end in range(1, len(parts) + 1):
        spec = find_spec(".".join(parts[:end]))
        if spec is None:
            break
        found.append(spec.name)
        if spec.submodule_search_locations is None:
            break
    return found


def _origin(module: str) -> Path:
    spec = find_spec(module)
    if spec is None or spec.origin is None:
        raise RetainError(f"the model's code imports {module}, which has no source file")
    return Path(spec.origin)


@cache
def model_code(entry: str = ENTRY) -> ModelCode:
    """Follow the imports of `entry` through Retain's packages, reading sources without running them."""
    modules: set[str] = set()
    imports: set[str] = set()
    pending = _modules_along(entry)
    while pending:
        module = pending.pop()
        if module in modules:
            continue
        modules.add(module)
        for name in imported_names(_origin(module).read_text()):
            top = name.partition(".")[0]
            if top in PACKAGES:
                pending.extend(_modules_along(name))
            elif top not in sys.stdlib_module_names:
                imports.add(top)
    return ModelCode(tuple(sorted(modules)), frozenset(imports))


def copy_code(code: ModelCode, folder: Path) -> list[str]:
    """Copy the modules into `folder` in their package layout; returns the top-level package folders,
    which are what `code_paths` takes."""
    for module in code.modules:
        origin = _origin(module)
        relative = Path(*module.split("."))
        is_package = origin.name == "__init__.py"
        target = folder / relative / "__init__.py" if is_package else (folder / relative).with_suffix(".py")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(origin, target)
    return [str(folder / top) for top in sorted({module.partition(".")[0] for module in code.modules})]


def pip_requirements(code: ModelCode) -> list[str]:
    """The distributions the code imports, and the pickler, pinned to the versions installed here."""
    unknown = code.imports - DISTRIBUTIONS.keys()
    if unknown:
        raise RetainError(
            f"the model's code imports {', '.join(sorted(unknown))}: "
            "add the distribution behind it to registry.environment.DISTRIBUTIONS"
        )
    names = sorted({DISTRIBUTIONS[name] for name in code.imports} | {PICKLER})
    return [f"{name}=={version(name)}" for name in names]
