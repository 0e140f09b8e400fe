"""Cross-fitting side by side: the out-of-fold baselines and propensities that many treatments share,
fitted fold by fold on local processes or Spark's executors (`Workers`), with a progress bar on stderr.

An outcome's baseline E[Y | x] does not depend on the treatment, so one fit per fold serves every
action. Every treatment's propensity over the same rows uses the same folds and held-out accounts, so one
task fits a fold for a group of treatments on datasets binned once (`PropensityFold`). The results
equal fitting each treatment alone, in any order and in any number of processes.

With a `cache` folder, a sample's out-of-fold predictions are kept under a digest of everything they
depend on (covariates, labels, folds, groups, seed, settings and this code), so the causal report over
the weekly design reuses what uplift training over the same design fitted, and a changed input never
reuses a stale result.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
from tqdm.auto import tqdm

from core.files import atomic_path, keep_newest
from core.parallel import Workers, side_by_side
from core.settings import NuisanceSampling
from store.delta import Store
from training.causal import doubly_robust

Splits = list[tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Sample:
    """Rows to cross-fit on: their covariates, folds and groups, the 0/1 outcomes whose baseline to fit
    and the treatments whose targeted propensity to fit (`targeted`), as labels over the rows."""

    x: doubly_robust.Matrix
    splits: Splits
    groups: np.ndarray
    seed: int
    outcomes: dict[str, np.ndarray] = field(default_factory=dict)
    treatments: dict[str, np.ndarray] = field(default_factory=dict)
    #: also fit each outcome's baseline on every row (the model a ranking predicts with)
    whole_baselines: bool = False
    #: fit each treatment's propensity on a case-control sample of the fold (`doubly_robust.control_sample`)
    sampling: NuisanceSampling | None = None


@dataclass(frozen=True)
class Fitted:
    """A sample's out-of-fold predictions per outcome (baseline) and per treatment (targeted propensity),
    and the baselines fitted on every row where asked."""

    baseline: dict[str, np.ndarray]
    targeted: dict[str, np.ndarray]
    whole_baselines: dict[str, lgb.Booster | float]


@dataclass(frozen=True)
class _Task:
    """One worker's job: `run(*args)` for `sample`, stored under `kind` and `names` for `rows`."""

    sample: int
    kind: str
    names: list[str]
    rows: np.ndarray | None
    run: Callable[..., Any]
    args: tuple[Any, ...]


def _tasks(samples: list[Sample], chunks: int, threads: int) -> Iterator[_Task]:
    """Propensity folds first (the longer jobs, split into `chunks` groups of treatments), then baselines."""
    for i, s in enumerate(samples):
        names = list(s.treatments)
        for group in (g for g in np.array_split(np.array(names, dtype=object), chunks) if len(g)):
            for fold, (fit_rows, predict_rows) in enumerate(s.splits):
                labels = [s.treatments[n] for n in group]
                args: tuple[Any, ...] = (
                    s.x,
                    labels,
                    fit_rows,
                    predict_rows,
                    s.groups,
                    s.seed + fold,
                    threads,
                    s.sampling,
                )
                yield _Task(i, "targeted", list(group), predict_rows, doubly_robust.fold_propensities, args)
    for i, s in enumerate(samples):
        for name, label in s.outcomes.items():
            for fold, (fit_rows, predict_rows) in enumerate(s.splits):
                args = (s.x, label, fit_rows, predict_rows, s.seed + fold, threads)
                yield _Task(i, "baseline", [name], predict_rows, _fold_baseline, args)
            if s.whole_baselines:
                args = (s.x, np.arange(len(label)), label, s.seed, threads)
                yield _Task(i, "whole", [name], None, _whole_baseline, args)


def _fold_baseline(*args: Any) -> list[np.ndarray]:
    return [doubly_robust.fold_baseline(*args)]


def _whole_baseline(*args: Any) -> list[lgb.Booster | float]:
    return [doubly_robust.fit_baseline(*args)]


def _run(number: int, task: _Task) -> tuple[int, list[Any]]:
    """The task's results under its number: the task itself holds the design matrix, too large to send
    back with every result (at 10,000 accounts, 14 tasks' copies passed Spark's 1 GiB result limit)."""
    return number, task.run(*task.args)


#: the cache keeps the latest this many samples' fits (a few MB each)
CACHE_KEEP = 8


def crossfit_cache(store: Store) -> Path:
    """Where a store's cross-fitted predictions are kept: local state, beside the store's other caches."""
    return store.root / "cache" / "crossfit"


def _digest(sample: Sample, threads: int) -> str:
    """Everything a sample's out-of-fold fits depend on, hashed: inputs, settings and the fitting code."""
    h = hashlib.sha256()
    code = (Path(doubly_robust.__file__).read_bytes(), Path(__file__).read_bytes(), lgb.__version__.encode())
    settings = repr(
        (
            doubly_robust.NUISANCE_PARAMS,
            doubly_robust.BASELINE_PARAMS,
            doubly_robust.NUISANCE_ROUNDS,
            doubly_robust.BASELINE_ROUNDS,
        )
    )
    shape = repr((sample.x.columns, sample.x.categorical, sample.sampling))
    for part in (*code, settings.encode(), shape.encode()):
        h.update(part)
    arrays = [
        sample.x.values,
        np.unique(sample.groups, return_inverse=True)[1],
        np.array([sample.seed, threads, len(sample.outcomes), len(sample.treatments)]),
    ]
    arrays += [a for split in sample.splits for a in split]
    # labels by value, not by type: 0/1 outcomes arrive as integers from training, as floats from the report
    arrays += [
        np.asarray(v, dtype=np.float64) for v in (*sample.outcomes.values(), *sample.treatments.values())
    ]
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:32]


def _cached(sample: Sample, path: Path) -> Fitted | None:
    """The sample's fits from `path`, in the sample's own names (the cache keeps them by position)."""
    if not path.exists():
        return None
    with np.load(path) as kept:
        arrays = [kept[f"arr_{i}"] for i in range(len(sample.outcomes) + len(sample.treatments))]
    baseline = dict(zip(sample.outcomes, arrays, strict=False))
    targeted = dict(zip(sample.treatments, arrays[len(sample.outcomes) :], strict=True))
    path.touch()
    return Fitted(baseline, targeted, {})


def _keep(fitted: Fitted, path: Path) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, *fitted.baseline.values(), *fitted.targeted.values())
    keep_newest(path.parent, "*.npz", CACHE_KEEP)


def fit_side_by_side(
    samples: list[Sample], *, workers: Workers, threads: int, desc: str, cache: Path | None = None
) -> list[Fitted]:
    """Every sample's baselines and propensities, fold by fold, on `workers`; those in `cache` are read
    instead (the baselines fitted on every row are always fitted)."""
    paths = [None if cache is None else cache / f"{_digest(s, threads)}.npz" for s in samples]
    found = [None if path is None else _cached(s, path) for s, path in zip(samples, paths, strict=True)]
    # a found sample still fits its baselines on every row, where asked: no folds, no treatments
    todo = [
        s if hit is None else replace(s, splits=[], treatments={})
        for s, hit in zip(samples, found, strict=True)
    ]
    fitted = _fit(todo, workers, threads, desc)
    out = []
    for hit, new, path in zip(found, fitted, paths, strict=True):
        if hit is not None:
            out.append(replace(hit, whole_baselines=new.whole_baselines))
            continue
        if path is not None:
            _keep(new, path)
        out.append(new)
    return out


def _fit(samples: list[Sample], workers: Workers, threads: int, desc: str) -> list[Fitted]:
    jobs = workers.jobs
    chunks = jobs if jobs > 1 and sum(len(s.splits) for s in samples) % jobs else 1
    tasks = list(_tasks(samples, chunks, threads))
    out = [Fitted({}, {}, {}) for _ in samples]
    for s, fitted in zip(samples, out, strict=True):
        n = len(s.groups)
        fitted.baseline.update({name: np.empty(n) for name in s.outcomes})
        fitted.targeted.update({name: np.empty(n) for name in s.treatments})
    if not tasks:
        return out
    done = side_by_side([(_run, (number, task)) for number, task in enumerate(tasks)], workers)
    with tqdm(total=len(tasks), desc=desc, unit="fit", disable=None) as bar:
        for number, results in done:
            task = tasks[number]
            for name, result in zip(task.names, results, strict=True):
                fitted = out[task.sample]
                if task.kind == "whole":
                    fitted.whole_baselines[name] = result
                else:
                    getattr(fitted, task.kind)[name][task.rows] = result
            bar.set_postfix_str(f"{task.kind} {', '.join(task.names)[:40]}", refresh=False)
            bar.update()
    return out
