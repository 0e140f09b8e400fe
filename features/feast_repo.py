"""The Feast repo: entity `account`, one feature view over the feature table, a feature service per model.

Feast stays inside this module, but for serving's per-request read. The build calls `publish`; training
reads point-in-time training sets with `historical_features`; `online_rows` and `online_features` read the
latest values through Feast's API. Both return the same frame layout (numbers as float64 with NaN,
categoricals as str or None), so a model sees identical inputs offline and online. Serving reads the same
rows through the online store's provider (`serving/online.py`, tested equal to `online_rows`), without
the API's per-call response building.

The repo is configured in Python and applied in-process (the `feast apply` CLI costs ~6 s of start-up).
Offline reads use the DuckDB store by default (point-in-time joins measured 9x faster than the file
store's), which needs microsecond timestamps; `Settings.offline_store` spark gives Feast's Spark offline
store over the same Parquet copy, run on Retain's Spark session. The Feast project name is derived from
the store's absolute path: Redis keys end with the project name, so two stores sharing one Redis never
see each other's rows.
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import yaml
from feast import Entity, FeatureService, FeatureStore, FeatureView, Field, FileSource, RepoConfig
from feast.data_source import DataSource
from feast.types import Bool, FeastType, Float32, Float64, Int32, Int64, String
from feast.value_type import ValueType

from core.errors import RetainError
from core.files import write_atomic
from core.settings import Settings
from core.spark import session, spark_session_conf
from features.rows import FeatureRows
from store.delta import Store

ENTITY = "account"
JOIN_KEY = "account_id"
TIMESTAMP = "cutoff"
EVENT_TIMESTAMP = "event_timestamp"
VIEW = "account_features"
DEFAULT_SERVICES = ("churn_v1", "expansion_v1")
# Long enough that a point-in-time join a year after a cutoff still finds it; online reads ignore it.
TTL = timedelta(days=400)
CONFIG_FILE = "feature_store.yaml"
#: the Feast registry and the SQLite online store, relative to the repo's folder
REGISTRY_FILE = "registry.db"
ONLINE_FILE = "online.db"
OFFLINE_DIR = "offline"
_ROW = "__retain_row"


def published_config(store: Store) -> dict[str, Any] | None:
    """The repo config the last publish wrote, or None before the first."""
    path = store.feast_dir / CONFIG_FILE
    return yaml.safe_load(path.read_text()) if path.exists() else None


def project_name(store: Store) -> str:
    """One Feast project per store: named after the store's folder at its first publish, so stores sharing
    a Redis (or a registry) cannot collide, then kept as published, so a moved store still finds its rows."""
    published = published_config(store)
    if published is not None and isinstance(published.get("project"), str):
        return str(published["project"])
    digest = hashlib.sha256(str(store.root.resolve()).encode()).hexdigest()[:12]
    return f"retain_{digest}"


def _redis_connection_string(url: str) -> str:
    """Feast wants `host:port,db=0,password=...`, not the `redis://` URL that redis-py and Settings use."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise RetainError(f"redis_url: expected redis://host:port/db, got {url!r}")
    db = parts.path.strip("/") or "0"
    if not db.isdigit():
        raise RetainError(f"redis_url: the database must be a number, got {db!r}")
    options = [f"{parts.hostname}:{parts.port or 6379}", f"db={db}"]
    if parts.username:
        options.append(f"username={unquote(parts.username)}")
    if parts.password:
        options.append(f"password={unquote(parts.password)}")
    if parts.scheme == "rediss":
        options.append("ssl=true")
    return ",".join(options)


def _offline_store(settings: Settings) -> dict[str, Any]:
    """Feast's offline store: DuckDB in process, or Spark with the session settings Retain uses (Feast
    starts its own from these when no session is running, as under the `feast` CLI)."""
    if settings.offline_store == "duckdb":
        return {"type": "duckdb"}
    conf = {"spark.master": settings.spark.master, **spark_session_conf(settings.spark)}
    return {"type": "spark", "spark_conf": conf}


def repo_config(store: Store, settings: Settings) -> dict[str, Any]:
    """The feature_store.yaml contents: everything lives under the store except Redis, named relative to
    the repo's folder so the store can be copied or moved."""
    online: dict[str, Any]
    if settings.online_store == "redis":
        # publish is the only writer and rewrites each account's latest row; Feast's default dedup would
        # keep a stale value when a rebuilt table changes a row without changing its cutoff.
        online = {
            "type": "redis",
            "connection_string": _redis_connection_string(settings.redis_url),
            "skip_dedup": True,
        }
    else:
        online = {"type": "sqlite", "path": ONLINE_FILE}
    return {
        "project": project_name(store),
        "provider": "local",
        "registry": REGISTRY_FILE,
        "offline_store": _offline_store(settings),
        "online_store": online,
        "entity_key_serialization_version": 3,
    }


_FEAST_TYPES: dict[pa.DataType, FeastType] = {
    pa.float64(): Float64,
    pa.float32(): Float32,
    pa.int64(): Int64,
    pa.int32(): Int32,
    pa.bool_(): Bool,
    pa.string(): String,
    pa.large_string(): String,
}


def _feast_type(field: pa.Field) -> FeastType:
    if field.type not in _FEAST_TYPES:
        raise RetainError(
            f"feature table column {field.name!r} has type {field.type}; the Feast repo serves "
            f"{', '.join(sorted({str(t) for t in _FEAST_TYPES}))}"
        )
    return _FEAST_TYPES[field.type]


def _schema(table_path: Path, schema: pa.Schema) -> list[Field]:
    """Feature fields derived from the table's schema, so new feature columns need no code change here."""
    names = set(schema.names)
    if JOIN_KEY not in names or TIMESTAMP not in names:
        raise RetainError(f"{table_path}: the feature table needs columns {JOIN_KEY!r} and {TIMESTAMP!r}")
    if _feast_type(schema.field(JOIN_KEY)) != String:
        raise RetainError(f"{table_path}: {JOIN_KEY!r} must be a string column")
    stamp = schema.field(TIMESTAMP).type
    if not (pa.types.is_timestamp(stamp) and stamp.unit == "us" and stamp.tz in ("UTC", "+00:00")):
        raise RetainError(
            f"{table_path}: {TIMESTAMP!r} is {stamp}; the DuckDB offline store needs timestamp[us, tz=UTC]"
        )
    fields = [Field(name=f.name, dtype=_feast_type(f)) for f in schema if f.name not in (JOIN_KEY, TIMESTAMP)]
    if not fields:
        raise RetainError(f"{table_path}: the feature table has no feature columns")
    return fields


def _keys(table_path: Path, table: pa.Table) -> tuple[datetime, datetime, int]:
    """First and last cutoff and the number of accounts; refuses duplicate (account, cutoff) rows, which
    the DuckDB store would keep and the point-in-time join would fan out."""
    keys = table.select([JOIN_KEY, TIMESTAMP])
    if keys.num_rows == 0:
        raise RetainError(f"{table_path}: the feature table is empty")
    accounts = pc.count_distinct(keys[JOIN_KEY]).as_py()
    if keys.group_by([JOIN_KEY, TIMESTAMP]).aggregate([]).num_rows != keys.num_rows:
        raise RetainError(f"{table_path}: duplicate ({JOIN_KEY}, {TIMESTAMP}) rows")
    bounds = pc.min_max(keys[TIMESTAMP])
    return bounds["min"].as_py(), bounds["max"].as_py(), accounts


def _fields(view: FeatureView, names: Sequence[str]) -> list[Field]:
    known = {f.name: f for f in view.features}
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise RetainError(f"{VIEW} has no feature(s) {', '.join(unknown)}")
    if not names:
        raise RetainError("no features asked for")
    return [known[name] for name in names]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Feast prints materialisation progress on stdout (the CLI's JSON channel), and ibis 12 warns that
    duckdb 2.0 deprecated `fetch_arrow_table`: send the first to stderr and drop the second."""
    with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*fetch_arrow_table", category=DeprecationWarning)
        yield


def offline_source(store: Store, version: int) -> Path:
    """Where Feast's offline store reads feature table version `version`: a Parquet copy in the Feast repo.

    Feast's DuckDB offline store reads Delta only through DuckDB's delta extension, which is downloaded at
    run time; a local copy per version also lets an object-store store keep Feast on this machine.
    """
    return store.feast_dir / OFFLINE_DIR / f"account_features-v{version}.parquet"


def _source(offline_store: str, table_path: Path) -> DataSource:
    """The view's offline source: the Parquet copy, as a file (DuckDB) or a Spark source."""
    name = f"{VIEW}_source"
    if offline_store == "duckdb":
        return FileSource(name=name, path=str(table_path), timestamp_field=TIMESTAMP)
    from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource

    return SparkSource(name=name, path=str(table_path), file_format="parquet", timestamp_field=TIMESTAMP)


def _open(store: Store, settings: Settings, config: dict[str, Any]) -> FeatureStore:
    """The repo at `config`; with the Spark offline store, Retain's session is started first, so Feast
    runs on it rather than on a session of its own."""
    if settings.offline_store == "spark":
        session(settings.spark)
    # the repo's folder as it is now: the config's relative paths resolve against it
    here = store.feast_dir.resolve()
    return FeatureStore(repo_path=str(here), config=RepoConfig(repo_path=here, **config))


def publish(store: Store, settings: Settings, table: pa.Table, version: int) -> dict[str, Any]:
    """Write the repo config, apply entity, view and default services, and materialise the online store.

    The offline source is a copy of feature table version `version`; older copies are removed once the
    new view is applied. Materialisation is a full window (first to last cutoff), not incremental: a
    build may rewrite rows at cutoffs already published, and Feast's first incremental window starts at
    now - ttl, which skips historical data. Each account's latest row is written, so publishing twice
    gives the same store.
    """
    started = time.perf_counter()
    table_path = offline_source(store, version).resolve()
    fields = _schema(table_path, table.schema)
    first, last, accounts = _keys(table_path, table)
    write_atomic(table, table_path)
    config = repo_config(store, settings)
    store.feast_dir.mkdir(parents=True, exist_ok=True)
    fs = _open(store, settings, config)

    account = Entity(name=ENTITY, join_keys=[JOIN_KEY], value_type=ValueType.STRING)
    source = _source(settings.offline_store, table_path)
    view = FeatureView(name=VIEW, entities=[account], ttl=TTL, schema=fields, source=source, online=True)
    services = [FeatureService(name=name, features=[view]) for name in DEFAULT_SERVICES]
    with _quiet():
        fs.apply([account, source, view, *services])
        fs.materialize(start_date=first, end_date=last, feature_views=[VIEW])
    # Written last: its presence says a publish completed (and lets the `feast` CLI and UI open the repo).
    (store.feast_dir / CONFIG_FILE).write_text(yaml.safe_dump(config, sort_keys=False))
    for older in table_path.parent.glob("account_features-v*.parquet"):
        if older != table_path:
            older.unlink()
    return {
        "project": config["project"],
        "registry": config["registry"],
        "online_store": settings.online_store,
        "features": len(fields),
        "services": list(DEFAULT_SERVICES),
        "rows_materialised": accounts,
        "latest_cutoff": last.isoformat(),
        "seconds": round(time.perf_counter() - started, 3),
    }


def feature_store(store: Store, settings: Settings) -> FeatureStore:
    """Open the published repo; refuse one published with another online or offline store than these
    settings give, since reading it would silently return empty or foreign features."""
    published = published_config(store)
    if published is None:
        raise RetainError(f"no Feast repo in {store.feast_dir}; run `retain features build` first")
    config = repo_config(store, settings)
    if _settled(published) != _settled(config):
        raise RetainError(
            f"{store.feast_dir / CONFIG_FILE} was published with other settings (online store, offline "
            "store or Redis URL) than the current ones; run `retain features build` again"
        )
    return _open(store, settings, config)


def _settled(config: dict[str, Any]) -> dict[str, Any]:
    """A repo config without its file paths, which are always the repo's own files wherever the store is
    now (a repo published before they were relative names the folder it was published in)."""
    online = {k: v for k, v in config.get("online_store", {}).items() if k != "path"}
    return {**{k: v for k, v in config.items() if k != "registry"}, "online_store": online}


def offline_copy(fs: FeatureStore) -> tuple[Path, Path]:
    """The offline copy's path as Feast's registry recorded it at the publish, and the same file in the
    repo where it is now."""
    view = fs.get_feature_view(VIEW, allow_registry_cache=True)
    recorded = Path(str(getattr(view.batch_source, "path", "")))  # a FileSource's or a SparkSource's
    return recorded, Path(fs.repo_path).resolve() / OFFLINE_DIR / recorded.name


def in_this_repo(fs: FeatureStore) -> None:
    """Point the view's offline source at the copy in this repo. Feast's registry keeps the copy's
    absolute path (its DuckDB store reads the path as given), so in a store copied or moved since its
    publish a point-in-time read would read the old folder's copy, or fail with it gone."""
    recorded, here = offline_copy(fs)
    if recorded == here:
        return
    view = fs.get_feature_view(VIEW, allow_registry_cache=True)
    source = _source(fs.config.offline_store.type, here)
    view.batch_source = source
    with _quiet():
        fs.apply([source, view])


def feature_service(fs: FeatureStore, name: str, features: Sequence[str]) -> FeatureService:
    """Register a service over some of `account_features`: one per model version, named after it."""
    view = fs.get_feature_view(VIEW)
    service = FeatureService(name=name, features=[view[[f.name for f in _fields(view, features)]]])
    fs.apply(service)
    return service


@dataclass(frozen=True)
class FeatureSet:
    """Features resolved from the registry once. A registry lookup costs ~15 ms (Feast rebuilds objects
    from protobuf under runtime type checks), ten times an online read: resolve at start-up, then reuse."""

    names: tuple[str, ...]
    text: frozenset[str]

    @property
    def refs(self) -> list[str]:
        return [f"{VIEW}:{name}" for name in self.names]


Features = FeatureSet | str | Sequence[str]


def feature_set(fs: FeatureStore, service_or_features: Features) -> FeatureSet:
    """Resolve a feature service name, or a list of `account_features` names, to a FeatureSet."""
    if isinstance(service_or_features, FeatureSet):
        return service_or_features
    if isinstance(service_or_features, str):
        service = fs.get_feature_service(service_or_features, allow_cache=True)
        fields = [f for projection in service.feature_view_projections for f in projection.features]
    else:
        fields = _fields(fs.get_feature_view(VIEW, allow_registry_cache=True), service_or_features)
    return FeatureSet(tuple(f.name for f in fields), frozenset(f.name for f in fields if f.dtype == String))


def _frame(
    keys: dict[str, Any], values: Mapping[str, Any] | pd.DataFrame, features: FeatureSet, index: Any = None
) -> pd.DataFrame:
    """One dtype per feature whatever the rows hold: float64 (NaN) for numbers, object (str or None)."""
    columns = {
        name: np.array([v if isinstance(v, str) else None for v in values[name]], dtype=object)
        if name in features.text
        else np.asarray(values[name], dtype="float64")
        for name in features.names
    }
    return pd.DataFrame({**keys, **columns}, index=index, copy=False)


def historical_features(
    fs: FeatureStore, entity_df: pd.DataFrame, service_or_features: Features
) -> pd.DataFrame:
    """Point-in-time join: for each (account_id, event_timestamp), the row of the latest cutoff at or
    before it (cutoff T only saw events before T). Rows come back in entity_df's order and index, with
    entity_df's columns (labels ride along; event_timestamp as datetime64[us, UTC]), then the features."""
    in_this_repo(fs)
    features = feature_set(fs, service_or_features)
    stamps = pd.to_datetime(entity_df[EVENT_TIMESTAMP], utc=True).dt.floor("us").astype("datetime64[us, UTC]")
    entities = entity_df.copy()
    entities[EVENT_TIMESTAMP] = stamps
    entities[_ROW] = range(len(entity_df))
    with _quiet():
        joined = fs.get_historical_features(entity_df=entities, features=features.refs).to_df()
    joined = joined.sort_values(_ROW)
    # the entity columns as sent: offline stores hand the timestamp back in types of their own (Spark's
    # is naive nanoseconds)
    keys = {name: entities[name].array for name in entity_df.columns}
    return _frame(keys, joined, features, index=entity_df.index)


def online_rows(fs: FeatureStore, account_ids: Sequence[str], service_or_features: Features) -> FeatureRows:
    """Latest materialised values per account with the cutoff they were computed at (None and nulls for
    an unknown account), as the arrays the API works on."""
    features = feature_set(fs, service_or_features)
    response = fs.get_online_features(features=features.refs, entity_rows={JOIN_KEY: list(account_ids)})
    values = response.to_dict()
    stamps = response.proto.results[-1].event_timestamps
    cutoffs = [
        datetime.fromtimestamp(ts.seconds, UTC) + timedelta(microseconds=ts.nanos // 1000)
        if ts.seconds
        else None
        for ts in stamps
    ]
    return FeatureRows.build(account_ids, cutoffs, values, features.names, features.text)


def online_features(
    fs: FeatureStore, account_ids: Sequence[str], service_or_features: Features
) -> pd.DataFrame:
    """`online_rows` in the layout `historical_features` returns (cutoff NaT for an unknown account)."""
    return online_rows(fs, account_ids, service_or_features).frame()
