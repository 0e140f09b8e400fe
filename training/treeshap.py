"""Exact path-dependent TreeSHAP for a LightGBM booster, compiled with numba.

LightGBM's `pred_contrib` walks every tree recursively for every row, O(leaves x depth^2) per tree. The
same values can be had with far less work per row, because they depend on the row only through the side
it takes at each split:

- Each tree is cut into its root-to-leaf paths (a feature repeated on a path merged into one, its cover
  fractions multiplied, as the recursion's unwinding does). A path's share for each of its d distinct
  features depends only on which of them the row satisfies, so the shares are tabulated once per model
  over those 2^d patterns (d <= PATH_FEATURES; longer paths are computed per row with the same
  extend/unwind arithmetic LightGBM uses).
- A subtree whose splits, with its ancestors', number at most UNIT_SPLITS gets one table over all their
  decisions, summing its paths' shares: a row then costs one comparison per split and one addition per
  distinct feature of the subtree. The largest such subtrees are chosen (the whole tree when it is small),
  the paths outside them use their own tables.

Splits are decided exactly as LightGBM decides them from a float64 matrix: values within 1e-35 of zero
read as zero, missing values follow the split's missing type and default direction, and categorical
splits test the code against the split's bitset. `Forest.of` returns None for what this does not cover
(several trees per iteration, linear trees, averaged output, trees of more than 63 splits), and callers
use `pred_contrib` instead. The contributions agree with `pred_contrib` to rounding (~1e-15).

Over 500 lines: one algorithm, whose numba kernels and the builder of their tables share one layout.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import lightgbm as lgb
import numba
import numpy as np

#: paths with at most this many distinct features get a table of their shares
PATH_FEATURES = 8
#: subtrees whose splits and ancestors number at most this get a table over their decisions
UNIT_SPLITS = 8
#: tables stop growing here (bytes each kind); what is left is computed per row
BUDGET = 64 * 2**20
#: rows per block: one block's contributions stay in cache while every tree is applied to it
BLOCK = 64
#: from this many rows on, blocks run on several threads; fewer take the caller's (a served request)
PARALLEL_ROWS = 1024
#: LightGBM's kZeroThreshold (a float 1e-35): inputs this close to zero are read as zero
ZERO = float(np.float32(1e-35))
#: the most splits a tree may have: a row's decisions in one tree are the bits of an int64
MAX_SPLITS = 63
CATEGORICAL, DEFAULT_LEFT = 1, 2
MISSING_ZERO, MISSING_NAN = 1, 2
#: compiled once and cached on disk; C's arithmetic (a division by zero gives inf or NaN, as in LightGBM)
jit = numba.njit(cache=True, nogil=True, error_model="numpy")
jit_inline = numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")

Step = tuple[int, bool, int, float]
Slot = tuple[int, int, int, float]


@dataclass(frozen=True)
class Top:
    """Each row's margin and its `k` largest contributions by size (on a tie, the earlier feature first)."""

    margin: np.ndarray
    order: np.ndarray
    picked: np.ndarray


@dataclass(frozen=True)
class Forest:
    """A booster's trees as flat arrays for the kernels (see the module docstring). Offsets arrays have
    one entry more than what they index: item i spans [offsets[i], offsets[i + 1])."""

    features: int
    #: the most distinct features on one path (scratch size)
    widest: int
    #: the sum of the trees' expected values, added in tree order as LightGBM does
    bias: float
    #: per tree: offsets of its splits, of its units (tabled subtrees) and of its loose paths
    tree_nodes: np.ndarray
    tree_units: np.ndarray
    tree_loose: np.ndarray
    loose_path: np.ndarray
    #: per split: the feature, the threshold, where NaN and zero go, and a categorical split's bitset
    node_feature: np.ndarray
    node_threshold: np.ndarray
    node_nan_left: np.ndarray
    node_zero_left: np.ndarray
    node_bits: np.ndarray
    node_words: np.ndarray
    bits: np.ndarray
    #: per path: offsets of its slots (distinct features, padded to the widest path of its tree: a loop of
    #: fixed length runs faster than one whose end the CPU cannot predict), how many are real, its leaf
    #: value and where its table starts (-1: computed per row); per slot: the feature (padding: the
    #: scratch column after the last feature), the tree's splits on it along the path (a bit per split),
    #: the side the path takes at each (bit set: left) and its zero fraction
    path_slots: np.ndarray
    path_depth: np.ndarray
    slot_feature: np.ndarray
    slot_splits: np.ndarray
    slot_left: np.ndarray
    slot_zero: np.ndarray
    leaf: np.ndarray
    path_table: np.ndarray
    table: np.ndarray
    #: per unit: its paths, offsets of its splits (ancestors first) and of its distinct features, and
    #: where its table starts: a row per pattern of its decisions (bit i: left at its i-th split)
    unit_first: np.ndarray
    unit_end: np.ndarray
    unit_nodes: np.ndarray
    unit_node: np.ndarray
    unit_features: np.ndarray
    unit_feature: np.ndarray
    unit_table: np.ndarray
    cells: np.ndarray

    @classmethod
    def of(cls, booster: lgb.Booster) -> Forest | None:
        """The booster's trees as `predict` uses them (its best iteration, if it has one), or None."""
        header, trees = _parse(booster.model_to_string())
        if header.get("num_tree_per_iteration", "1") != "1" or "average_output" in header:
            return None
        if any(tree.get("is_linear", "0") != "0" for tree in trees):
            return None
        if any(int(tree["num_leaves"]) > MAX_SPLITS + 1 for tree in trees):
            return None
        return _build(int(header["max_feature_idx"]) + 1, trees)

    @cached_property
    def arrays(self) -> tuple[tuple[np.ndarray, ...], ...]:
        """The arrays grouped as the kernels unpack them: trees, splits, paths, units."""
        return tuple(tuple(getattr(self, name) for name in group) for group in GROUPS)

    def contributions(self, x: np.ndarray, threads: int = 0) -> np.ndarray:
        """`pred_contrib`'s answer for the float64 matrix `x`: (rows, features + 1), the bias last."""
        x = np.ascontiguousarray(x, dtype="float64")
        out = np.zeros((len(x), self.features + 1))
        _run(_contributions_rows, threads, x, self._args(out))
        return out

    def top(self, x: np.ndarray, k: int, threads: int = 0) -> Top:
        """Each row's margin and its `k` largest contributions, without keeping the others."""
        x = np.ascontiguousarray(x, dtype="float64")
        top = _empty_top(len(x), min(k, self.features))
        _run(_explain_rows, threads, x, self._args((top.margin, top.order, top.picked)))
        return top

    def warm(self) -> None:
        """Compile the kernel `top` runs, or load it from numba's cache, before a request needs it."""
        self.top(np.zeros((1, self.features)), 1)

    def _args(self, out: Any) -> tuple[Any, ...]:
        return (self.arrays, self.widest, self.bias, out)


GROUPS = (
    ("tree_nodes", "tree_units", "tree_loose", "loose_path"),
    ("node_feature", "node_threshold", "node_nan_left", "node_zero_left", "node_bits", "node_words", "bits"),
    (
        "path_slots",
        "path_depth",
        "slot_feature",
        "slot_splits",
        "slot_left",
        "slot_zero",
        "leaf",
        "path_table",
        "table",
    ),
    (
        "unit_first",
        "unit_end",
        "unit_nodes",
        "unit_node",
        "unit_features",
        "unit_feature",
        "unit_table",
        "cells",
    ),
)


def _empty_top(rows: int, k: int) -> Top:
    return Top(np.empty(rows), np.zeros((rows, k), dtype="int64"), np.zeros((rows, k)))


def top_of(contributions: np.ndarray, k: int) -> Top:
    """`Forest.top` from a `pred_contrib` matrix, for boosters `Forest.of` does not cover."""
    values = np.ascontiguousarray(contributions[:, :-1])
    top = _empty_top(len(values), min(k, values.shape[1]))
    _top_rows(values, top.order, top.picked)
    return Top(contributions.sum(axis=1), top.order, top.picked)


def _run(kernel: Any, threads: int, x: np.ndarray, args: tuple[Any, ...]) -> None:
    """`kernel` over the blocks of `x`: on this thread for a few rows or `threads=1`, else split among
    `threads` threads (0: one per CPU), which the compiled kernels run without holding the GIL."""
    blocks = -(-len(x) // BLOCK)
    workers = min(threads if threads > 0 else os.cpu_count() or 1, blocks)
    if workers <= 1 or len(x) < PARALLEL_ROWS:
        kernel(x, 0, blocks, *args)
        return
    pieces = np.linspace(0, blocks, min(4 * workers, blocks) + 1).astype(int).tolist()  # 4 each: balance
    with ThreadPoolExecutor(workers) as pool:
        for done in [pool.submit(kernel, x, a, b, *args) for a, b in itertools.pairwise(pieces)]:
            done.result()


def _parse(text: str) -> tuple[dict[str, str], list[dict[str, str]]]:
    """The model text's header and one key -> value mapping per tree."""
    blocks = text.split("\nend of trees")[0].split("\nTree=")
    return dict(_pairs(blocks[0])), [dict(_pairs(block)) for block in blocks[1:]]


def _pairs(block: str) -> Iterator[tuple[str, str]]:
    for line in block.splitlines():
        key, _, value = line.partition("=")
        if key.strip():
            yield key.strip(), value.strip()


def _numbers(tree: dict[str, str], key: str, dtype: str) -> np.ndarray:
    return np.array(tree.get(key, "").split(), dtype=dtype)


def _offsets(lengths: list[int]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(lengths, dtype="int64")]).astype("int64")


@dataclass
class _Columns:
    """A Forest's arrays as lists while the trees are read."""

    features: int
    splits: list[tuple[int, float, bool, bool, int, int]] = field(default_factory=list)
    bits: list[int] = field(default_factory=list)
    slots: list[Slot] = field(default_factory=list)
    path_slots: list[int] = field(default_factory=lambda: [0])
    path_depth: list[int] = field(default_factory=list)
    leaf: list[float] = field(default_factory=list)
    loose_path: list[int] = field(default_factory=list)
    #: per unit: first path, end path, its splits (tree-local), its distinct features
    units: list[tuple[int, int, list[int], list[int]]] = field(default_factory=list)
    tree_nodes: list[int] = field(default_factory=lambda: [0])
    tree_units: list[int] = field(default_factory=lambda: [0])
    tree_loose: list[int] = field(default_factory=lambda: [0])
    #: table cells of the units so far (an upper bound: a unit's columns are at most its splits)
    cells: int = 0


def _build(features: int, trees: list[dict[str, str]]) -> Forest | None:
    """Read every tree's splits, paths and units (a tree of one leaf has none: only its value counts),
    then fill the tables."""
    columns = _Columns(features)
    bias = 0.0
    for tree in trees:
        leaf_value = _numbers(tree, "leaf_value", "float64")
        leaf_count = _numbers(tree, "leaf_count", "int64")
        internal_count = _numbers(tree, "internal_count", "int64")
        bias += _expected_value(leaf_value, leaf_count, internal_count)
        if len(leaf_value) > 1:
            _splits(tree, columns)
            _Tree(tree, (internal_count, leaf_count), leaf_value).add_to(columns)
        columns.tree_nodes.append(len(columns.splits))
        columns.tree_units.append(len(columns.units))
        columns.tree_loose.append(len(columns.loose_path))
    widest = max(columns.path_depth, default=1)
    if widest > MAX_SPLITS - 1:
        return None  # a pattern of satisfied features must fit in an int64
    values = {
        **_tree_arrays(columns),
        **_node_arrays(columns),
        **_path_arrays(columns),
        **_unit_arrays(columns),
    }
    forest = Forest(features=features, widest=widest, bias=bias, **values)
    _fill_paths(forest.arrays[2])
    _fill_units(forest.arrays, features, widest)
    return forest


def _tree_arrays(columns: _Columns) -> dict[str, np.ndarray]:
    return {
        "tree_nodes": np.array(columns.tree_nodes, dtype="int64"),
        "tree_units": np.array(columns.tree_units, dtype="int64"),
        "tree_loose": np.array(columns.tree_loose, dtype="int64"),
        "loose_path": np.array(columns.loose_path, dtype="int64"),
    }


def _node_arrays(columns: _Columns) -> dict[str, np.ndarray]:
    splits = list(zip(*columns.splits, strict=True)) or [()] * 6
    return {
        "node_feature": np.array(splits[0], dtype="int64"),
        "node_threshold": np.array(splits[1], dtype="float64"),
        "node_nan_left": np.array(splits[2], dtype="bool"),
        "node_zero_left": np.array(splits[3], dtype="bool"),
        "node_bits": np.array(splits[4], dtype="int64"),
        "node_words": np.array(splits[5], dtype="int64"),
        "bits": np.array(columns.bits, dtype="uint32"),
    }


def _path_arrays(columns: _Columns) -> dict[str, np.ndarray]:
    """The paths' arrays, with room for the tables of paths of up to `PATH_FEATURES` features (fewer if
    the tables would pass `BUDGET`): 2^depth rows of the path's padded width."""
    slots = list(zip(*columns.slots, strict=True)) or [()] * 4
    path_slots = np.array(columns.path_slots, dtype="int64")
    depth = np.array(columns.path_depth, dtype="int64")
    size = (2 ** np.minimum(depth, PATH_FEATURES + 1)) * np.diff(path_slots)
    limit = PATH_FEATURES
    while limit > 0 and size[depth <= limit].sum() * 8 > BUDGET:
        limit -= 1
    tabled = depth <= limit
    start = _offsets(np.where(tabled, size, 0).tolist())
    return {
        "path_slots": path_slots,
        "path_depth": depth,
        "slot_feature": np.array(slots[0], dtype="int64"),
        "slot_splits": np.array(slots[1], dtype="int64"),
        "slot_left": np.array(slots[2], dtype="int64"),
        "slot_zero": np.array(slots[3], dtype="float64"),
        "leaf": np.array(columns.leaf, dtype="float64"),
        "path_table": np.where(tabled, start[:-1], -1).astype("int64"),
        "table": np.zeros(int(start[-1]), dtype="float64"),
    }


def _unit_arrays(columns: _Columns) -> dict[str, np.ndarray]:
    first, end, nodes, features = zip(*columns.units, strict=True) if columns.units else ((), (), (), ())
    size = [(1 << len(n)) * len(f) for n, f in zip(nodes, features, strict=True)]
    return {
        "unit_first": np.array(first, dtype="int64"),
        "unit_end": np.array(end, dtype="int64"),
        "unit_nodes": _offsets([len(n) for n in nodes]),
        "unit_node": np.array([n for unit in nodes for n in unit], dtype="int64"),
        "unit_features": _offsets([len(f) for f in features]),
        "unit_feature": np.array([f for unit in features for f in unit], dtype="int64"),
        "unit_table": _offsets(size)[:-1],
        "cells": np.zeros(sum(size), dtype="float64"),
    }


def _expected_value(leaf_value: np.ndarray, leaf_count: np.ndarray, internal_count: np.ndarray) -> float:
    """`Tree::ExpectedValue`: leaf values weighted by their share of the root's rows, summed in order."""
    if len(leaf_value) == 1:
        return float(leaf_value[0])
    total = float(internal_count[0])
    value = 0.0
    for count, leaf in zip(leaf_count.tolist(), leaf_value.tolist(), strict=True):
        value += (count / total) * leaf
    return value


def _splits(tree: dict[str, str], columns: _Columns) -> None:
    """Each split's feature and threshold, and the side LightGBM sends NaN and zero to (a NaN counts as
    zero unless the split's missing type is NaN; a missing type of zero or NaN sends it the default way;
    a category test sends NaN right). A categorical split's bitset goes to `columns.bits`."""
    boundaries = _numbers(tree, "cat_boundaries", "int64").tolist()
    words = _numbers(tree, "cat_threshold", "int64").tolist()
    for feature, threshold, kind in zip(
        _numbers(tree, "split_feature", "int64").tolist(),
        _numbers(tree, "threshold", "float64").tolist(),
        _numbers(tree, "decision_type", "int64").tolist(),
        strict=True,
    ):
        if kind & CATEGORICAL:
            first, last = boundaries[int(threshold)], boundaries[int(threshold) + 1]
            zero_left = bool(words[first] & 1) if last > first else False
            columns.splits.append((feature, threshold, False, zero_left, len(columns.bits), last - first))
            columns.bits.extend(words[first:last])
            continue
        missing, default_left = (kind >> 2) & 3, bool(kind & DEFAULT_LEFT)
        zero_left = default_left if missing == MISSING_ZERO else threshold >= 0.0
        nan_left = default_left if missing in (MISSING_ZERO, MISSING_NAN) else threshold >= 0.0
        columns.splits.append((feature, threshold, nan_left, zero_left, -1, 0))


class _Tree:
    """One tree's paths in depth-first order (so a subtree's paths are consecutive), and its units."""

    def __init__(self, tree: dict[str, str], counts: tuple[np.ndarray, np.ndarray], leaf: np.ndarray) -> None:
        self.left = _numbers(tree, "left_child", "int64").tolist()
        self.right = _numbers(tree, "right_child", "int64").tolist()
        self.split = _numbers(tree, "split_feature", "int64").tolist()
        self.internal, self.leaves = (c.tolist() for c in counts)
        self.values = leaf.tolist()
        self.paths: list[tuple[list[Slot], float]] = []
        self.loose: list[int] = []
        self.units: list[tuple[int, int, list[int]]] = []

    def count(self, node: int) -> int:
        return int(self.internal[node] if node >= 0 else self.leaves[~node])

    def size(self, node: int) -> int:
        """How many splits the subtree under `node` has."""
        return 0 if node < 0 else 1 + self.size(self.left[node]) + self.size(self.right[node])

    def walk(self, node: int, steps: tuple[Step, ...], covered: bool) -> list[int]:
        """Collect the paths under `node`, and make it a unit if it is the first on its way down whose
        splits, with its ancestors', fit `UNIT_SPLITS`. Returns the subtree's splits."""
        if node < 0:
            if not covered:
                self.loose.append(len(self.paths))
            self.paths.append((_slots(steps), self.values[~node]))
            return []
        unit = not covered and len(steps) + self.size(node) <= UNIT_SPLITS
        first, below = len(self.paths), [node]
        for child, went_left in ((self.left[node], True), (self.right[node], False)):
            step = (node, went_left, self.split[node], self.count(child) / self.count(node))
            below += self.walk(child, (*steps, step), covered or unit)
        if unit:
            self.units.append((first, len(self.paths), [s[0] for s in steps] + below))
        return below

    def add_to(self, columns: _Columns) -> None:
        """Append the tree's paths (slots padded to its widest path), units and loose paths; past
        `BUDGET`, a tree gets no units."""
        self.walk(0, (), False)
        size = sum((1 << len(nodes)) * len(nodes) for _, _, nodes in self.units)
        if (columns.cells + size) * 8 > BUDGET:
            self.units, self.loose = [], list(range(len(self.paths)))
        columns.cells += size if self.units else 0
        base = len(columns.leaf)
        width = max(len(slots) for slots, _ in self.paths)
        for slots, leaf in self.paths:
            columns.path_depth.append(len(slots))
            columns.slots.extend([*slots, *[(columns.features, 0, 0, 1.0)] * (width - len(slots))])
            columns.path_slots.append(len(columns.slots))
            columns.leaf.append(leaf)
        columns.loose_path.extend(base + p for p in self.loose)
        for first, end, nodes in self.units:
            features = sorted({self.split[n] for n in nodes})
            columns.units.append((base + first, base + end, nodes, features))


def _slots(steps: tuple[Step, ...]) -> list[Slot]:
    """A path's repeated features merged: a slot per distinct feature, its splits' bits and sides
    gathered, its zero fractions multiplied in path order (as LightGBM's unwinding does)."""
    slots: dict[int, Slot] = {}
    for node, went_left, feature, share in steps:
        _, splits, sides, zero = slots.get(feature, (feature, 0, 0, 1.0))
        slots[feature] = (feature, splits | 1 << node, sides | int(went_left) << node, share * zero)
    return list(slots.values())


@jit
def _shares(zero: np.ndarray, one: np.ndarray, leaf: float, weights: np.ndarray, out: np.ndarray) -> None:
    """Each distinct feature's share of a path's leaf value: `ExtendPath` for every feature (after the
    root's element), then `UnwoundPathSum` per feature, in LightGBM's arithmetic."""
    d = zero.shape[0]
    weights[0] = 1.0
    for depth in range(1, d + 1):
        z, o = zero[depth - 1], one[depth - 1]
        weights[depth] = 0.0
        for i in range(depth - 1, -1, -1):
            weights[i + 1] += o * weights[i] * (i + 1) / (depth + 1)
            weights[i] = z * weights[i] * (depth - i) / (depth + 1)
    for j in range(d):
        z, o = zero[j], one[j]
        following, total = weights[d], 0.0
        for i in range(d - 1, -1, -1):
            if o != 0:
                step = following * (d + 1) / ((i + 1) * o)
                total += step
                following = weights[i] - step * z * ((d - i) / (d + 1))
            else:
                total += (weights[i] / z) / ((d - i) / (d + 1))
        out[j] = total * (o - z) * leaf


@jit
def _fill_paths(paths: tuple) -> None:
    """Each tabled path's shares for every pattern of satisfied features (bit j: the j-th slot), a row
    of the path's padded width per pattern (the padding stays zero)."""
    path_slots, path_depth, _, _, _, zero, leaf, path_table, table = paths
    for p in range(leaf.shape[0]):
        at = path_table[p]
        if at < 0:
            continue
        lo, d, width = path_slots[p], path_depth[p], path_slots[p + 1] - path_slots[p]
        one, out, weights = np.empty(d), np.empty(d), np.empty(d + 1)
        for pattern in range(1 << d):
            for j in range(d):
                one[j] = (pattern >> j) & 1
            _shares(zero[lo : lo + d], one, leaf[p], weights, out)
            table[at + pattern * width : at + pattern * width + d] = out


@jit
def _fill_units(forest: tuple, features: int, widest: int) -> None:
    """Each unit's contributions for every pattern of its decisions, the sum of its paths' shares."""
    paths = forest[2]
    first, end, unit_nodes, unit_node, unit_features, unit_feature, unit_table, cells = forest[3]
    scratch = (np.empty(widest), np.empty(widest), np.empty(widest + 1))
    out = np.zeros(features + 1)
    for u in range(first.shape[0]):
        n0, m = unit_nodes[u], unit_nodes[u + 1] - unit_nodes[u]
        f0, width = unit_features[u], unit_features[u + 1] - unit_features[u]
        for pattern in range(1 << m):
            went = 0
            for i in range(m):
                went |= ((pattern >> i) & 1) << unit_node[n0 + i]
            for p in range(first[u], end[u]):
                _add_path(went, p, paths, out, scratch)
            row = unit_table[u] + pattern * width
            for j in range(width):
                cells[row + j] = out[unit_feature[f0 + j]]
                out[unit_feature[f0 + j]] = 0.0


@jit
def _decisions(x: np.ndarray, row: int, first: int, last: int, splits: tuple) -> int:
    """Bit n set: the row goes left at the tree's n-th split (`Tree::Decision` on the value as LightGBM's
    predictor reads it)."""
    feature, threshold, nan_left, zero_left, start, words, bits = splits
    went = 0
    for node in range(first, last):
        value = x[row, feature[node]]
        if np.isnan(value):
            left = nan_left[node]
        elif abs(value) <= ZERO:
            left = zero_left[node]
        elif start[node] < 0:
            left = value <= threshold[node]
        elif value <= -1.0 or value >= 2147483648.0:
            left = False  # a negative code (C truncates toward zero: -0.5 is 0), or one C's int cannot hold
        else:
            code = int(value)
            word = code // 32
            left = word < words[node] and ((bits[start[node] + word] >> (code % 32)) & 1) == 1
        went |= int(left) << (node - first)
    return went


@jit_inline
def _add_path(went: int, p: int, paths: tuple, out: np.ndarray, scratch: tuple) -> None:
    """Add path p's shares for the decisions `went` to `out`: from its table, or computed."""
    path_slots, path_depth, feature, splits, side, zero, leaf, path_table, table = paths
    s0, d = path_slots[p], path_depth[p]
    width = path_slots[p + 1] - s0
    pattern = 0
    for j in range(width):
        pattern |= int(((went ^ side[s0 + j]) & splits[s0 + j]) == 0) << j
    pattern &= (1 << d) - 1
    at = path_table[p]
    if at >= 0:
        at += pattern * width
        for j in range(width):
            out[feature[s0 + j]] += table[at + j]
        return
    one, share, weights = scratch
    for j in range(d):
        one[j] = (pattern >> j) & 1
    _shares(zero[s0 : s0 + d], one[:d], leaf[p], weights, share)
    for j in range(d):
        out[feature[s0 + j]] += share[j]


@jit
def _accumulate(x: np.ndarray, lo: int, forest: tuple, widest: int, phi: np.ndarray) -> None:
    """Add the contributions of rows lo.. (as many as `phi` has) to `phi`, tree by tree: its units from
    their tables, its loose paths one by one."""
    (tree_nodes, tree_units, tree_loose, loose_path), nodes, paths, units = forest
    _, _, unit_nodes, unit_node, unit_features, unit_feature, unit_table, cells = units
    scratch = (np.empty(widest), np.empty(widest), np.empty(widest + 1))
    for t in range(tree_nodes.shape[0] - 1):
        for r in range(phi.shape[0]):
            went = _decisions(x, lo + r, tree_nodes[t], tree_nodes[t + 1], nodes)
            for u in range(tree_units[t], tree_units[t + 1]):
                pattern = 0
                for i in range(unit_nodes[u + 1] - unit_nodes[u]):
                    pattern |= ((went >> unit_node[unit_nodes[u] + i]) & 1) << i
                f0, width = unit_features[u], unit_features[u + 1] - unit_features[u]
                row = unit_table[u] + pattern * width
                for j in range(width):
                    phi[r, unit_feature[f0 + j]] += cells[row + j]
            for q in range(tree_loose[t], tree_loose[t + 1]):
                _add_path(went, loose_path[q], paths, phi[r], scratch)


@jit
def _top_row(values: np.ndarray, order: np.ndarray, picked: np.ndarray) -> None:
    """The largest values by size into `picked` (as many as it holds), their columns into `order`; on a
    tie the earlier column comes first, as a stable sort would put it."""
    k, count = picked.shape[0], 0
    if k == 0:
        return
    for j in range(values.shape[0]):
        size = abs(values[j])
        if count == k:
            if not size > abs(picked[k - 1]):
                continue
            pos = k - 1
        else:
            pos = count
            count += 1
        while pos > 0 and size > abs(picked[pos - 1]):
            order[pos], picked[pos] = order[pos - 1], picked[pos - 1]
            pos -= 1
        order[pos], picked[pos] = j, values[j]


@jit
def _top_rows(values: np.ndarray, order: np.ndarray, picked: np.ndarray) -> None:
    for r in range(values.shape[0]):
        _top_row(values[r], order[r], picked[r])


@jit
def _explain_rows(
    x: np.ndarray, first: int, last: int, forest: tuple, widest: int, bias: float, top: tuple
) -> None:
    """Blocks first..last of rows: contributions in a scratch block (a column more, for the padding),
    then each row's margin and top contributions."""
    margin, order, picked = top
    for block in range(first, last):
        lo = block * BLOCK
        phi = np.zeros((min(x.shape[0], lo + BLOCK) - lo, x.shape[1] + 1))
        _accumulate(x, lo, forest, widest, phi)
        for r in range(phi.shape[0]):
            total = 0.0
            for j in range(x.shape[1]):
                total += phi[r, j]
            margin[lo + r] = total + bias
            _top_row(phi[r, : x.shape[1]], order[lo + r], picked[lo + r])


@jit
def _contributions_rows(
    x: np.ndarray, first: int, last: int, forest: tuple, widest: int, bias: float, out: np.ndarray
) -> None:
    """Blocks first..last of rows straight into `out`; its bias column takes the padding, then the bias."""
    for block in range(first, last):
        lo = block * BLOCK
        hi = min(x.shape[0], lo + BLOCK)
        _accumulate(x, lo, forest, widest, out[lo:hi])
        out[lo:hi, x.shape[1]] = bias
