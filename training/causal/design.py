"""The uplift design: one row per (account, week), its features and days since each action, which actions it
received that week, how each was assigned, whether its account was held out, and its outcomes at the
horizon.

Rows sit at weekly cutoffs on the interventions' weekday, so features at a cutoff see exactly what the
CS team saw when it chose that week's actions (`ts < cutoff`), and "treated with a" means a was taken in
[cutoff, cutoff + 7 days). An action taken from an experiment arm carries its known propensity; the
other arm's propensity must be estimated. The pure part (`treatments`, `weekly_cutoffs`) works on frames;
`store_design` reads the store.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cached_property
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from tqdm import tqdm

import core
import features
import store as store_floor
import training
from core.catalogue import ACTIONS, Action
from core.contract import HOLDOUT
from core.errors import RetainError
from core.files import atomic_path, keep_newest
from core.settings import Settings
from features.definitions import KEYS
from features.playbook_file import store_playbook
from features.run import DuckDBFeatures, FeatureEngine, feature_engine, register_store
from features.stored import INPUTS
from store.delta import Store
from training.causal import doubly_robust, recency
from training.causal.holdout import HoldoutWeeks, holdout_weeks
from training.causal.uplift import OUTCOMES
from training.labels import Target, label_frame

WEEK = pd.Timedelta(days=7)
#: designs kept per store, the most recently used; each is about the size of the rows in memory
DESIGNS_KEPT = 2
#: settings that say where things run, not what a design holds: a change of these keeps the kept design
DEPLOYMENT_SETTINGS = {"home", "online_store", "redis_url", "mlflow_tracking_uri", "serve", "cockpit"}


@dataclass(frozen=True)
class Design:
    """Rows in (cutoff, account) order and, per action, three aligned arrays over those rows."""

    rows: pd.DataFrame
    #: the playbook's actions the team took within the design's weeks, in catalogue order: what uplift can
    #: be estimated for (an action never taken yet is ranked by the rules until it has been)
    actions: dict[str, Action]
    #: action -> 1 where the action was taken in the week after the cutoff
    treated: dict[str, np.ndarray]
    #: action -> 1 where it was taken by the experiment arm (a subset of `treated`)
    randomised: dict[str, np.ndarray]
    #: action -> the experiment arm's known propensity for that row's week (0 where the arm was not run)
    known_propensity: dict[str, np.ndarray]
    #: outcome -> 0/1 at the horizon
    outcomes: dict[str, np.ndarray]
    #: action -> its latest take before each row's cutoff (NaT where none): the cool-downs; the rows carry
    #: the same as days-since columns (`recency`)
    last_taken: dict[str, np.ndarray]
    #: action -> the share of the horizon still ahead when it was first taken from the cutoff on (0 where it
    #: was not taken within the horizon; `recency.horizon_left`): whether, and how soon, an untreated row's
    #: account got the action later anyway (`doubly_robust.control_treated_later`)
    horizon_left: dict[str, np.ndarray]
    #: which rows' accounts were held out at their cutoff, and how long after a holdout draw each row is
    holdout: HoldoutWeeks

    def take(self, keep: np.ndarray) -> Design:
        """The design over the rows `keep` (a boolean mask) only."""
        return Design(
            self.rows[keep].reset_index(drop=True),
            self.actions,
            {a: v[keep] for a, v in self.treated.items()},
            {a: v[keep] for a, v in self.randomised.items()},
            {a: v[keep] for a, v in self.known_propensity.items()},
            {o: v[keep] for o, v in self.outcomes.items()},
            {a: v[keep] for a, v in self.last_taken.items()},
            {a: v[keep] for a, v in self.horizon_left.items()},
            HoldoutWeeks(self.holdout.held_out[keep], self.holdout.days_since_draw[keep]),
        )

    def usual_course(self) -> Design:
        """The rows whose account the team was free to act on: what the per-action contrasts compare
        (`holdout`: a held-out week is neither this week's act nor the usual course)."""
        return self.take(~self.holdout.held_out)

    def taken_later(self, action: str) -> np.ndarray:
        """1 where the action was taken within the horizon from the cutoff on."""
        return (self.horizon_left[action] > 0).astype(np.int8)

    @cached_property
    def groups(self) -> np.ndarray:
        """Each row's account as a code (`doubly_robust.account_codes`): rows of one account are not
        independent, so folds, bootstraps and standard errors cluster on it."""
        return doubly_robust.account_codes(self.rows["account_id"].to_numpy())


def weekly_cutoffs(intervention_days: Sequence[date], first: date, last: date) -> list[date]:
    """Every 7th day from `first` to `last`, on the weekday the interventions were mostly taken on."""
    weekday = pd.Series([d.weekday() for d in intervention_days]).mode()
    start = first + timedelta(days=(int(weekday.iloc[0]) - first.weekday()) % 7 if len(weekday) else 0)
    return [start + timedelta(days=7 * k) for k in range((last - start).days // 7 + 1)]


def treatments(
    keys: pd.DataFrame, interventions: pd.DataFrame, actions: Sequence[str] = ACTIONS
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(treated, randomised, known_propensity) per action for `keys` (account_id, cutoff): actions taken in
    [cutoff, cutoff + 7 days). The known propensity is the arm's for that week, whether or not this row got
    the action: an experiment arm draws from every active account alike."""
    iv = interventions[["account_id", "ts", "action", "assignment", "propensity"]].copy()
    iv["ts"] = pd.to_datetime(iv["ts"], utc=True)
    cutoffs = pd.DatetimeIndex(np.sort(keys["cutoff"].unique()))
    slot = cutoffs.searchsorted(iv["ts"], side="right") - 1
    inside = slot >= 0
    iv = iv[inside].assign(cutoff=cutoffs[slot[inside]])
    iv = iv[iv["ts"] < iv["cutoff"] + WEEK]
    # an experiment arm draws every catalogue action alike: its propensity is per week, whichever action
    # a row drew (a week in which it ran but never drew action a still gave every row a chance of a)
    arm = iv[iv["assignment"] == "random"].groupby("cutoff")["propensity"].max()
    week_propensity = keys["cutoff"].map(arm).fillna(0.0).to_numpy(float)
    key_index = pd.MultiIndex.from_frame(keys[["account_id", "cutoff"]])
    treated, randomised, known = {}, {}, {}
    for action in actions:
        mine = iv[iv["action"] == action]
        taken = pd.MultiIndex.from_frame(mine[["account_id", "cutoff"]])
        by_arm = pd.MultiIndex.from_frame(mine.loc[mine["assignment"] == "random", ["account_id", "cutoff"]])
        treated[action] = key_index.isin(taken).astype(np.int8)
        randomised[action] = key_index.isin(by_arm).astype(np.int8)
        known[action] = week_propensity
    return treated, randomised, known


def with_takes(catalogue: Mapping[str, Action], treated: Mapping[str, np.ndarray]) -> dict[str, Action]:
    """The catalogue's actions taken in at least one of the design's weeks, in catalogue order: the ones
    uplift can be estimated for. A new playbook action joins once the team has taken it."""
    return {a: action for a, action in catalogue.items() if a in treated and treated[a].any()}


def read_interventions(store: Store, versions: Mapping[str, int | None] | None = None) -> pd.DataFrame:
    """The interventions table (at `versions["interventions"]`, default the latest)."""
    version = store.version("interventions") if versions is None else versions.get("interventions")
    if version is None:
        raise RetainError(
            f"no interventions in {store.location}: uplift needs the actions taken and their arms"
        )
    with duckdb.connect() as con:
        register_store(con, store, versions)
        return con.execute("SELECT * FROM interventions").df()


def store_design(store: Store, settings: Settings, horizon_days: int, threads: int = 2) -> Design:
    """Weekly feature rows over the store's matured span, with days since each action, treatments and both
    outcomes.

    Uplift training, the causal report and promotion's evaluation weeks read the same design from the same
    tables, so it is kept in the store's `cache/design/` under a digest of what it is built from: each input
    table's identity and version, the settings, the horizon and the code. An ingest, a changed setting or
    changed code builds it afresh."""
    playbook = store_playbook(store, settings)
    tables = {name: store.delta(name) for name in INPUTS}
    versions = {name: None if t is None else t.version() for name, t in tables.items()}
    identities = {name: None if t is None else (t.metadata().id, t.version()) for name, t in tables.items()}
    digest = _digest(identities, settings, horizon_days, playbook.digest)
    path = store.root / "cache" / "design" / f"{digest}.pkl"
    kept = _read_kept(path)
    if kept is not None:
        return kept
    design = _build(store, versions, settings, horizon_days, threads, playbook.actions)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        pickle.dump(design, f, protocol=pickle.HIGHEST_PROTOCOL)
    keep_newest(path.parent, "*.pkl", DESIGNS_KEPT)
    return design


def _digest(identities: Mapping[str, object], settings: Settings, horizon_days: int, playbook: str) -> str:
    """What a design is built from, hashed: the input tables (id and version: a table made anew starts its
    versions again), the settings, the horizon, the playbook file and every source file of the code that
    builds it."""
    h = hashlib.sha256(repr((sorted(identities.items()), horizon_days, playbook, pd.__version__)).encode())
    h.update(settings.model_dump_json(exclude=DEPLOYMENT_SETTINGS).encode())
    for package in (features, training, core, store_floor):
        folder = Path(package.__path__[0])
        for source in sorted(p for p in folder.rglob("*") if p.suffix in (".py", ".sql")):
            h.update(source.read_bytes())
    return h.hexdigest()[:32]


def _read_kept(path: Path) -> Design | None:
    """The design kept at `path`, or None when there is none or it cannot be read (then it is rebuilt)."""
    try:
        with open(path, "rb") as f:
            design = pickle.load(f)
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError):
        return None
    if not isinstance(design, Design):
        return None
    path.touch()
    return design


def _build(
    store: Store,
    versions: Mapping[str, int | None],
    settings: Settings,
    horizon_days: int,
    threads: int,
    catalogue: Mapping[str, Action],
) -> Design:
    interventions = read_interventions(store, versions)
    with feature_engine(settings, threads) as runner:
        runner.register(store, versions)
        first_ts, last_ts = runner.event_span()
        if first_ts is None or last_ts is None:
            raise RetainError(f"no events in {store.location}: the uplift design is built from them")
        taken = interventions[interventions["assignment"] != HOLDOUT]
        days = sorted({t.date() for t in pd.to_datetime(taken["ts"], utc=True)})
        matured_until = last_ts.date() - timedelta(days=horizon_days)
        cutoffs = weekly_cutoffs(days, first_ts.date() + timedelta(days=28), matured_until)
        if not cutoffs:
            raise RetainError("the store's events do not span a full horizon after the first month")
        bar = tqdm(total=3, desc=f"design: {len(cutoffs)} weekly cutoffs", unit="step", disable=None)
        rows = runner.build(cutoffs, settings).to_pandas()
        bar.update()
        labels = {o: _labels(runner, rows[list(KEYS)], o, horizon_days) for o in OUTCOMES}  # type: ignore[arg-type]
        bar.update()
    keep = labels["churn"][["account_id", "cutoff", "matured"]].merge(
        labels["expansion"][["account_id", "cutoff", "matured"]], on=["account_id", "cutoff"]
    )
    keep = keep[keep["matured_x"] & keep["matured_y"]][["account_id", "cutoff"]]
    rows["cutoff"] = pd.to_datetime(rows["cutoff"], utc=True).astype("datetime64[us, UTC]")
    rows = rows.merge(keep, on=["account_id", "cutoff"])
    # past its renewal date without a renewal (the grace week), an account's churn is already decided and
    # no action is taken on it: such rows would be certain churners that are never treated
    rows = rows[~(rows["days_to_renewal"] < 0)].reset_index(drop=True)
    outcomes = {
        o: rows[["account_id", "cutoff"]].merge(labels[o], on=["account_id", "cutoff"])["label"].to_numpy()
        for o in OUTCOMES
    }
    treated, randomised, known = treatments(rows, interventions, list(catalogue))
    learnable = with_takes(catalogue, treated)
    actions = list(learnable)
    treated, randomised, known = ({a: d[a] for a in actions} for d in (treated, randomised, known))
    last = recency.last_taken(rows, interventions, actions)
    left = recency.horizon_left(rows, interventions, horizon_days, actions)
    ahead = {a: left[:, j] for j, a in enumerate(actions)}
    bar.update()
    bar.close()
    held = holdout_weeks(rows, interventions)
    return Design(
        recency.with_recency(rows, last),
        learnable,
        treated,
        randomised,
        known,
        outcomes,
        last,
        ahead,
        held,
    )


def _labels(runner: FeatureEngine, rows: pd.DataFrame, target: Target, horizon_days: int) -> pd.DataFrame:
    """The labels on the engine that built the rows: DuckDB's connection, or Spark's session (the events
    stay where Spark reads them)."""
    if isinstance(runner, DuckDBFeatures):
        return label_frame(runner.con, rows, target, horizon_days)
    # deferred: the Spark side imports sqlglot and PySpark, which a DuckDB design never needs
    from features.spark_build import SparkFeatures
    from training.causal.spark_design import spark_label_frame

    assert isinstance(runner, SparkFeatures)
    return spark_label_frame(runner.spark, rows, target, horizon_days)
