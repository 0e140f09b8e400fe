"""The model card: what a registered version predicts, from which data, how well against the baselines and
the truth, and where it should not be trusted, in words a reviewer reads without opening the run.

Everything comes from the `TrainResult` the version was registered from (its metrics, lineage and model),
so the card is a pure function of it; `registry.tracking` logs it as the run's `model_card.md` and sets it
as the version's description (`version_description`: cut to fit the registry's column).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import lightgbm as lgb
import numpy as np
from sklearn.isotonic import IsotonicRegression

from features.definitions import CLOCK_FEATURES, RENEWAL_GRACE_DAYS, Feature
from training.artifact import ScoringModel
from training.calibration import PlattScaling
from training.causal.dr import Z95
from training.causal.posterior import Posterior
from training.causal.qini import Qini
from training.causal.tournament import Standing
from training.causal.uplift import OUTCOMES, UpliftModel
from training.labels import EXPANSION_MIN_RISE, label_delay_days
from training.result import TrainResult

#: the card's file among the run's artifacts
MODEL_CARD = "model_card.md"
#: MLflow's `model_versions.description` is VARCHAR(5000): PostgreSQL and MySQL refuse a longer text
DESCRIPTION_LIMIT = 5000
TOP_FEATURES = 10
#: the inputs never split on that the card names (it counts them all)
NAMED_UNUSED = 5
#: a test slice with fewer positive or negative rows than this: its metrics are mostly noise
FEW_ROWS = 30
#: the causal report's caveat: the usual course took the action later in more than half the comparable weeks
LATER_CAVEAT = 0.5

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
#: the uplift judgement's policies beside the model's ranking (`training.causal.against_truth`)
POLICIES = {"uplift": "the uplift ranking", "rules": "the rules", "highest_risk": "the riskiest first"}
WINDOWS = ("train", "calibration", "test")


def model_card(result: TrainResult[ScoringModel | UpliftModel], name: str, version: str) -> str:
    """The card of version `version` of `name` (markdown)."""
    model = result.model
    sections = _uplift_card(result, model) if isinstance(model, UpliftModel) else _risk_card(result, model)
    return "\n\n".join([f"# Model card: {name}, version {version}", *sections]) + "\n"


def version_description(card: str, run_id: str, limit: int = DESCRIPTION_LIMIT) -> str:
    """The card as a registered version's description: whole when it fits the registry's column, else its
    leading sections and where the whole card is."""
    if len(card) <= limit:
        return card
    pointer = f"\n\n*Shortened to fit the registry: the whole card is `{MODEL_CARD}` in run `{run_id}`.*\n"
    title, *sections = card.split("\n\n## ")
    kept = title
    for section in sections:
        longer = f"{kept}\n\n## {section}"
        if len(longer.rstrip()) + len(pointer) > limit:
            break
        kept = longer
    return kept.rstrip() + pointer


# -- churn, expansion and table models -----------------------------------------------------------------


def _risk_card(result: TrainResult[Any], model: ScoringModel) -> list[str]:
    metrics, lineage = result.metrics, result.lineage
    return [
        _risk_prediction(model, lineage),
        _risk_data(lineage),
        _risk_metrics(metrics, lineage),
        _calibration(model, metrics, lineage),
        _bullets("Known limits", _risk_limits(model, metrics, lineage)),
        _importance(
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
    lines = [split, "", _table([*header, "rows", "positives", "base rate"], rows), ""]
    lines += [f"- {line}" for line in _provenance(lineage)]
    return "## Training window and data volumes\n\n" + "\n".join(lines).rstrip()


def _volumes(rows: int | None, positives: int | None) -> list[str]:
    if rows is None or positives is None:
        return ["—", "—", "—"]
    return [f"{rows:,}", f"{positives:,}", _percent(positives / rows if rows else None)]


def _provenance(lineage: Mapping[str, Any]) -> list[str]:
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
        listed = ", ".join(f"{table} v{v}" for table, v in versions.items() if v is not None)
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


def _risk_metrics(metrics: Mapping[str, Any], lineage: Mapping[str, Any]) -> str:
    present = [c for c in BASELINES if isinstance(metrics.get(c), Mapping)]
    scores = _scores(metrics, "model")
    if lineage.get("folds"):
        title, lines = "Cross-validated metrics", _out_of_fold(scores, int(lineage["folds"]))
    else:
        title, lines = _test_window(scores, lineage)
    table = [
        [label, *(_shown(_scores(metrics, c).get(key), fmt) for c in present)] for label, key, fmt in METRICS
    ]
    lines += ["", _table(["metric", *(BASELINES[c] for c in present)], table), ""]
    lines += _against(metrics)
    return f"## {title}\n\n" + "\n".join(lines).strip()


def _out_of_fold(scores: Mapping[str, float], folds: int) -> list[str]:
    n, positives = int(scores.get("rows") or 0), int(scores.get("positives") or 0)
    return [
        f"Every row ({n:,}, {positives:,} positives, {_percent(positives / n if n else None)}) scored by the "
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
            f"The test window{at}: {n:,} rows, {positives:,} positives ({_percent(positives / n)}). "
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
                f" ({_counted(missing, 'row')} without)"
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
            f" The base rate was {_percent(train['positives'] / train['rows'])} in training and "
            f"{_percent(test['positives'] / test['rows'])} in the test window: as it moves, the "
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
            f"The test window holds {_counted(positives, 'positive')} and "
            f"{_counted(rows - positives, 'negative')}, fewer than {FEW_ROWS} of one kind: its metrics carry "
            f"a wide margin of error, and those of its slices ({', '.join(slices) or 'none'}) say little."
        ]
    thin = []
    for column, values in slices.items():
        for value, by_candidate in values.items():
            counts = by_candidate.get("model") or {}
            n, events = int(counts.get("rows") or 0), int(counts.get("positives") or 0)
            if min(events, n - events) < FEW_ROWS:
                thin.append(f"{column} = {value} ({_counted(n, 'row')}, {_counted(events, 'positive')})")
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


# -- uplift models -------------------------------------------------------------------------------------


def _uplift_card(result: TrainResult[Any], model: UpliftModel) -> list[str]:
    metrics, lineage = result.metrics, result.lineage
    churn = model.baselines.get("churn")
    return [
        _uplift_prediction(model),
        _uplift_data(metrics, lineage),
        _effects(model, metrics),
        _uplift_truth(metrics),
        "## Calibration\n\nNo calibration step: each effect is a share of the baseline probability (boosted "
        "stumps fitted on every row), and its honesty is its interval's, checked against the truth where the "
        "run had one.",
        _bullets("Known limits", _uplift_limits(model)),
        _importance(
            churn,
            model.features,
            ScoringModel.texts_for(model.features),
            {},
            of="the churn baseline (the risk the shares multiply)",
            which_way="each action's share says how much it changes the risk",
        )
        if isinstance(churn, lgb.Booster)
        else "## The features that matter most\n\nNone: the churn baseline is a constant.",
    ]


def _uplift_prediction(model: UpliftModel) -> str:
    return (
        "## What it predicts\n\n"
        f"For each of the {len(model.actions)} catalogue actions, the change in an account's probability of "
        f"churning, and of expanding, within {model.horizon_days} days if the action is taken now rather "
        "than not at all in that time. Each effect is a share of the account's baseline probability (a share "
        "of -20% takes 4 points off a 20% risk), learnt by doubly robust learners from the store's weekly "
        "history of whom the team acted on.\n\n"
        "**Intended use:** rank the next best actions for an account by expected value (serving, the "
        "weekly plan). An effect is an average over accounts like this one, not a promise for one, and it "
        "holds only if whom the team acted on depends on nothing the features miss."
    )


def _uplift_data(metrics: Mapping[str, Any], lineage: Mapping[str, Any]) -> str:
    cutoffs = lineage.get("cutoffs") or []
    span = f"from {cutoffs[0]} to {cutoffs[-1]}" if cutoffs else "over an unrecorded span"
    text = (
        f"Weekly cutoffs {span} ({int(metrics.get('weeks') or 0):,} weeks): "
        f"{int(metrics.get('rows') or 0):,} account-weeks of {int(metrics.get('accounts') or 0):,} accounts. "
        f"{int(metrics.get('held_out_rows') or 0):,} weeks held out from every proactive play (the holdout) "
        "are in no action's comparison."
    )
    provenance = "\n".join(f"- {line}" for line in _provenance(lineage))
    return f"## Training window and data volumes\n\n{text}\n\n{provenance}".rstrip()


def _effects(model: UpliftModel, metrics: Mapping[str, Any]) -> str:
    true_shares = ((metrics.get("truth") or {}).get("churn_shares")) or {}
    usable = set(model.usable())
    header = ["action", "treated", "effective treated", "churn share (95%)", "data alone", "P(helps)"]
    header += ["expansion share (95%)", "Qini on churn (95%)"]
    header += ["true churn share"] * bool(true_shares) + ["evidence", "ranked by"]
    rows = []
    for action in model.actions:
        overlap = model.overlap[action]
        churn, expansion = (model.effect(action, outcome) for outcome in OUTCOMES)
        ranking = model.qini(action, "churn")
        rows.append(
            [
                f"{action}{' (per renewal)' if overlap.design == 'renewal' else ''}",
                f"{overlap.n_treated:,}",
                f"{overlap.effective_treated:,.0f}",
                _with_interval(churn),
                f"{_signed(churn.estimate.value)} ± {100 * churn.estimate.se:.1f}%",
                _percent(churn.p_helps),
                _with_interval(expansion),
                "—" if ranking is None else _qini(ranking),
                *([_signed((true_shares.get(action) or {}).get("true_share"))] if true_shares else []),
                "clear" if model.shows_benefit(action) else "uncertain",
                "the model" if action in usable else "the rules (poor overlap)",
            ]
        )
    given = sorted({p.prior.source for p in model.posterior.values() if not p.prior.learnt})
    lines = [
        "Each action's change as a share of the baseline probability, against never acting, with its 95% "
        "interval (a churn share below 0 and an expansion share above 0 help). The shares are posteriors: "
        "each action's estimate (*data alone*, ± its standard error) pooled with what the other actions "
        "show, so a noisy estimate moves the ranking only as far as its precision allows"
        + (f"; the playbook's own priors came from: {'; '.join(given)}" if given else "")
        + ". *P(helps)*: the posterior probability that it lowers churn risk. *Qini*: churned accounts "
        "averted per row ranked by the model beyond a random ranking, averaged over every budget (above 0: "
        "the ranking sorts who gains). *Effective treated*: what the treated weeks (or renewals) are worth "
        "once weighted by how unlikely each was.",
        "",
        _table(header, rows),
    ]
    lines += _tournament(model)
    program = metrics.get("program_effect") or {}
    if program:
        said = ", ".join(
            f"{outcome} {p['ate'] * 100:+.1f} points "
            f"(95% {p['ci_low'] * 100:+.1f} to {p['ci_high'] * 100:+.1f})"
            for outcome, p in program.items()
        )
        lines += ["", f"The usual course against never acting, from the holdout: {said}."]
    return "## Effects per action\n\n" + "\n".join(lines)


def _tournament(model: UpliftModel) -> list[str]:
    standings = model.__dict__.get("tournament", {})
    if not standings:
        return []
    rows = [
        [a, t.winner.replace("_", " "), t.runner_up.replace("_", " "), f"{t.margin:+.1f} ({t.se:.1f})"]
        for a, t in standings.items()
    ]
    return [
        "",
        "Per action, a tournament of effect learners judged by the churn their rankings avert on accounts "
        "they never saw: the pooled share, a share per health band, a DR-learner. A challenger ranks the "
        f"action only when it beats the pooled share by more than {_critical(standings):.2f} standard errors "
        "(5% for the whole run, corrected for every comparison).",
        "",
        _table(["action", "ranks by", "runner-up", "margin (se)"], rows),
    ]


def _critical(standings: Mapping[str, Standing]) -> float:
    return next(iter(standings.values())).critical


def _uplift_truth(metrics: Mapping[str, Any]) -> str:
    truth = metrics.get("truth")
    if not truth:
        return (
            "## Against the oracle\n\nNo simulator truth: the ranking is judged by off-policy evaluation on "
            "the store when promoted."
        )
    policy = truth["policy"]
    shares = policy["share_of_oracle"]
    said = ", ".join(
        f"{label} {_percent(shares.get(key))}" for key, label in POLICIES.items() if key in shares
    )
    coverage = "; ".join(
        f"{sum(a['covered'] for a in per_action.values())} of {len(per_action)} {outcome} intervals"
        for outcome, per_action in truth["coverage"].items()
    )
    return (
        "## Against the oracle\n\n"
        f"Each policy treats {_percent(policy['budget'] / policy['rows'] if policy['rows'] else None)} of "
        f"{policy['rows']:,} month-end rows of the simulation, choosing only what the API would offer. The "
        f"true churn averted as a share of the oracle's (which chooses by the true effects): {said}. "
        f"Coverage of the true average effects: {coverage} hold it."
    )


def _uplift_limits(model: UpliftModel) -> list[str]:
    usable = set(model.usable())
    poor = [a for a in model.actions if a not in usable]
    uncertain = [a for a in model.actions if not model.shows_benefit(a)]
    later = [a for a in model.actions if (model.overlap[a].control_treated_later or 0.0) > LATER_CAVEAT]
    limits = [
        f"A churn outcome needs {label_delay_days('churn', model.horizon_days)} days to be decided, so the "
        "newest weeks are not in the design: the effects describe how accounts answered the team's past "
        "actions."
    ]
    if poor:
        limits.append(
            f"Too few effective treated rows (below {model.overlap[poor[0]].min_effective:.0f}) to rank by "
            f"the model, so serving and the plan rank them by the rules: {_which(poor, model.actions)}."
        )
    else:
        limits.append("Every action has enough effective treated rows to be ranked by the model.")
    if uncertain:
        limits.append(
            "The data cannot yet tell these actions' effects from none (both intervals reach 0), so serving "
            f"says `effect_evidence: uncertain`: {_which(uncertain, model.actions)}."
        )
    if later:
        limits.append(
            f"The usual course took these actions later anyway in over {LATER_CAVEAT:.0%} of comparable "
            f"weeks, so their scaling to never acting rests on a small difference: {_names(later)}."
        )
    return limits


# -- shared --------------------------------------------------------------------------------------------


def _importance(
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
            _percent(gains[j] / total),
            *([constraint.get(names[j], "")] if constraint else []),
        ]
        for rank, j in enumerate(order, start=1)
    ]
    unused = [f"`{names[j]}`" for j in np.flatnonzero(gains == 0)]
    lines = [
        f"The top {len(order)} of the {len(features)} inputs of {of} by LightGBM gain, the share of the loss "
        f"reduction their splits bring: how much it leans on a feature, not which way ({which_way}).",
        "",
        _table(header, rows),
    ]
    if unused:
        among = "among them " if len(unused) > NAMED_UNUSED else ""
        named = ", ".join(unused[:NAMED_UNUSED])
        lines += ["", f"{_counted(len(unused), 'input')} never split on ({among}{named})."]
    return "## The features that matter most\n\n" + "\n".join(lines)


def _words(name: str, texts: Mapping[str, Feature]) -> str:
    """A feature's reason template with the value left open ("Last login … days ago")."""
    feature = texts.get(name)
    if feature is not None:
        return re.sub(r"\{value[^}]*\}", "…", feature.text)
    if name.startswith("days_since_"):  # an action's recency, whichever playbook named it
        return f"Days since the last {name.removeprefix('days_since_').replace('_', ' ')}"
    return name.replace("_", " ")


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


def _shown(value: float | None, fmt: str) -> str:
    return "—" if value is None or not math.isfinite(value) else fmt.format(value)


def _signed(share: float | None) -> str:
    """A share as a whole signed percentage; one that rounds to nothing is 0%, neither +0% nor -0%."""
    shown = _shown(share, "{:+.0%}")
    return "0%" if shown in ("+0%", "-0%") else shown


def _counted(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _with_interval(share: Posterior) -> str:
    low, high = share.value - Z95 * share.se, share.value + Z95 * share.se
    return f"{_signed(share.value)} ({_signed(low)} to {_signed(high)})"


def _qini(q: Qini) -> str:
    return f"{q.qini:+.4f} ({q.ci_low:+.4f} to {q.ci_high:+.4f})"


def _percent(value: float | None) -> str:
    return _shown(value, "{:.1%}")


def _names(actions: Iterable[str]) -> str:
    return ", ".join(f"`{a}`" for a in actions)


def _which(chosen: Sequence[str], actions: Sequence[str]) -> str:
    """The chosen actions by name, or by those left out when they are most of them."""
    rest = [a for a in actions if a not in chosen]
    if len(rest) >= len(chosen):
        return _names(chosen)
    return f"every action but {_names(rest)}" if rest else "every action"


def _bullets(title: str, lines: Iterable[str]) -> str:
    return f"## {title}\n\n" + "\n".join(f"- {line}" for line in lines)


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    def row(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    return "\n".join([row(header), "|" + "---|" * len(header), *(row(cells) for cells in rows)])
