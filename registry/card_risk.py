"""The risk model card (churn, expansion and bring-your-own table models): what the model predicts, the
windows it was trained and judged on, its metrics beside the baselines and the truth, its calibration,
where not to trust it and the features it leans on. `registry.card` puts the sections under the title."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from sklearn.isotonic import IsotonicRegression

from features.definitions import CLOCK_FEATURES, RENEWAL_GRACE_DAYS
from registry.card_sections import importance, provenance
from registry.markdown import bullets, counted, percent, shown, table
from training.artifact import ScoringModel
from training.calibration import PlattScaling
from training.labels import EXPANSION_MIN_RISE, label_delay_days
from training.result import TrainResult

#: a test slice with fewer positive or negative rows than this: its metrics are mostly noise
FEW_ROWS = 30

#: the risk models' metrics, in the card's order: label, key, how to show a value
METRICS: tuple[tuple[str, str, str], ...] = (
    ("ROC-AUC", "auc", "{:.3f}"),
    ("PR-AUC", "pr_auc", "{:.3f}"),
    ("Brier score (lower is better)", "brier", "{:.4f}"),
    ("log loss (lower is better)", "log_loss", "{:.3f}"),
    ("lift in the top 10%", "lift_top_decile", "{:.2f}×"),
    ("recall in the top 10%", "recall_top_decile", "{:.1%}"),
    ("calibration error, ECE (lower is better)", "ece", "{:.3f}"),
)
BASELINES = {
    "model": "model",
    "health": "health formula",
    "logistic": "logistic regression",
    "oracle": "oracle (simulator truth)",
}
WINDOWS = ("train", "calibration", "test")


def risk_card(result: TrainResult[Any], model: ScoringModel) -> list[str]:
    """The card's sections for a churn, expansion or table model, in order."""
    metrics, lineage = result.metrics, result.lineage
    return [
        _risk_prediction(model, lineage),
        _risk_data(lineage),
        _risk_metrics(metrics, lineage),
        _calibration(model, metrics, lineage),
        bullets("Known limits", _risk_limits(model, metrics, lineage)),
        importance(
            model.booster,
            model.features,
            model.texts,
            lineage.get("monotone") or {},
            of="the model",
            which_way="a score's reasons and the run's SHAP plots in `plots/` say that",
        ),
    ]


def _risk_prediction(model: ScoringModel, lineage: Mapping[str, Any]) -> str:
    horizon = model.horizon_days
    if model.kind == "churn":
        what = (
            f"The probability that an active account churns within {horizon} days of the day its features "
            f"were computed: it cancels, or a renewal due in that time is not recorded within "
            f"{RENEWAL_GRACE_DAYS} days of its date."
        )
        use = (
            "rank active accounts by churn risk for a CSM's attention, each score explained by its top "
            "reasons. A probability over many accounts like this one, not a verdict on one."
        )
    elif model.kind == "expansion":
        what = (
            f"The probability that an active account expands within {horizon} days: its seats or plan ARR "
            f"rise by at least {EXPANSION_MIN_RISE:.0%}."
        )
        use = (
            "find active accounts likely to expand, for upgrade offers and sales attention. A probability "
            "over many accounts like this one, not a verdict on one."
        )
    else:
        label = lineage.get("label", "label")
        what = (
            f"The probability that a row's `{label}` is true, as the table `{lineage.get('table', '?')}` "
            "defines it; its horizon is the table's own, which Retain cannot check."
        )
        use = "score rows of snapshots built like the training table, for the question its label asks."
    return f"## What it predicts\n\n{what}\n\n**Intended use:** {use}"


def _risk_data(lineage: Mapping[str, Any]) -> str:
    windows: Mapping[str, Mapping[str, int]] = lineage.get("windows") or {}
    cutoffs: Mapping[str, list[str]] = lineage.get("cutoffs") or {}
    if cutoffs:
        split = (
            "Split by time, in whole cutoffs: the latest matured ones are the test window, the ones before "
            "them the calibration window (early stopping, tuning, calibration), all earlier ones train."
        )
    elif lineage.get("folds"):
        split = (
            "Not split: every row trains the final model. The parameters, the number of trees and the "
            f"calibration were chosen by {lineage['folds']}-fold cross-validation (stratified, an id's rows "
            "in one fold), and the figures below are out of fold."
        )
    else:
        split = f"Split {lineage.get('split', 'in an unrecorded way')}."
    header = ["window", "cutoffs", "first", "last"] if cutoffs else ["window"]
    rows = []
    for window in WINDOWS:
        counts = windows.get(window) or {}
        dates = sorted(cutoffs.get(window) or [])
        first = [str(len(dates)), *(dates[0], dates[-1])] if dates else ["0", "—", "—"]
        rows.append(
            [window, *(first if cutoffs else []), *_volumes(counts.get("rows"), counts.get("positives"))]
        )
    lines = [split, "", table([*header, "rows", "positives", "base rate"], rows), ""]
    lines += [f"- {line}" for line in provenance(lineage)]
    return "## Training window and data volumes\n\n" + "\n".join(lines).rstrip()


def _volumes(rows: int | None, positives: int | None) -> list[str]:
    if rows is None or positives is None:
        return ["—", "—", "—"]
    return [f"{rows:,}", f"{positives:,}", percent(positives / rows if rows else None)]


def _risk_metrics(metrics: Mapping[str, Any], lineage: Mapping[str, Any]) -> str:
    present = [c for c in BASELINES if isinstance(metrics.get(c), Mapping)]
    scores = _scores(metrics, "model")
    if lineage.get("folds"):
        title, lines = "Cross-validated metrics", _out_of_fold(scores, int(lineage["folds"]))
    else:
        title, lines = _test_window(scores, lineage)
    rows = [
        [label, *(shown(_scores(metrics, c).get(key), fmt) for c in present)] for label, key, fmt in METRICS
    ]
    lines += ["", table(["metric", *(BASELINES[c] for c in present)], rows), ""]
    lines += _against(metrics)
    return f"## {title}\n\n" + "\n".join(lines).strip()


def _out_of_fold(scores: Mapping[str, float], folds: int) -> list[str]:
    n, positives = int(scores.get("rows") or 0), int(scores.get("positives") or 0)
    return [
        f"Every row ({n:,}, {positives:,} positives, {percent(positives / n if n else None)}) scored by the "
        f"model of the {folds} folds that did not see it, calibrated by a fit on the other folds; the "
        "logistic regression is fitted and judged on the same folds. The final model, refitted on every "
        "row, has no held-out rows left to judge it: these figures describe its recipe."
    ]


def _test_window(scores: Mapping[str, float], lineage: Mapping[str, Any]) -> tuple[str, list[str]]:
    in_time = bool(lineage.get("cutoffs") or lineage.get("time"))
    title = "Metrics on the out-of-time test window" if in_time else "Metrics on the test window"
    test = sorted((lineage.get("cutoffs") or {}).get("test") or [])
    lines = []
    if scores.get("rows"):
        at = f" at {', '.join(test)}" if test else ""
        n, positives = int(scores["rows"]), int(scores.get("positives") or 0)
        lines.append(
            f"The test window{at}: {n:,} rows, {positives:,} positives ({percent(positives / n)}). "
            "Every candidate scores the same rows, none of which reached tuning or calibration."
        )
    return title, lines


#: the ranking metrics the card sets the model against each baseline on: key, name, format of a difference
GAPS: tuple[tuple[str, str, str], ...] = (
    ("auc", "AUC", "{:+.3f}"),
    ("pr_auc", "PR-AUC", "{:+.3f}"),
    ("lift_top_decile", "top-10% lift", "{:+.2f}"),
)


def _gaps(metrics: Mapping[str, Any], key: str, fmt: str) -> list[str]:
    """The model's `key` minus each baseline's, worded, for the baselines that have one."""
    ours = _scores(metrics, "model").get(key)
    return [
        f"{fmt.format(ours - other)} against the {BASELINES[c]}"
        for c in ("health", "logistic")
        if ours is not None and (other := _scores(metrics, c).get(key)) is not None
    ]


def _against(metrics: Mapping[str, Any]) -> list[str]:
    """The model's AUC, PR-AUC and lift beside each baseline's in a sentence, and what is missing and why."""
    lines = [
        f"The model's {name}: {', '.join(gaps)}."
        for key, name, fmt in GAPS
        if (gaps := _gaps(metrics, key, fmt))
    ]
    if _scores(metrics, "health"):
        lines.append(
            "The health formula is a score, not a probability: it is Platt-scaled on the calibration window "
            "before its Brier score, log loss and ECE are read."
        )
    if "health" in metrics and metrics["health"] is None:
        lines.append("No health formula: a bring-your-own table has none to compare with.")
    oracle = _scores(metrics, "oracle")
    if oracle:
        same = oracle.get("model_auc_same_rows")
        lines.append(
            f"The oracle is the simulator's true probability, the best any model could do, on the "
            f"{int(oracle.get('rows') or 0):,} test rows its truth covers"
            + (
                f" ({counted(missing, 'row')} without)"
                if (missing := int(oracle.get("rows_without_truth") or 0))
                else ""
            )
            + (f"; on those rows the model's AUC is {same:.3f}" if same is not None else "")
            + _same_rows(oracle)
        )
    elif "oracle" in metrics:
        lines.append(
            "No oracle: the run had no simulator truth, so how far the model is from the best possible is "
            "unknown."
        )
    return lines


def _same_rows(oracle: Mapping[str, Any]) -> str:
    """The end of the oracle's sentence: the model's PR-AUC and lift on the oracle's rows, when recorded."""
    pr_auc, lift = oracle.get("model_pr_auc_same_rows"), oracle.get("model_lift_top_decile_same_rows")
    if pr_auc is None or lift is None:
        return "."
    return f", its PR-AUC {pr_auc:.3f} and its top-10% lift {lift:.2f}× (the oracle's above)."


def _calibration(model: ScoringModel, metrics: Mapping[str, Any], lineage: Mapping[str, Any]) -> str:
    calibrator = model.calibrator
    if calibrator is None:
        return "## Calibration\n\nNone: the served number is the booster's raw probability."
    if isinstance(calibrator, PlattScaling):
        method = "Platt scaling (a logistic fit of the booster's log-odds)"
    elif isinstance(calibrator, IsotonicRegression):
        method = "Isotonic regression (a monotone step function)"
    else:
        method = type(calibrator).__name__
    window = sorted((lineage.get("cutoffs") or {}).get("calibration") or [])
    span = f" ({window[0]} to {window[-1]})" if window else ""
    fitted_on = f"the calibration window{span}"
    if lineage.get("folds"):
        losses = metrics.get("calibration_log_loss") or {}
        chosen = ", ".join(f"{m} {v:.4f}" for m, v in losses.items())
        fitted_on = f"every out-of-fold prediction (chosen by cross-fitted log loss: {chosen})"
    text = (
        f"{method}, fitted on {fitted_on}, maps the booster's probability onto the frequencies seen there, "
        "so 12% means about 12 in 100; it is monotone, so it never reorders accounts."
    )
    raw, after = metrics.get("ece_raw"), _scores(metrics, "model").get("ece")
    if raw is not None and after is not None:
        where = "out of fold" if lineage.get("folds") else "on the test window"
        text += (
            f" Expected calibration error {where} (10 bins): {raw:.3f} before calibration, {after:.3f} after."
        )
    windows = lineage.get("windows") or {}
    train, test = (windows.get(w) or {} for w in ("train", "test"))
    if train.get("rows") and test.get("rows"):
        text += (
            f" The base rate was {percent(train['positives'] / train['rows'])} in training and "
            f"{percent(test['positives'] / test['rows'])} in the test window: as it moves, the "
            "probabilities drift until the model is retrained."
        )
    return f"## Calibration\n\n{text}"


def _risk_limits(model: ScoringModel, metrics: Mapping[str, Any], lineage: Mapping[str, Any]) -> list[str]:
    limits = []
    test = sorted((lineage.get("cutoffs") or {}).get("test") or [])
    if model.kind in ("churn", "expansion") and test:
        delay = label_delay_days(model.kind, model.horizon_days)
        limits.append(
            f"A label needs {delay} days after its cutoff to be decided, so the newest cutoff the model was "
            f"judged on is {test[-1]}: scores given since are unjudged until their horizon has passed."
        )
    elif model.kind == "table":
        limits.append(
            "The label is the table's own: a row whose outcome was still open when the table was built "
            "counts as no event, which Retain cannot detect."
        )
    if lineage.get("folds"):
        limits.append(
            "Cross-validated, not out of time: each fold's rows come from the same period as the rest, so "
            "the figures may flatter the model on rows of a later period."
        )
    elif lineage.get("source") == "table" and not lineage.get("time"):
        limits.append(
            "Split by id, not by time: the test rows come from the same period as training, so the test "
            "figures are not out of time and likely flatter the model."
        )
    limits.append(_ranges(model))
    if model.categories:
        names = ", ".join(f"`{c}`" for c in model.categories)
        limits.append(f"A level of {names} not seen in training (a new tier, say) is read as missing.")
    limits += _thin(metrics)
    return limits


def _ranges(model: ScoringModel) -> str:
    if not model.ranges:
        return "No training ranges recorded: nothing flags an input far outside what the model saw."
    checked = [name for name in model.ranges if name not in CLOCK_FEATURES]
    flat = (
        f"Trees extrapolate flat: a value beyond the training range of its feature ({len(model.ranges)} "
        "numeric inputs have one) is scored as the range's edge."
    )
    if model.kind != "churn":
        return flat
    return (
        f"{flat} The API answers with the health rules instead (`source: rules`) when one of {len(checked)} "
        "inputs lies far outside its range; clock-like inputs (tenure, days since ...) are exempt, since "
        "they outgrow training by waiting."
    )


def _thin(metrics: Mapping[str, Any]) -> list[str]:
    """Where the test window has too few positive or negative rows to judge the model: as a whole, or in
    its slices (tier = enterprise, ...)."""
    slices: Mapping[str, Mapping[str, Mapping[str, Any]]] = metrics.get("slices") or {}
    whole = _scores(metrics, "model")
    rows, positives = int(whole.get("rows", 0)), int(whole.get("positives", 0))
    if rows and min(positives, rows - positives) < FEW_ROWS:
        return [
            f"The test window holds {counted(positives, 'positive')} and "
            f"{counted(rows - positives, 'negative')}, fewer than {FEW_ROWS} of one kind: its metrics carry "
            f"a wide margin of error, and those of its slices ({', '.join(slices) or 'none'}) say little."
        ]
    thin = []
    for column, values in slices.items():
        for value, by_candidate in values.items():
            counts = by_candidate.get("model") or {}
            n, events = int(counts.get("rows") or 0), int(counts.get("positives") or 0)
            if min(events, n - events) < FEW_ROWS:
                thin.append(f"{column} = {value} ({counted(n, 'row')}, {counted(events, 'positive')})")
    if thin:
        return [
            f"Slices of the test window with fewer than {FEW_ROWS} positive or negative rows, whose metrics "
            f"are mostly noise: {'; '.join(thin)}."
        ]
    if slices:
        return [
            f"Every slice of {', '.join(slices)} in the test window has at least {FEW_ROWS} rows of each "
            "kind."
        ]
    return []


def _scores(metrics: Mapping[str, Any], candidate: str) -> dict[str, float]:
    """A candidate's numeric metrics (none when it was not measured)."""
    found = metrics.get(candidate)
    if not isinstance(found, Mapping):
        return {}
    return {
        k: float(v)
        for k, v in found.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    }
