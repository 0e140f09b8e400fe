"""Text cells of a CSV a person may open in a spreadsheet, made inert: a cell starting with `=`, `+`, `-`,
`@`, a tab or a carriage return is run as a formula there (`=cmd|' /C calc'!A0`), and names and ids come
from a CRM anyone can type into. Such a cell is prefixed with `'`, as OWASP advises; every CSV Retain
writes passes its text through here.
"""

from __future__ import annotations

import pandas as pd

#: the first characters that make a spreadsheet read a cell as a formula
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(text: str) -> str:
    """The text, with a leading `'` when a spreadsheet would run it as a formula."""
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def safe_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with every text cell made safe; numbers stay numbers (a negative value is no formula)."""
    out = frame.copy()
    for column in frame.columns:
        if pd.api.types.is_object_dtype(frame[column]) or pd.api.types.is_string_dtype(frame[column]):
            out[column] = frame[column].map(_safe_value)
    return out


def _safe_value(value: object) -> object:
    return safe_cell(value) if isinstance(value, str) else value
