"""The Feast repo: online values equal point-in-time offline values, with SQLite and with a real Redis;
its offline source is a copy of the feature table version it was published from."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import redis
import yaml

from core.errors import RetainError
from core.settings import Settings
from features.feast_repo import (
    CONFIG_FILE,
    DEFAULT_SERVICES,
    EVENT_TIMESTAMP,
    feature_service,
    feature_set,
    feature_store,
    historical_features,
    offline_source,
    online_features,
    project_name,
    publish,
    repo_config,
)
from features.stored import TABLE, read_features
from store.delta import Store

CUTOFFS = pd.to_datetime(["2025-01-31", "2025-02-28", "2025-03-31", "2025-04-30"], utc=True)
FEATURES = [
    "logins_30d",
    "seats",
    "tickets_90d",
    "tier",
    "segment",
    "health_band",
    "health_score",
    "has_sso",
    "admins",
    "seat_utilisation",
]
SCHEMA = pa.schema(
    [
        ("account_id", pa.string()),
        ("cutoff", pa.timestamp("us", tz="UTC")),
        ("logins_30d", pa.float64()),
        ("seats", pa.int64()),
        ("tickets_90d", pa.int64()),
        ("tier", pa.string()),
        ("segment", pa.string()),
        ("health_band", pa.string()),
        ("health_score", pa.float64()),
        ("has_sso", pa.bool_()),
        ("admins", pa.int32()),
        ("seat_utilisation", pa.float32()),
    ]
)


def feature_table(accounts: int = 40, seed: int = 0) -> pa.Table:
    """Accounts x month-end cutoffs in the feature table's dtypes (and the other types the repo serves),
    with nulls in floats, ints, strings and booleans."""
    rng = np.random.default_rng(seed)
    n = accounts * len(CUTOFFS)
    null = rng.random((5, n)) < 0.15
    seats = rng.integers(1, 500, n)
    tickets = rng.integers(0, 20, n)
    columns = {
        "account_id": np.repeat([f"acct-{i:04d}" for i in range(accounts)], len(CUTOFFS)),
        "cutoff": np.tile(CUTOFFS.to_numpy(dtype="datetime64[us]"), accounts),
        "logins_30d": np.where(null[0], np.nan, rng.gamma(2.0, 10.0, n)),
        "seats": [None if m else int(v) for m, v in zip(null[1], seats, strict=True)],
        "tickets_90d": tickets,
        "tier": [
            None if m else t for m, t in zip(null[2], rng.choice(["free", "pro", "ent"], n), strict=True)
        ],
        "segment": rng.choice(["smb", "mid", "enterprise"], n),
        "health_band": [
            None if m else b for m, b in zip(null[3], rng.choice(["healthy", "at_risk"], n), strict=True)
        ],
        "health_score": rng.uniform(0, 100, n).round(2),
        "has_sso": [None if m else bool(b) for m, b in zip(null[4], rng.random(n) < 0.5, strict=True)],
        "admins": rng.integers(1, 5, n).astype("int32"),
        "seat_utilisation": rng.random(n).astype("float32"),
    }
    return pa.Table.from_pydict(columns, schema=SCHEMA)


def write(table: pa.Table, store: Store) -> tuple[pa.Table, int]:
    """`table` as a new version of the store's feature table, as a build writes it: what `publish` takes."""
    return table, store.write(TABLE, table, "overwrite", "test: a hand-made feature table")


def expected(table: pa.Table, accounts: list[str], cutoff: pd.Timestamp) -> pd.DataFrame:
    """The raw table's rows, in the layout the retrieval functions promise (float64 or str/None)."""
    frame = table.to_pandas().set_index(["account_id", "cutoff"]).loc[[(a, cutoff) for a in accounts]]
    frame = frame.reset_index(drop=True)[FEATURES]
    for name in FEATURES:
        if SCHEMA.field(name).type == pa.string():
            frame[name] = frame[name].astype(object).where(frame[name].notna(), None)
        else:
            frame[name] = frame[name].astype("float64")
    return frame


def redis_keys(url: str, project: str) -> list[bytes]:
    """Feast's Redis keys are the serialised entity key followed by the project name."""
    return list(redis.Redis.from_url(url).scan_iter(match=f"*{project}", count=1000))


def drop_redis_keys(url: str, project: str) -> None:
    keys = redis_keys(url, project)
    if keys:
        redis.Redis.from_url(url).delete(*keys)


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.service)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Store, Settings]]:
    store = Store(tmp_path / "store")
    if request.param == "sqlite":
        yield store, Settings(home=store.root)
        return
    url = request.getfixturevalue("redis_url")
    yield store, Settings(home=store.root, online_store="redis", redis_url=url)
    drop_redis_keys(url, project_name(store))


@pytest.fixture
def sqlite_store(tmp_path: Path) -> tuple[Store, Settings]:
    store = Store(tmp_path / "store")
    return store, Settings(home=store.root)


SAMPLE = ["acct-0000", "acct-0007", "acct-0013", "acct-0021", "acct-0034", "acct-0039"]
EVERY_ACCOUNT = [f"acct-{i:04d}" for i in range(40)]


def test_online_equals_offline_and_the_table(
    backend: tuple[Store, Settings], capsys: pytest.CaptureFixture[str]
) -> None:
    store, settings = backend
    table = feature_table()
    summary = publish(store, settings, *write(table, store))
    assert capsys.readouterr().out == "", "stdout is the CLI's JSON channel"
    assert summary["online_store"] == settings.online_store
    assert summary["features"] == len(FEATURES)
    assert summary["rows_materialised"] == 40
    assert (store.feast_dir / CONFIG_FILE).exists()

    fs = feature_store(store, settings)
    last = CUTOFFS[-1]
    accounts = EVERY_ACCOUNT[::-1]
    entities = pd.DataFrame({"account_id": accounts, EVENT_TIMESTAMP: last})
    for service in DEFAULT_SERVICES:
        offline = historical_features(fs, entities, service)
        online = online_features(fs, accounts, service)
        assert list(online["account_id"]) == list(offline["account_id"]) == accounts
        assert (online["cutoff"] == last).all()
        pd.testing.assert_frame_equal(online[FEATURES], offline[FEATURES])
        pd.testing.assert_frame_equal(online[FEATURES], expected(table, accounts, last))


def test_publishing_twice_is_idempotent_and_a_rebuild_replaces_values(
    backend: tuple[Store, Settings],
) -> None:
    """A rebuilt table may change rows without changing their cutoff; the online store must follow."""
    store, settings = backend
    table = feature_table()
    table, version = write(table, store)
    first = publish(store, settings, table, version)
    second = publish(store, settings, table, version)
    assert {**first, "seconds": 0} == {**second, "seconds": 0}
    if settings.online_store == "redis":
        assert len(redis_keys(settings.redis_url, project_name(store))) == 40
    fs = feature_store(store, settings)
    pd.testing.assert_frame_equal(
        online_features(fs, SAMPLE, FEATURES)[FEATURES], expected(table, SAMPLE, CUTOFFS[-1])
    )

    rebuilt = feature_table(seed=1).append_column("nps", pa.array(np.arange(160, dtype="float64")))
    _, rebuilt_version = write(rebuilt, store)
    summary = publish(store, settings, rebuilt, rebuilt_version)
    assert summary["features"] == len(FEATURES) + 1
    copy = offline_source(store, rebuilt_version)
    assert [p.name for p in copy.parent.iterdir()] == [copy.name], "the older version's copy is removed"
    # Feast reads the version it was published from
    pd.testing.assert_frame_equal(pq.read_table(copy).to_pandas(), read_features(store).to_pandas())
    fs = feature_store(store, settings)
    online = online_features(fs, SAMPLE, [*FEATURES, "nps"])
    pd.testing.assert_frame_equal(online[FEATURES], expected(rebuilt, SAMPLE, CUTOFFS[-1]))
    assert list(online["nps"]) == [float(4 * int(a[-4:]) + 3) for a in SAMPLE]


@pytest.mark.service
def test_redis_data_lives_in_redis_under_the_store_project(tmp_path: Path, redis_url: str) -> None:
    """Two stores on one Redis each read their own values."""
    stores = [Store(tmp_path / "a"), Store(tmp_path / "b")]
    tables = [feature_table(seed=0), feature_table(seed=1)]
    try:
        for store, table in zip(stores, tables, strict=True):
            publish(
                store,
                Settings(home=store.root, online_store="redis", redis_url=redis_url),
                *write(table, store),
            )
        for store, table in zip(stores, tables, strict=True):
            assert len(redis_keys(redis_url, project_name(store))) == 40
            fs = feature_store(store, Settings(home=store.root, online_store="redis", redis_url=redis_url))
            online = online_features(fs, SAMPLE, "churn_v1")
            pd.testing.assert_frame_equal(online[FEATURES], expected(table, SAMPLE, CUTOFFS[-1]))
        assert project_name(stores[0]) != project_name(stores[1])
    finally:
        for store in stores:
            drop_redis_keys(redis_url, project_name(store))
    assert not redis_keys(redis_url, project_name(stores[0]))


def test_historical_retrieval_is_point_in_time(sqlite_store: tuple[Store, Settings]) -> None:
    store, settings = sqlite_store
    table = feature_table()
    publish(store, settings, *write(table, store))
    fs = feature_store(store, settings)
    between = CUTOFFS[1] + pd.Timedelta(days=12, microseconds=1)
    entities = pd.DataFrame(
        {
            "account_id": ["acct-0003", "acct-0003", "acct-0005", "acct-0005"],
            EVENT_TIMESTAMP: [between, CUTOFFS[0] - pd.Timedelta(days=1), CUTOFFS[3], between.as_unit("ns")],
            "label": [1, 0, 1, 0],
        },
        index=[10, 11, 12, 13],
    )
    out = historical_features(fs, entities, FEATURES)
    assert list(out.index) == [10, 11, 12, 13]
    assert str(out[EVENT_TIMESTAMP].dtype) == "datetime64[us, UTC]"
    assert list(out["label"]) == [1, 0, 1, 0]
    want = pd.concat(
        [
            expected(table, ["acct-0003"], CUTOFFS[1]),
            expected(table, ["acct-0005"], CUTOFFS[3]),
            expected(table, ["acct-0005"], CUTOFFS[1]),
        ],
        ignore_index=True,
    )
    pd.testing.assert_frame_equal(out.loc[[10, 12, 13], FEATURES].reset_index(drop=True), want)
    assert out.loc[[11], FEATURES].isna().all(axis=None)


def test_unknown_account_reads_as_nulls(sqlite_store: tuple[Store, Settings]) -> None:
    store, settings = sqlite_store
    publish(store, settings, *write(feature_table(), store))
    online = online_features(feature_store(store, settings), ["acct-0001", "nobody"], "churn_v1")
    assert online.loc[[1], [*FEATURES, "cutoff"]].isna().all(axis=None)
    assert str(online["cutoff"].dtype) == "datetime64[us, UTC]"
    assert online["logins_30d"].dtype == "float64"
    assert online["seats"].dtype == "float64"
    assert online["tier"].dtype == object


def test_a_model_registers_its_own_feature_service(sqlite_store: tuple[Store, Settings]) -> None:
    store, settings = sqlite_store
    table = feature_table()
    publish(store, settings, *write(table, store))
    fs = feature_store(store, settings)
    feature_service(fs, "churn_v2", ["health_score", "tier"])
    resolved = feature_set(fs, "churn_v2")
    assert resolved.names == ("health_score", "tier")
    online = online_features(fs, SAMPLE, resolved)
    assert list(online.columns) == ["account_id", "cutoff", "health_score", "tier"]
    pd.testing.assert_frame_equal(
        online[["health_score", "tier"]], expected(table, SAMPLE, CUTOFFS[-1])[["health_score", "tier"]]
    )
    with pytest.raises(RetainError, match="no_such_feature"):
        feature_service(fs, "churn_v3", ["health_score", "no_such_feature"])
    with pytest.raises(RetainError, match="no_such_feature"):
        online_features(fs, SAMPLE, ["no_such_feature"])


def test_a_table_with_one_cutoff_publishes(sqlite_store: tuple[Store, Settings]) -> None:
    store, settings = sqlite_store
    table = feature_table()
    only_last = table.filter(pc.equal(table["cutoff"], pa.scalar(CUTOFFS[-1], SCHEMA.field("cutoff").type)))
    assert publish(store, settings, *write(only_last, store))["rows_materialised"] == 40
    online = online_features(feature_store(store, settings), SAMPLE, "churn_v1")
    pd.testing.assert_frame_equal(online[FEATURES], expected(table, SAMPLE, CUTOFFS[-1]))


def test_bad_tables_are_refused_before_anything_is_written(sqlite_store: tuple[Store, Settings]) -> None:
    store, settings = sqlite_store
    table = feature_table()
    nanos = table.set_column(1, "cutoff", table["cutoff"].cast(pa.timestamp("ns", tz="UTC")))
    with pytest.raises(RetainError, match=r"timestamp\[us, tz=UTC\]"):
        publish(store, settings, nanos, 1)
    with pytest.raises(RetainError, match="duplicate"):
        publish(store, settings, pa.concat_tables([table, table.slice(0, 1)]), 1)
    nested = table.append_column("tags", pa.array([["a"]] * table.num_rows))
    with pytest.raises(RetainError, match="tags"):
        publish(store, settings, nested, 1)
    assert not store.feast_dir.exists()


def test_feature_store_refuses_a_missing_or_differently_configured_repo(
    sqlite_store: tuple[Store, Settings],
) -> None:
    store, settings = sqlite_store
    with pytest.raises(RetainError, match="retain features build"):
        feature_store(store, settings)
    publish(store, settings, *write(feature_table(), store))
    assert yaml.safe_load((store.feast_dir / CONFIG_FILE).read_text())["online_store"]["type"] == "sqlite"
    with pytest.raises(RetainError, match="other settings"):
        feature_store(store, Settings(home=store.root, online_store="redis"))


def test_redis_url_becomes_a_feast_connection_string(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    url = "rediss://svc:p%40ss@cache.internal:6380/2"
    online = repo_config(store, Settings(online_store="redis", redis_url=url))["online_store"]
    assert online["connection_string"] == "cache.internal:6380,db=2,username=svc,password=p@ss,ssl=true"
    with pytest.raises(RetainError, match="redis_url"):
        repo_config(store, Settings(online_store="redis", redis_url="127.0.0.1:6379"))
