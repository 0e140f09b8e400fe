"""The feature SQL in Spark's dialect, translated from the one DuckDB definition in `features/sql`.

sqlglot translates the syntax (`range` to `sequence`, FILTER clauses, `max_by`, interval arithmetic); the
DuckDB macros are ported once as Spark SQL functions (`sql/macros_spark.sql`), so a feature is written
once. Two meanings sqlglot keeps as written are fixed here: `$name` parameters become literals (Spark
SQL has no named parameters in these statements), and decimal literals become doubles, because Spark
reads `7.0` as a DECIMAL and divides it with decimal rounding (0.1714286 where DuckDB gives
0.17142857142857143).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlglot
from sqlglot import exp

from features.definitions import bind, sql

SPARK_MACROS = "macros_spark"


def _literal(value: Any) -> exp.Expression:
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int | float):
        return exp.Literal.number(value)
    return exp.Literal.string(str(value))


def to_spark(text: str, params: Mapping[str, Any]) -> str:
    """One DuckDB statement of features/sql as Spark SQL, its `$name` parameters bound from `params`."""
    values = bind(text, dict(params))

    def rewrite(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Placeholder) and node.name in values:
            return _literal(values[node.name])
        if isinstance(node, exp.Literal) and not node.is_string and any(c in node.this for c in ".eE"):
            return exp.cast(node.copy(), exp.DataType.build("DOUBLE"))
        return node

    tree = sqlglot.parse_one(text, read="duckdb").transform(rewrite)
    return tree.sql(dialect="spark")


def spark_macros() -> list[str]:
    """The statements that define the macros on a Spark session."""
    return [s.strip() for s in _strip_comments(sql(SPARK_MACROS)).split(";") if s.strip()]


def _strip_comments(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
