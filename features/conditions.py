"""Conditions a person writes in a playbook file, over the feature catalogue's columns: checked once when
the file is read, then evaluated per account row in Python (serving asks for one account at a time, the
planner for thousands).

The language is a small part of SQL (DuckDB's dialect, as the features are written in): comparisons,
AND / OR / NOT, IN and NOT IN over literals, BETWEEN, IS [NOT] NULL, + - * / and parentheses. It keeps
SQL's logic of unknowns: a missing value (None or NaN) makes a comparison unknown, unknown AND false is
false, unknown OR true is true, and a condition that ends unknown does not hold.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

import sqlglot
from sqlglot import exp

from core.errors import RetainError
from features.definitions import known

Kind = Literal["number", "text", "condition"]
Row = Mapping[str, Any]
Evaluate = Callable[[Row], Any]

#: the longest condition read: a playbook's are one line
MAX_LENGTH = 1_000
SUPPORTED = "comparisons, AND, OR, NOT, IN, BETWEEN, IS [NOT] NULL, + - * / and parentheses"
_COMPARE: dict[type[exp.Expression], Callable[[Any, Any], bool]] = {
    exp.EQ: operator.eq,
    exp.NEQ: operator.ne,
    exp.GT: operator.gt,
    exp.GTE: operator.ge,
    exp.LT: operator.lt,
    exp.LTE: operator.le,
}
_ARITHMETIC: dict[type[exp.Expression], Callable[[Any, Any], Any]] = {
    exp.Add: operator.add,
    exp.Sub: operator.sub,
    exp.Mul: operator.mul,
    exp.Div: lambda a, b: a / b if b != 0 else None,  # DuckDB: NULL, not an error
}


class ConditionError(RetainError):
    """A condition that cannot be read or cannot mean anything over the feature catalogue."""


@dataclass(frozen=True)
class Condition:
    text: str
    #: the feature columns it reads, in the order it reads them
    columns: tuple[str, ...]
    evaluate: Evaluate

    def holds(self, row: Row) -> bool:
        """True only when the condition is true of the row; unknown is not true."""
        return self.verdict(row) is True

    def verdict(self, row: Row) -> bool | None:
        """True, False, or None when the row's values leave it unknown."""
        result = self.evaluate(row)
        return None if result is None else bool(result)


@dataclass(frozen=True)
class Columns:
    """What a condition may read: each column's kind, and the values of the text columns that have a
    fixed set (so that a misspelt band or tier is refused, not silently never met)."""

    kinds: Mapping[str, Literal["number", "text"]]
    values: Mapping[str, Collection[str]]


def compile_condition(text: str, columns: Columns) -> Condition:
    """The condition `text` over `columns`; ConditionError says what is wrong with it."""
    if len(text) > MAX_LENGTH:
        raise ConditionError(f"{len(text):,} characters; a condition is at most {MAX_LENGTH:,}")
    try:
        tree = sqlglot.parse_one(text, read="duckdb")
        read: list[str] = []
        kind, evaluate = _compile(cast(exp.Expression, tree), columns, read)
    except sqlglot.errors.ParseError as e:
        raise ConditionError(
            f"not a SQL condition: {e.errors[0]['description'] if e.errors else e}"
        ) from None
    except sqlglot.errors.SqlglotError as e:  # the tokenizer's: an unterminated quote, a stray `$$`
        raise ConditionError(f"not a SQL condition: {e}") from None
    except RecursionError:
        raise ConditionError("nested too deeply: write it flatter") from None
    if kind != "condition":
        raise ConditionError(f"`{text}` is a {kind}, not a condition: compare it with something")
    return Condition(text, tuple(dict.fromkeys(read)), evaluate)


def _compile(node: exp.Expression, columns: Columns, read: list[str]) -> tuple[Kind, Evaluate]:
    if isinstance(node, exp.Paren):
        return _compile(node.this, columns, read)
    if isinstance(node, exp.Column):
        return _column(node, columns, read)
    if isinstance(node, exp.Literal):
        value: Any = node.this if node.is_string else _number(node.this)
        return ("text" if node.is_string else "number"), lambda _row: value
    if isinstance(node, exp.Null):
        raise ConditionError("compare with NULL using IS NULL or IS NOT NULL")
    if isinstance(node, exp.Boolean):
        raise ConditionError("the catalogue's flags are numbers: write `flag = 1`, not `flag = TRUE`")
    if type(node) in _COMPARE:
        return _comparison(node, columns, read)
    if isinstance(node, exp.And | exp.Or):
        return _logic(node, columns, read)
    if isinstance(node, exp.Not):
        kind, inner = _compile(node.this, columns, read)
        _expect(kind, "condition", node.this)

        def negate(row: Row) -> Any:
            result = inner(row)
            return None if result is None else not result

        return "condition", negate
    if isinstance(node, exp.In):
        return _membership(node, columns, read)
    if isinstance(node, exp.Between):
        return _between(node, columns, read)
    if isinstance(node, exp.Is) and isinstance(node.expression, exp.Null):
        _, inner = _compile(node.this, columns, read)
        return "condition", lambda row: not known(inner(row))
    if type(node) in _ARITHMETIC:
        return _arithmetic(node, columns, read)
    if isinstance(node, exp.Neg):
        kind, inner = _compile(node.this, columns, read)
        _expect(kind, "number", node.this)
        return "number", lambda row: None if (value := inner(row)) is None else -value
    raise ConditionError(f"`{node.sql(dialect='duckdb')}` is not supported here; conditions use {SUPPORTED}")


def _column(node: exp.Column, columns: Columns, read: list[str]) -> tuple[Kind, Evaluate]:
    name = node.name
    if node.table or name not in columns.kinds:
        raise ConditionError(f"no feature named {node.sql(dialect='duckdb')} in the feature catalogue")
    read.append(name)

    def value(row: Row) -> Any:
        found = row.get(name)
        return found if known(found) else None

    return columns.kinds[name], value


def _comparison(node: exp.Expression, columns: Columns, read: list[str]) -> tuple[Kind, Evaluate]:
    left_kind, left = _compile(node.this, columns, read)
    right_kind, right = _compile(node.expression, columns, read)
    if left_kind != right_kind or left_kind == "condition":
        raise ConditionError(f"`{node.sql(dialect='duckdb')}` compares a {left_kind} with a {right_kind}")
    _check_values(node.this, [node.expression], columns)
    _check_values(node.expression, [node.this], columns)
    compare = _COMPARE[type(node)]

    def evaluate(row: Row) -> Any:
        a, b = left(row), right(row)
        return None if a is None or b is None else bool(compare(a, b))  # numpy's bools are not `True`

    return "condition", evaluate


def _logic(node: exp.And | exp.Or, columns: Columns, read: list[str]) -> tuple[Kind, Evaluate]:
    parts = []
    for side in (node.this, node.expression):
        kind, part = _compile(side, columns, read)
        _expect(kind, "condition", side)
        parts.append(part)
    first, second = parts
    decisive = isinstance(node, exp.Or)  # OR: one true decides; AND: one false decides

    def evaluate(row: Row) -> Any:
        a = first(row)
        if a is decisive:
            return decisive
        b = second(row)
        if b is decisive:
            return decisive
        return None if a is None or b is None else not decisive

    return "condition", evaluate


def _membership(node: exp.In, columns: Columns, read: list[str]) -> tuple[Kind, Evaluate]:
    kind, subject = _compile(node.this, columns, read)
    items = node.expressions
    if not items or not all(isinstance(i, exp.Literal) for i in items):
        raise ConditionError(f"`{node.sql(dialect='duckdb')}`: IN takes a list of literal values")
    if any(("text" if i.is_string else "number") != kind for i in items):
        raise ConditionError(f"`{node.sql(dialect='duckdb')}`: the list's values must be of kind {kind}")
    _check_values(node.this, items, columns)
    among = frozenset(i.this if i.is_string else _number(i.this) for i in items)

    def evaluate(row: Row) -> Any:
        value = subject(row)
        return None if value is None else value in among

    return "condition", evaluate


def _between(node: exp.Between, columns: Columns, read: list[str]) -> tuple[Kind, Evaluate]:
    kinds_and_parts = [
        _compile(part, columns, read) for part in (node.this, node.args["low"], node.args["high"])
    ]
    if any(kind != "number" for kind, _ in kinds_and_parts):
        raise ConditionError(f"`{node.sql(dialect='duckdb')}`: BETWEEN compares numbers")
    (_, value), (_, low), (_, high) = kinds_and_parts

    def evaluate(row: Row) -> Any:
        v, lo, hi = value(row), low(row), high(row)
        return None if v is None or lo is None or hi is None else bool(lo <= v <= hi)

    return "condition", evaluate


def _arithmetic(node: exp.Expression, columns: Columns, read: list[str]) -> tuple[Kind, Evaluate]:
    (left_kind, left), (right_kind, right) = (
        _compile(side, columns, read) for side in (node.this, node.expression)
    )
    if left_kind != "number" or right_kind != "number":
        raise ConditionError(f"`{node.sql(dialect='duckdb')}`: arithmetic is on numbers")
    apply = _ARITHMETIC[type(node)]

    def evaluate(row: Row) -> Any:
        a, b = left(row), right(row)
        return None if a is None or b is None else apply(a, b)

    return "number", evaluate


def _check_values(subject: exp.Expression, literals: list[exp.Expression], columns: Columns) -> None:
    """A text column with a fixed set of values compared with a string it never takes: a misspelling."""
    if not isinstance(subject, exp.Column) or subject.name not in columns.values:
        return
    allowed = columns.values[subject.name]
    for literal in literals:
        if isinstance(literal, exp.Literal) and literal.is_string and literal.this not in allowed:
            raise ConditionError(
                f"{subject.name} is never {literal.this!r}; its values are {', '.join(sorted(allowed))}"
            )


def _expect(kind: Kind, wanted: Kind, node: exp.Expression) -> None:
    if kind != wanted:
        raise ConditionError(f"`{node.sql(dialect='duckdb')}` is a {kind} where a {wanted} is needed")


def _number(text: str) -> float | int:
    number = float(text)
    return int(number) if number.is_integer() and "." not in text and "e" not in text.lower() else number
