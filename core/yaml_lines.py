"""YAML read with the line of every value, so that a file a person wrote is refused at the line to fix.

A pydantic error names a path (`actions.save_offer.cost_usd`); `LocatedYaml.where` turns the path into
`file:line`, the line of the deepest part of the path the file has (a missing key: the mapping that lacks
it).

The file may come from anyone who can set `RETAIN_PLAYBOOK`, so reading it is bounded before any work
grows with it: its size, its depth of nesting and its count of values, checked on libyaml's event stream;
aliases (`*name`) are refused, as seven lines of nested aliases expand to a billion values; and only the
plain tags construct (`!!python/name:...` is refused at its line, not run).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pydantic
import yaml

from core.errors import RetainError

Model = TypeVar("Model", bound=pydantic.BaseModel)
PathPart = str | int
#: the largest file read: the built-in playbook of twelve actions is under 10 KB
MAX_BYTES = 256 * 1024
#: the deepest nesting of mappings and lists: a playbook nests six deep
MAX_DEPTH = 32
#: the most values (scalars, mappings and lists) in a document: the built-in playbook holds ~500
MAX_NODES = 20_000
#: libyaml's parser when installed (the pure-Python one reads ~100 KB a second)
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
#: the tags that construct plain data; any other (`!!python/name:os.system`) is refused
_PLAIN_TAGS = frozenset(tag for tag in yaml.SafeLoader.yaml_constructors if tag is not None)


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
    """Parse one YAML document, within the bounds above; a syntax error or a refusal is said with its
    line."""
    if len(text) > MAX_BYTES:
        raise RetainError(f"{source}: {len(text):,} characters; a YAML file here holds at most {MAX_BYTES:,}")
    try:
        _check_bounds(text, source)
        node = yaml.compose(text, Loader=_LOADER)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise RetainError(f"{source}{line}: not valid YAML: {getattr(e, 'problem', None) or e}") from None
    lines: dict[tuple[PathPart, ...], int] = {}
    data = _plain(node, (), lines, source) if node is not None else None
    return LocatedYaml(source, text, data, lines)


def read_located_file(path: Path) -> LocatedYaml:
    """The YAML file at `path`: at most MAX_BYTES (checked before it is read), UTF-8."""
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise RetainError(f"{path}: {size:,} bytes; a YAML file here is at most {MAX_BYTES:,}")
        data = path.read_bytes()
    except OSError as e:
        raise RetainError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise RetainError(
            f"{path}:{line}: not UTF-8 (byte 0x{data[e.start]:02x}); save the file as UTF-8"
        ) from None
    return read_located(text, str(path))


def _check_bounds(text: str, source: str) -> None:
    """Refuse an alias, nesting past MAX_DEPTH or more than MAX_NODES values, at its line, before the
    document is composed: the event stream is flat, so this costs no more than the text's length."""
    depth = nodes = 0
    for event in yaml.parse(text, Loader=_LOADER):
        refusal = None
        if isinstance(event, yaml.AliasEvent):
            refusal = f"aliases (*{event.anchor}) are not allowed here: write the value out"
        elif isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            refusal = f"nested more than {MAX_DEPTH} deep" if depth > MAX_DEPTH else None
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
        if isinstance(event, yaml.NodeEvent):
            nodes += 1
            refusal = refusal or (f"more than {MAX_NODES:,} values" if nodes > MAX_NODES else None)
        if refusal:
            line = f":{event.start_mark.line + 1}" if event.start_mark else ""
            raise RetainError(f"{source}{line}: {refusal}")


def _plain(
    node: yaml.Node, path: tuple[PathPart, ...], lines: dict[tuple[PathPart, ...], int], source: str
) -> Any:
    lines[path] = node.start_mark.line + 1
    if node.tag not in _PLAIN_TAGS:
        raise RetainError(f"{source}:{lines[path]}: the tag {node.tag} is not allowed here: plain data only")
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise RetainError(
                    f"{source}:{key_node.start_mark.line + 1}: a key is a plain word, not a list"
                )
            key = key_node.value
            if key in out:
                raise RetainError(f"{source}:{key_node.start_mark.line + 1}: {key!r} is given twice")
            out[key] = _plain(value_node, (*path, key), lines, source)
            lines[(*path, key)] = key_node.start_mark.line + 1  # a person looks for the key
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_plain(item, (*path, i), lines, source) for i, item in enumerate(node.value)]
    try:
        return yaml.SafeLoader("").construct_object(node)
    except yaml.YAMLError as e:  # a value its tag cannot read, such as `!!int x`
        raise RetainError(f"{source}:{lines[path]}: {getattr(e, 'problem', None) or e}") from None


def _dotted(path: Sequence[PathPart]) -> str:
    return ".".join(str(p) for p in path) or "(document)"
