"""Feature rows as the API holds them: one float block plus the text columns, indexed by name.

A served request touches a handful of rows through several steps (range checks, two models, reasons,
eligibility), and each pandas operation costs 0.1-0.3 ms whatever the size: most of a request's time in
a DataFrame. The same rows as arrays cost microseconds per step. Training and batch scoring keep their
DataFrames; `ScoringModel` reads either.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

KEYS = ("account_id", "cutoff")


@dataclass(frozen=True)
class FeatureRows:
    account_ids: list[str]
    #: when each row's features were computed (None: no row in the store, or rows a caller brought)
    cutoffs: list[datetime | None]
    #: the feature columns in their catalogue order
    names: tuple[str, ...]
    block: np.ndarray
    position: Mapping[str, int]
    text: Mapping[str, np.ndarray]

    @classmethod
    def build(
        cls,
        account_ids: Sequence[str],
        cutoffs: Sequence[datetime | None],
        values: Mapping[str, Sequence[Any]],
        names: Sequence[str],
        text: frozenset[str],
    ) -> FeatureRows:
        """From columns of plain values: numbers as float64 (None is NaN), text as str or None."""
        numeric = [name for name in names if name not in text]
        # one array call for the whole block: a call per column costs ~1 us each, most of a one-row build
        columns = np.array([values[name] for name in numeric], dtype="float64")
        block = columns.reshape(len(numeric), len(account_ids)).T.copy()
        texts = {
            name: np.array([v if isinstance(v, str) else None for v in values[name]], dtype=object)
            for name in names
            if name in text
        }
        position = {n: j for j, n in enumerate(numeric)}
        return cls(list(account_ids), list(cutoffs), tuple(names), block, position, texts)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, text: frozenset[str]) -> FeatureRows:
        names = [c for c in frame.columns if c not in KEYS]
        cutoffs = (
            [None if pd.isna(c) else pd.Timestamp(c).to_pydatetime() for c in frame["cutoff"]]
            if "cutoff" in frame.columns
            else [None] * len(frame)
        )
        values = {name: frame[name].tolist() for name in names}
        return cls.build(frame["account_id"].astype(str).tolist(), cutoffs, values, names, text)

    def __len__(self) -> int:
        return len(self.account_ids)

    @property
    def columns(self) -> list[str]:
        return [*KEYS, *self.names]

    def __getitem__(self, name: str) -> np.ndarray:
        if name in self.position:
            out: np.ndarray = self.block[:, self.position[name]]
            return out
        return self.text[name]

    def numbers(self, names: Sequence[str]) -> np.ndarray:
        """The named numeric columns as one (rows, names) float array."""
        return self.block[:, [self.position[n] for n in names]]

    def take(self, rows: Sequence[int]) -> FeatureRows:
        index = list(rows)
        return FeatureRows(
            [self.account_ids[i] for i in index],
            [self.cutoffs[i] for i in index],
            self.names,
            self.block[index],
            self.position,
            {name: column[index] for name, column in self.text.items()},
        )

    def records(self) -> list[dict[str, Any]]:
        """One dict of plain Python values per row (NaN becomes None)."""
        numeric = list(self.position)
        out = []
        for i, account_id in enumerate(self.account_ids):
            row: dict[str, Any] = {"account_id": account_id, "cutoff": self.cutoffs[i]}
            row.update(
                (n, None if math.isnan(v) else v)
                for n, v in zip(numeric, self.block[i].tolist(), strict=True)
            )
            row.update((n, column[i]) for n, column in self.text.items())
            out.append(row)
        return out

    def frame(self) -> pd.DataFrame:
        """As a DataFrame in the feature table's layout (cutoff as datetime64[us, UTC], NaT when unknown)."""
        stamps = pd.Series([pd.NaT if c is None else pd.Timestamp(c) for c in self.cutoffs], dtype=object)
        cutoff = pd.to_datetime(stamps, utc=True).astype("datetime64[us, UTC]")
        columns: dict[str, Any] = {"account_id": self.account_ids, "cutoff": cutoff.array}
        numeric = pd.DataFrame(self.block, columns=list(self.position))
        texts = pd.DataFrame(dict(self.text), index=numeric.index)
        return pd.concat([pd.DataFrame(columns), numeric, texts], axis=1)[[*KEYS, *self.names]]
