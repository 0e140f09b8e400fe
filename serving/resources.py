"""What the API loads once and shares: the champions, the Feast store, accounts, past actions, the logs.

Loaded in the app's `lifespan`, never at import. A missing champion or feature repo is not fatal, nor is
a registry that cannot be read: the service starts, answers with the rules and says why, and `/readyz`
reports what is missing; a registry that fails while running keeps the champions already loaded. New
champions are picked up without a restart: a thread polls the aliases every `reload_seconds`, and
`POST /v1/admin/reload` does the same at once, in every worker process (`serving/reloads.py`). A swap
replaces one immutable `Loaded` record, so a request sees either the old set or the new one, never half of
each. A table that cannot be read keeps what was loaded from it, and the service not ready until it reads.
"""

from __future__ import annotations

import bisect
import logging
import threading
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, time
from typing import TypeVar

import pyarrow as pa
from feast import FeatureStore

from core.contract import ACCOUNT_SCHEMA, INTERVENTION_SCHEMA
from core.errors import RetainError
from core.settings import Settings
from features.definitions import CATEGORICAL, FEATURE_NAMES
from features.feast_repo import VIEW, FeatureSet, feature_set, feature_store
from features.playbook_file import store_playbook
from features.rows import FeatureRows
from registry.models import (
    UnknownModel,
    VersionInfo,
    resolve,
    scoring_model,
    uplift_model,
)
from registry.tracking import RegistryUnavailable, client
from serving.assess import CHURN, EXPANSION, Champion
from serving.keys import key_ring
from serving.online import OnlineReader, OnlineStoreUnavailable
from serving.reloads import RELOADS_FILE, Reloads
from serving.schemas import Readiness
from serving.tables import SERVED_TABLES, reading, table_problem
from serving.webhooks.outbox import Outbox
from store.decision_log import DecisionLog, DecisionLogUnavailable
from store.delta import Store
from training.causal.uplift import UpliftModel

log = logging.getLogger("retain.serving")
#: accounts whose online rows `/readyz` reads
PROBED = 16
#: tables read by each page that needs them, so tried by `/readyz` each time; the others are loaded
#: into memory by a reload, and a failed load keeps the service not ready until one succeeds
LIVE_TABLES = tuple(t for t in SERVED_TABLES if t not in ("accounts", "interventions"))
MODELS = (CHURN, EXPANSION)
#: the registered name of the uplift models the next-best actions are ranked by
UPLIFT = "uplift"


@dataclass(frozen=True)
class UpliftChampion:
    model: UpliftModel
    info: VersionInfo

    @property
    def label(self) -> str:
        return f"{self.info.name}/{self.info.version}"


@dataclass(frozen=True)
class AccountRecord:
    """An account as the accounts table holds it: what the cockpit shows beside its risk. The renewal date
    is the first contract's; a feature row carries the one in force."""

    account_id: str
    name: str | None = None
    tier: str | None = None
    segment: str | None = None
    arr: float | None = None
    contract_start: datetime | None = None
    renewal_date: datetime | None = None
    csm_id: str | None = None


ACCOUNT_COLUMNS = [f.name for f in fields(AccountRecord)]


@dataclass(frozen=True)
class Loaded:
    """One consistent generation of what the service reads."""

    churn: Champion | None
    expansion: Champion | None
    feature_store: FeatureStore | None
    #: reads the published features from the online store (set with `feature_store`)
    online: OnlineReader | None
    accounts: dict[str, AccountRecord]
    errors: dict[str, str] = field(default_factory=dict)
    uplift: UpliftChampion | None = None
    #: the newest cutoff published to the online store: an account whose row predates it has left
    published: datetime | None = None

    @property
    def features(self) -> FeatureSet | None:
        return None if self.online is None else self.online.features

    def champion(self, kind: str) -> Champion | None:
        return self.churn if kind == CHURN else self.expansion

    def any_champion(self, kind: str) -> Champion | UpliftChampion | None:
        return self.uplift if kind == UPLIFT else self.champion(kind)


class LastTaken:
    """When each action was taken per account: the cool-downs and the uplift models' days-since inputs.
    Seeded from the interventions table and updated as the API records actions, so a cool-down starts the
    moment an action is reported. Every take is kept, so a replay clock sees the latest one before it."""

    def __init__(self, table: pa.Table) -> None:
        self._lock = threading.Lock()
        self._taken: dict[str, dict[str, list[datetime]]] = defaultdict(lambda: defaultdict(list))
        for account, action, ts in zip(
            *(table.column(c).to_pylist() for c in ("account_id", "action", "ts")), strict=True
        ):
            self._taken[account][action].append(ts)
        for actions in self._taken.values():
            for times in actions.values():
                times.sort()

    def of(self, account_id: str, as_of: datetime) -> dict[str, datetime]:
        """Each action's latest take at or before `as_of`."""
        latest = {}
        with self._lock:
            for action, times in self._taken.get(account_id, {}).items():
                before = bisect.bisect_right(times, as_of)
                if before:
                    latest[action] = times[before - 1]
        return latest

    def record(self, account_id: str, action: str, ts: datetime) -> None:
        with self._lock:
            bisect.insort(self._taken[account_id][action], ts)


class Resources:
    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        #: read and checked once, at start: a playbook that does not read stops `retain serve` with its line
        self.playbook = store_playbook(store, settings)
        self.log = DecisionLog.for_store(store, settings)
        self.keys = key_ring(store, settings, self.log)
        #: webhook subscriptions and dead deliveries, managed through the API (the worker runs beside it)
        self.outbox = Outbox(self.log)
        self._loaded = Loaded(None, None, None, None, {})
        self.taken = LastTaken(INTERVENTION_SCHEMA.empty_table())
        #: the deployment's reload generation, and the one this process last loaded at
        self.reloads = Reloads(store.serving_dir / RELOADS_FILE)
        self._generation = self.reloads.current()
        self._reload_lock = threading.RLock()
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    @property
    def loaded(self) -> Loaded:
        """What is loaded; loaded anew first when another worker has taken a reload since
        (`serving/reloads.py`)."""
        if self.reloads.current() > self._generation:
            self._catch_up()
        return self._loaded

    @loaded.setter
    def loaded(self, loaded: Loaded) -> None:
        self._loaded = loaded

    def _catch_up(self) -> None:
        with self._reload_lock:
            target = self.reloads.current()
            if target > self._generation:
                self._generation = target
                self._load()

    def reload(self) -> tuple[list[str], dict[str, str]]:
        """Load everything anew here, then have the other workers do so before they answer again; what
        changed and what could not be loaded (or told)."""
        with self._reload_lock:
            changed, errors = self._load()
            try:
                self._generation = self.reloads.bump()
            except OSError as e:
                errors["workers"] = f"the other workers were not told to reload: {type(e).__name__}: {e}"
        return changed, errors

    # -- lifecycle -------------------------------------------------------------------------------------
    def open(self) -> None:
        self.log.start()
        self._load()
        if self.settings.serve.reload_seconds > 0:
            self._poller = threading.Thread(target=self._poll, name="retain-alias-poller", daemon=True)
            self._poller.start()

    def close(self) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=5)
        self.log.close()

    def _poll(self) -> None:
        while not self._stop.wait(self.settings.serve.reload_seconds):
            try:
                if self._champions_moved() or self._tables_read_again():
                    self.reload()
            except Exception:  # the poller must outlive a registry hiccup
                log.exception("checking the champion aliases failed; will retry")

    def _champions_moved(self) -> bool:
        for kind in (*MODELS, UPLIFT):
            current = self.loaded.any_champion(kind)
            try:
                version = resolve(client(self.store, self.settings), f"{kind}@champion").version
            except RegistryUnavailable as e:
                log.warning("checking the champion aliases: %s; keeping the champions loaded", e)
                return False
            except RetainError:
                version = None
            if version != (current.info.version if current else None):
                return True
        return False

    def _tables_read_again(self) -> bool:
        """A table the last load could not read reads now: load it (until then, not ready)."""
        failed = [t for t in ("accounts", "interventions") if t in self.loaded.errors]
        return bool(failed) and not self._table_problems(exclude=set(SERVED_TABLES) - set(failed))

    # -- loading ---------------------------------------------------------------------------------------
    def _load(self) -> tuple[list[str], dict[str, str]]:
        """Load everything anew and swap it in, in this process; what changed and what could not be loaded."""
        with self._reload_lock:
            errors: dict[str, str] = {}
            before = self._loaded
            champions = {kind: self._champion(kind, errors) for kind in MODELS}
            uplift = self._uplift(errors)
            accounts = self._accounts(before.accounts, errors)
            online_store, online, published = self._feature_store(before.feature_store, accounts, errors)
            if (taken := self._interventions(errors)) is not None:
                self.taken = LastTaken(taken)
            errors.update(self._table_problems(exclude=errors))
            self._loaded = Loaded(
                champions[CHURN],
                champions[EXPANSION],
                online_store,
                online,
                accounts,
                errors,
                uplift,
                published,
            )
            now = {**champions, UPLIFT: uplift}
            changed = [kind for kind in now if _label(now[kind]) != _label(before.any_champion(kind))]
            for kind in changed:
                log.info("%s champion: %s -> %s", kind, _label(before.any_champion(kind)), _label(now[kind]))
            for what, error in errors.items():
                log.warning("%s not loaded: %s", what, error)
            return changed, errors

    def _champion(self, kind: str, errors: dict[str, str]) -> Champion | None:
        """The current champion; the one loaded before when the registry or the new version cannot be
        read (said in `errors`), none when no version holds the alias."""
        current = self._loaded.champion(kind)  # inside a reload: never a catch-up
        try:
            mlflow_client = client(self.store, self.settings)
            info = resolve(mlflow_client, f"{kind}@champion")
            if current is not None and current.info.version == info.version:
                return current
            model = scoring_model(mlflow_client, info)
            model.threads = 1  # a request is one row; threads only fight the other requests for cores
            return Champion(model, info)
        except Exception as e:  # a broken registry or artifact must not stop the service
            return _kept(kind, current, e, errors)

    def _uplift(self, errors: dict[str, str]) -> UpliftChampion | None:
        """The uplift champion, kept as `_champion` keeps one; without one, the rules rank actions."""
        current = self._loaded.uplift
        try:
            mlflow_client = client(self.store, self.settings)
            info = resolve(mlflow_client, f"{UPLIFT}@champion")
            if current is not None and current.info.version == info.version:
                return current
            return UpliftChampion(uplift_model(mlflow_client, info), info)
        except Exception as e:  # as in _champion
            return _kept(UPLIFT, current, e, errors)

    def _feature_store(
        self, current: FeatureStore | None, accounts: dict[str, AccountRecord], errors: dict[str, str]
    ) -> tuple[FeatureStore | None, OnlineReader | None, datetime | None]:
        """The store, a reader of its features, and the end of the latest materialisation (a publish
        writes every account's row up to the build's last cutoff); its store is read for `accounts`."""
        try:
            online_store = current or feature_store(self.store, self.settings)
            online_store.refresh_registry()
            view = online_store.get_feature_view(VIEW)
            published = view.materialization_intervals[-1][1] if view.materialization_intervals else None
            features = feature_set(online_store, [f.name for f in view.features])
            reader = OnlineReader(online_store.provider, online_store.config, view, features)
        except Exception as e:  # Feast raises its own types for a missing or broken repo
            errors["features"] = _said(e)
            return None, None, None
        # kept although its store cannot be read now: the rules answer (saying why) until it can, no restart
        if (problem := _unreadable(reader, list(accounts), published)) is not None:
            errors["online_store"] = problem
        return online_store, reader, published

    def _accounts(self, loaded: dict[str, AccountRecord], errors: dict[str, str]) -> dict[str, AccountRecord]:
        """The accounts table by id; the accounts `loaded` before when it cannot be read (said in `errors`):
        an empty set would take every id as known and show an empty book."""
        try:
            with reading("accounts"):
                table = self.store.read("accounts", ACCOUNT_SCHEMA, ACCOUNT_COLUMNS)
        except Exception as e:  # a broken table must not empty what is served
            errors["accounts"] = f"{_said(e)} (still serving the {len(loaded):,} accounts loaded before)"
            return loaded
        return {row["account_id"]: AccountRecord(**row) for row in table.to_pylist()}

    def _interventions(self, errors: dict[str, str]) -> pa.Table | None:
        """The store's interventions and those the API recorded that are not merged into it yet; None when
        the store's cannot be read (said in `errors`), to keep the cool-downs loaded before."""
        columns = ["account_id", "action", "ts"]
        try:
            with reading("interventions"):
                stored = self.store.read("interventions", INTERVENTION_SCHEMA, columns)
        except Exception as e:  # as in _accounts
            errors["interventions"] = f"{_said(e)} (still serving the actions taken loaded before)"
            return None
        try:
            pending = self.log.taken(pending_only=True)
        except DecisionLogUnavailable as e:
            errors["interventions_taken"] = str(e)
            return stored
        recorded = pa.Table.from_pylist(
            [{c: getattr(taken, c) for c in columns} for taken in pending], schema=stored.schema
        )
        return pa.concat_tables([stored, recorded])

    def _table_problems(self, exclude: Collection[str] = ()) -> dict[str, str]:
        """Why each table the service reads (but those in `exclude`) cannot be read now, by table."""
        found = {table: table_problem(self.store, table) for table in SERVED_TABLES if table not in exclude}
        return {table: problem for table, problem in found.items() if problem is not None}

    # -- reads -----------------------------------------------------------------------------------------
    def online_rows(self, loaded: Loaded, account_ids: Sequence[str]) -> FeatureRows:
        """The latest published feature row per account (no cutoff when there is none); without a
        feature store, rows with nothing in them, which the rules then answer. `OnlineStoreUnavailable`
        when the store is published but cannot be read now."""
        if loaded.online is None:
            return rows_without_values(account_ids)
        return loaded.online.rows(account_ids)

    def as_of(self) -> datetime:
        """The serving clock: now, or the configured replay date (end of that day, UTC)."""
        day = self.settings.serve.as_of
        if day is None:
            return datetime.now(UTC)
        return datetime.combine(day, time.max, tzinfo=UTC)

    def readiness(self) -> Readiness:
        """Ready when a churn champion is loaded, real accounts' rows read from the online store, every
        table the service reads reads and a write to the decision log lands, each tried now; and the
        accounts and actions taken in memory are those of their tables (a failed load keeps the previous
        ones). What failed is named in `errors`."""
        loaded = self.loaded
        tried_now = ("online_store", "decision_log", *LIVE_TABLES)
        errors = {k: v for k, v in loaded.errors.items() if k not in tried_now}
        tables = self._table_problems(exclude=errors)
        errors.update(tables)
        store = loaded.online is not None
        if loaded.online is not None:
            problem = _unreadable(loaded.online, list(loaded.accounts), loaded.published)
            if problem is not None:
                store, errors["online_store"] = False, problem
        try:
            self.log.check_writable()
            writable = True
        except DecisionLogUnavailable as e:
            writable, errors["decision_log"] = False, str(e)
        model = loaded.churn is not None
        loaded_tables = not any(table in errors for table in SERVED_TABLES)
        return Readiness(
            ready=model and store and writable and loaded_tables,
            model=model,
            uplift=loaded.uplift is not None,
            store=store,
            tables=loaded_tables,
            decision_log_writable=writable,
            errors=errors,
            decision_log=self.log.url,
        )


def rows_without_values(account_ids: Sequence[str]) -> FeatureRows:
    """A row per account with nothing in it: no cutoff, every catalogue feature null (a champion still
    checks its inputs' ranges on it); the rules answer it, saying why."""
    nulls = [None] * len(account_ids)
    return FeatureRows.build(
        account_ids, nulls, dict.fromkeys(FEATURE_NAMES, nulls), FEATURE_NAMES, frozenset(CATEGORICAL)
    )


def _label(champion: Champion | UpliftChampion | None) -> str | None:
    return champion.label if champion else None


_Kept = TypeVar("_Kept", Champion, UpliftChampion)


def _kept(kind: str, current: _Kept | None, error: Exception, errors: dict[str, str]) -> _Kept | None:
    """After a failed load: none when the registry says no version holds the alias; otherwise (the
    registry or the model cannot be read) the champion loaded before, if any. Said in `errors`."""
    said = _said(error)
    kept = None if isinstance(error, UnknownModel) else current
    errors[kind] = said if kept is None else f"{said} (still serving {kept.label})"
    return kept


def _said(error: Exception) -> str:
    """A load's failure in words: ours as they are, another library's with its type."""
    return str(error) if isinstance(error, RetainError) else f"{type(error).__name__}: {error}"


def _unreadable(reader: OnlineReader, account_ids: list[str], published: datetime | None) -> str | None:
    """Why the online store cannot be read now, or None. Real accounts' rows are read, spread over the
    ids: a key no row holds is answered from the index alone, so a file whose data pages are damaged
    would look sound. Once features are published, at least one of those rows must be there."""
    ids = sorted(account_ids)
    probed = ids[:: max(1, len(ids) // PROBED)][:PROBED] or ["readiness-probe"]
    try:
        rows = reader.rows(probed)
    except OnlineStoreUnavailable as e:
        return str(e)
    if account_ids and published is not None and not any(rows.cutoffs):
        return f"the online store holds no row for any of {len(probed)} accounts read; publish features"
    return None
