"""The sections both model cards carry: where the training rows came from and what was left out, and the
features the model leans on most by LightGBM gain, in the catalogue's words."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import lightgbm as lgb
import numpy as np

from features.definitions import Feature
from registry.markdown import counted, percent, table

TOP_FEATURES = 10
#: the inputs never split on that the card names (it counts them all)
NAMED_UNUSED = 5


def provenance(lineage: Mapping[str, Any]) -> list[str]:
    """Where the rows came from and what was left out, as far as the lineage says."""
    lines = []
    if lineage.get("feature_service"):
        lines.append(f"Features: the feature service `{lineage['feature_service']}`.")
    if lineage.get("table"):
        lines.append(
            f"Table `{lineage['table']}`: label `{lineage.get('label')}`, id `{lineage.get('id')}`"
            f"{', time `' + str(lineage['time']) + '`' if lineage.get('time') else ''}."
        )
    versions = lineage.get("table_versions") or {}
    if versions:
        listed = ", ".join(f"{name} v{v}" for name, v in versions.items() if v is not None)
        lines.append(f"Store tables read: {listed}.")
    if lineage.get("rows_dropped_already_churned"):
        lines.append(
            f"Left out: {lineage['rows_dropped_already_churned']:,} rows of accounts churned before the "
            "cutoff."
        )
    if lineage.get("cutoffs_unused"):
        unused = ", ".join(lineage["cutoffs_unused"])
        lines.append(f"Cutoffs in no window (labels not yet decided, or the embargo): {unused}.")
    if lineage.get("rows_without_label"):
        lines.append(f"Left out: {lineage['rows_without_label']:,} rows without a label.")
    if lineage.get("columns_dropped"):
        dropped = "; ".join(f"`{c}` ({why})" for c, why in lineage["columns_dropped"].items())
        lines.append(f"Columns not used: {dropped}.")
    if lineage.get("train_fingerprint"):
        lines.append(f"Training rows fingerprint: `{lineage['train_fingerprint']}`.")
    return lines


def importance(
    booster: lgb.Booster,
    features: Sequence[str],
    texts: Mapping[str, Feature],
    monotone: Mapping[str, Sequence[str]],
    of: str,
    which_way: str,
) -> str:
    """The top features by LightGBM gain, with the catalogue's words and their monotone constraint."""
    names = booster.feature_name()
    gains = np.asarray(booster.feature_importance(importance_type="gain"), dtype=float)
    total = float(gains.sum())
    order = [j for j in np.argsort(-gains, kind="stable") if gains[j] > 0][:TOP_FEATURES]
    constraint = {f: "never lowers the risk" for f in monotone.get("increasing", ())}
    constraint |= {f: "never raises the risk" for f in monotone.get("decreasing", ())}
    header = ["#", "feature", "in plain words", "share of gain"] + ["constraint"] * bool(constraint)
    rows = [
        [
            str(rank),
            f"`{names[j]}`",
            _words(names[j], texts),
            percent(gains[j] / total),
            *([constraint.get(names[j], "")] if constraint else []),
        ]
        for rank, j in enumerate(order, start=1)
    ]
    unused = [f"`{names[j]}`" for j in np.flatnonzero(gains == 0)]
    lines = [
        f"The top {len(order)} of the {len(features)} inputs of {of} by LightGBM gain, the share of the loss "
        f"reduction their splits bring: how much it leans on a feature, not which way ({which_way}).",
        "",
        table(header, rows),
    ]
    if unused:
        among = "among them " if len(unused) > NAMED_UNUSED else ""
        named = ", ".join(unused[:NAMED_UNUSED])
        lines += ["", f"{counted(len(unused), 'input')} never split on ({among}{named})."]
    return "## The features that matter most\n\n" + "\n".join(lines)


def _words(name: str, texts: Mapping[str, Feature]) -> str:
    """A feature's reason template with the value left open ("Last login … days ago")."""
    feature = texts.get(name)
    if feature is not None:
        return re.sub(r"\{value[^}]*\}", "…", feature.text)
    if name.startswith("days_since_"):  # an action's recency, whichever playbook named it
        return f"Days since the last {name.removeprefix('days_since_').replace('_', ' ')}"
    return name.replace("_", " ")
