"""The Markdown the model cards are written in: tables, bulleted sections, and numbers shown as a reader
reads them ("—" for a number that is missing)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def shown(value: float | None, fmt: str) -> str:
    return "—" if value is None or not math.isfinite(value) else fmt.format(value)


def percent(value: float | None) -> str:
    return shown(value, "{:.1%}")


def counted(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def bullets(title: str, lines: Iterable[str]) -> str:
    return f"## {title}\n\n" + "\n".join(f"- {line}" for line in lines)


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    def row(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    return "\n".join([row(header), "|" + "---|" * len(header), *(row(cells) for cells in rows)])
