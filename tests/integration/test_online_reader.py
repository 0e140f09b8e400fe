"""The API's online reader returns exactly the rows Feast's own online retrieval does, on SQLite and Redis:
the same values (every type the repo serves, nulls included), cutoffs, order, duplicates and unknown
accounts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import redis

from core.settings import Settings
from features.feast_repo import VIEW, feature_set, feature_store, online_rows, project_name, publish
from features.rows import FeatureRows
from features.stored import TABLE
from serving.online import OnlineReader
from store.delta import Store

CUTOFFS = pd.to_datetime(["2025-02-28", "2025-03-31"], utc=True)
ACCOUNTS = [f"acct-{i:03d}" for i in range(30)]
SCHEMA = pa.schema(
    [
        ("account_id", pa.string()),
        ("cutoff", pa.timestamp("us", tz="UTC")),
        ("logins_30d", pa.float64()),
        ("seats", pa.int64()),
        ("tier", pa.string()),
        ("has_sso", pa.bool_()),
        ("admins", pa.int32()),
        ("seat_utilisation", pa.float32()),
    ]
)


def feature_table(seed: int = 3) -> pa.Table:
    """Accounts x cutoffs, a sixth of each column null; the last five accounts only at the first cutoff
    (they have left)."""
    rng = np.random.default_rng(seed)
    keys = [(a, c) for a in ACCOUNTS for c in CUTOFFS if c == CUTOFFS[0] or a < "acct-025"]
    n = len(keys)

    def nulled(values: list[object]) -> list[object]:
        return [None if drop else v for drop, v in zip(rng.random(n) < 1 / 6, values, strict=True)]

    columns = {
        "account_id": [a for a, _ in keys],
        "cutoff": [c.to_pydatetime() for _, c in keys],
        "logins_30d": nulled(list(rng.gamma(2.0, 10.0, n))),
        "seats": nulled([int(v) for v in rng.integers(1, 500, n)]),
        "tier": nulled(list(rng.choice(["free", "pro", "ent"], n))),
        "has_sso": nulled([bool(v) for v in rng.random(n) < 0.5]),
        "admins": nulled([int(v) for v in rng.integers(1, 5, n)]),
        "seat_utilisation": nulled([float(v) for v in rng.random(n)]),
    }
    return pa.Table.from_pydict(columns, schema=SCHEMA)


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.service)])
def published(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Store, Settings]]:
    store = Store(tmp_path / "store")
    settings = Settings(home=store.root)
    if request.param == "redis":
        settings = Settings(
            home=store.root, online_store="redis", redis_url=request.getfixturevalue("redis_url")
        )
    table = feature_table()
    publish(store, settings, table, store.write(TABLE, table, "overwrite", "test: a hand-made feature table"))
    yield store, settings
    if request.param == "redis":
        client = redis.Redis.from_url(settings.redis_url)
        keys = list(client.scan_iter(match=f"*{project_name(store)}", count=1000))
        if keys:
            client.delete(*keys)


def assert_same_rows(ours: FeatureRows, feast: FeatureRows) -> None:
    assert ours.account_ids == feast.account_ids
    assert ours.cutoffs == feast.cutoffs
    assert ours.names == feast.names
    assert dict(ours.position) == dict(feast.position)
    np.testing.assert_array_equal(ours.block, feast.block)  # NaN where NaN
    assert ours.text.keys() == feast.text.keys()
    for name in ours.text:
        assert ours.text[name].tolist() == feast.text[name].tolist()


def test_the_reader_returns_what_feast_online_retrieval_does(published: tuple[Store, Settings]) -> None:
    store, settings = published
    fs = feature_store(store, settings)
    view = fs.get_feature_view(VIEW)
    features = feature_set(fs, [f.name for f in view.features])
    reader = OnlineReader(fs.provider, fs.config, view, features)
    asked = [*ACCOUNTS[::-1], "acct-404", ACCOUNTS[3], ACCOUNTS[3]]
    for accounts in (asked, ["acct-404"], [ACCOUNTS[-1]], [ACCOUNTS[0]]):
        assert_same_rows(reader.rows(accounts), online_rows(fs, accounts, features))
    rows = reader.rows(asked)
    assert rows.cutoffs[0] == CUTOFFS[0] and rows.cutoffs[-1] == CUTOFFS[1], "those who left keep their row"
    assert rows.cutoffs[len(ACCOUNTS)] is None and np.isnan(rows.block[len(ACCOUNTS)]).all()
    assert np.isnan(rows.block).any() and None in rows.text["tier"].tolist(), "nulls are read as nulls"
