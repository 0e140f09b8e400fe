"""YAML read with the line of every value, so that a file a person wrote is refused at the line to fix.

A pydantic error names a path (`actions.save_offer.cost_usd`); `LocatedYaml.where` turns the path into
`file:line`, the line of the deepest part of the path the file has (a missing key: the mapping that lacks
it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pydantic
import yaml

from retain.core.errors import RetainError

Model = TypeVar("Model", bound=pydantic.BaseModel)
PathPart = str | int


@dataclass(frozen=True)
class LocatedYaml:
    """A YAML document as plain data, and the 1-based line each of its values starts on."""

    source: str
    text: str
    data: Any
    lines: dict[tuple[PathPart, ...], int]

    def where(self, path: Sequence[PathPart]) -> str:
        """`source:line` of the deepest known prefix of `path`."""
        parts = tuple(path)
        while parts and parts not in self.lines:
            parts = parts[:-1]
        return f"{self.source}:{self.lines.get(parts, 1)}"

    def validate(self, model: type[Model], at: tuple[PathPart, ...] = ()) -> Model:
        """The value at `at` as `model`, every error it has said at its line, all in one message."""
        value = self.data
        for part in at:
            value = value[part]
        try:
            return model.model_validate(value)
        except pydantic.ValidationError as e:
            said = [
                f"{self.where((*at, *error['loc']))}: {_dotted((*at, *error['loc']))}: {error['msg']}"
                for error in e.errors()
            ]
            raise RetainError("\n".join(said)) from None

    def refuse(self, path: Sequence[PathPart], message: str) -> RetainError:
        """An error about the value at `path`, to raise."""
        return RetainError(f"{self.where(path)}: {_dotted(path)}: {message}")


def read_located(text: str, source: str) -> LocatedYaml:
    """Parse one YAML document; a syntax error is said with its line."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise RetainError(f"{source}{line}: not valid YAML: {getattr(e, 'problem', None) or e}") from None
    lines: dict[tuple[PathPart, ...], int] = {}
    data = _plain(node, (), lines, source) if node is not None else None
    return LocatedYaml(source, text, data, lines)


def read_located_file(path: Path) -> LocatedYaml:
    try:
        text = path.read_text()
    except OSError as e:
        raise RetainError(f"cannot read {path}: {e.strerror or e}") from None
    return read_located(text, str(path))


def _plain(
    node: yaml.Node, path: tuple[PathPart, ...], lines: dict[tuple[PathPart, ...], int], source: str
) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            if key in out:
                raise RetainError(f"{source}:{key_node.start_mark.line + 1}: {key!r} is given twice")
            out[key] = _plain(value_node, (*path, key), lines, source)
            lines[(*path, key)] = key_node.start_mark.line + 1  # a person looks for the key
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_plain(item, (*path, i), lines, source) for i, item in enumerate(node.value)]
    return yaml.SafeLoader("").construct_object(node)


def _dotted(path: Sequence[PathPart]) -> str:
    return ".".join(str(p) for p in path) or "(document)"
