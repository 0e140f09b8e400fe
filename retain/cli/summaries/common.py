"""What every summary is made of: counts, figures, a plain table, and the line on a step's alerts."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from features.alerts import Alerted


def count(n: int) -> str:
    return f"{n:,}"


def written_to(out: object, rows: str) -> str:
    """Where a batch went: a file, or a database table (its URL, password redacted: a `str`) and which of
    its rows the batch replaced."""
    return f"table {out} (its {rows} replaced)" if isinstance(out, str) else str(out)


def number(value: object, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, int | float) else "–"


def plain_table(
    title: str | None, columns: Iterable[str], rows: Iterable[Iterable[str]], *, figures: bool = True
) -> Table:
    """A plain table; with `figures`, every column after the first holds one, right-aligned and unbroken."""
    table = Table(title=title, title_justify="left", box=None, pad_edge=False, header_style="bold")
    for i, column in enumerate(columns):
        figure = figures and i > 0
        table.add_column(column, justify="right" if figure else "left", no_wrap=figure)
    for row in rows:
        table.add_row(*row)
    return table


def alerted(a: Alerted | None) -> list[RenderableType]:
    """A step's alerts in one line (none for a step that raises none, as an export)."""
    if a is None:
        return []
    if a.error is not None:
        return [Text.assemble(("warning:", "yellow"), f" {a.raised} alerts raised, {a.error}")]
    return [f"  alerts: {a.raised} raised, {a.new} new, {a.deliveries} deliveries queued for the webhooks"]
