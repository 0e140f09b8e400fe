"""The check of the tables the service reads, and the error a read of one that cannot be read raises."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from serving.tables import TableUnreadable, reading, table_problem
from store.delta import Store


def test_a_table_with_a_data_file_gone_is_named_and_one_never_written_is_fine(tmp_path: Path) -> None:
    store = Store(root=tmp_path)
    assert table_problem(store, "accounts") is None
    rows = pa.table({"account_id": ["a", "b"], "arr": [1.0, 2.0]})
    store.write("accounts", rows, "append", "test")
    store.write("accounts", rows, "append", "test")
    assert table_problem(store, "accounts") is None
    gone = sorted(Path(store.uri("accounts")).glob("*.parquet"))[0]
    gone.unlink()
    problem = table_problem(store, "accounts")
    assert problem is not None and "the accounts table cannot be read" in problem and gone.name in problem
    with pytest.raises(TableUnreadable) as raised, reading("accounts"):
        store.read("accounts", rows.schema)
    assert raised.value.table == "accounts"
