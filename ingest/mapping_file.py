"""A YAML mapping file read with the line of every key, so a mistake is refused at its line.

Source mappings (a SQL source's column mapping, an event export's event and property mapping) are YAML
written by a person. A misspelt contract field would otherwise map nothing, silently; here the code that
checks a mapping names the key path it refuses, and the error says the file and the line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from core.errors import RetainError

#: a key's place in the file: the keys (or list indices) from the top down to it
KeyPath = tuple[str | int, ...]


@dataclass(frozen=True)
class MappingFile:
    """A mapping file's content as plain Python values, and the 1-based line of every key and item."""

    path: Path
    content: Any
    lines: dict[KeyPath, int]

    def refuse(self, at: KeyPath, message: str) -> RetainError:
        """An error naming the file and the line of `at` (its nearest enclosing key with a line)."""
        while at and at not in self.lines:
            at = at[:-1]
        return RetainError(f"{self.path}, line {self.lines.get(at, 1)}: {message}")


def read_mapping_file(path: Path) -> MappingFile:
    """Parse `path`; a file that is not YAML is refused at the line the parser stopped on."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise RetainError(f"cannot read the mapping file {path}: {e}") from e
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        line = e.problem_mark.line + 1 if e.problem_mark is not None else 1
        raise RetainError(f"{path}, line {line}: not valid YAML ({e.problem})") from e
    lines: dict[KeyPath, int] = {}
    content = _plain(node, (), lines) if node is not None else {}
    return MappingFile(Path(path), content, lines)


def _plain(node: yaml.Node, at: KeyPath, lines: dict[KeyPath, int]) -> Any:
    """The node as Python values (scalars as YAML's safe loader reads them), noting each key's line."""
    lines.setdefault(at, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node)
            key = key if isinstance(key, str | int) else str(key)
            lines[(*at, key)] = key_node.start_mark.line + 1
            out[key] = _plain(value_node, (*at, key), lines)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_plain(item, (*at, i), lines) for i, item in enumerate(node.value)]
    return _scalar(node)


def _scalar(node: yaml.Node) -> Any:
    return yaml.SafeLoader("").construct_object(node, deep=True)
