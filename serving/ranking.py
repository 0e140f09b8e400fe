"""How an account's eligible actions are ranked: by expected value from the uplift champion when its
features can be trusted, otherwise by the rules' play for its health band, and the sentence behind each.

Pure over its inputs (an assessment, its eligibility verdicts, the uplift champion, the value settings).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import numpy as np

from core.settings import ValueSettings
from core.value import expected_values
from features.playbook import Verdict, lower_first, rules_ranking
from features.playbook_file import Playbook
from features.rows import KEYS, FeatureRows
from serving.assess import Assessment, FeatureRow
from serving.resources import UpliftChampion
from serving.schemas import Evidence, PredictedChange
from training.causal import recency
from training.causal.doubly_robust import Z95
from training.causal.posterior import Posterior
from training.causal.uplift import Inputs, UpliftModel

#: why the rules rank an account's actions, by what stood in the uplift ranking's way
RULES_NOTES = {
    "no_uplift_model": "ranked by the rules for the account's health band: no uplift model is promoted",
    "features_untrusted": "ranked by the rules for the account's health band: its features cannot be trusted",
}
#: fallbacks that say the feature row itself cannot be trusted (a missing churn model does not)
UNTRUSTED_FEATURES = frozenset({"no_feature_row", "stale_features", "out_of_range"})
POOR_OVERLAP = (
    "ranked by the rules after the uplift-ranked actions: too little overlap to trust its uplift model"
)
#: a playbook action the uplift champion was trained without: none had been taken when it was trained
NOT_MODELLED = (
    "ranked by the rules after the uplift-ranked actions: the uplift model has not learnt it yet (no "
    "interventions with it when trained)"
)


@dataclass(frozen=True)
class Candidate:
    """An action in a ranking, with its rationale, before it is offered as an `ActionOut`."""

    action: str
    rationale: str
    eligibility: tuple[str, ...]
    expected_value: float | None
    churn: PredictedChange | None = None
    expansion: PredictedChange | None = None
    evidence: Evidence | None = None
    #: the posterior probability that the action lowers churn risk
    p_helps: float | None = None


@dataclass(frozen=True)
class Ranking:
    kind: Literal["uplift", "rules"]
    note: str
    candidates: list[Candidate]
    #: eligible actions the uplift ranking leaves out, with why (they cost more than they return)
    unprofitable: dict[str, str]


def rank(
    assessment: Assessment,
    verdicts: list[Verdict],
    taken: Mapping[str, datetime],
    as_of: datetime,
    uplift: UpliftChampion | None,
    value: ValueSettings,
    playbook: Playbook,
) -> Ranking:
    """By expected value when an uplift champion is loaded and the features are trusted; actions whose
    uplift model has poor overlap follow in the rules' order; otherwise the rules rank everything.
    `taken` is when the account last took each action before `as_of` (the uplift models' days-since
    inputs, worked out only when they rank)."""
    rules = rules_ranking(assessment.health.band, verdicts, playbook)
    by_rules = [Candidate(r.action, r.rationale, r.eligibility, None) for r in rules]
    if uplift is None:
        return Ranking("rules", RULES_NOTES["no_uplift_model"], by_rules, {})
    fallback = assessment.fallback
    if not assessment.row or (fallback is not None and fallback.code in UNTRUSTED_FEATURES):
        return Ranking("rules", RULES_NOTES["features_untrusted"], by_rules, {})
    days_since = recency.for_account(taken, as_of, uplift.model.actions)
    ranked, unprofitable = _by_value(assessment, verdicts, days_since, uplift, value, playbook)
    usable = set(uplift.model.usable())
    late = [
        Candidate(
            c.action,
            f"{c.rationale[:-1]}; {POOR_OVERLAP if c.action in uplift.model.actions else NOT_MODELLED}.",
            c.eligibility,
            None,
        )
        for c in by_rules
        if c.action not in usable
    ]
    note = f"ranked by expected value (uplift x value - cost) from {uplift.label}"
    if late:
        note += f"; {len(late)} by the rules, lacking overlap or not yet learnt by the uplift model"
    return Ranking("uplift", note, ranked + late, unprofitable)


def _by_value(
    assessment: Assessment,
    verdicts: list[Verdict],
    days_since: dict[str, float],
    uplift: UpliftChampion,
    value: ValueSettings,
    playbook: Playbook,
) -> tuple[list[Candidate], dict[str, str]]:
    """The eligible actions with usable uplift models, best expected value first, and those it leaves out
    because they cost more than they return."""
    model = uplift.model
    change, low, high = _with_interval(model, model.inputs(_uplift_rows(assessment.row, days_since)))
    arr = np.array([assessment.row.get("arr")], float)
    values = expected_values(
        change["churn"], change["expansion"], arr, model.actions, value, playbook.actions
    )[0]
    usable = set(model.usable())
    column = {action: j for j, action in enumerate(model.actions)}
    reasons = {v.action: v.reasons for v in verdicts if v.eligible}
    ranked, unprofitable = [], {}
    for action in sorted((x for x in reasons if x in usable), key=lambda x: -values[column[x]]):
        j = column[action]
        churn, expansion = (
            PredictedChange(
                estimate=float(change[o][0, j]), ci_low=float(low[o][0, j]), ci_high=float(high[o][0, j])
            )
            for o in ("churn", "expansion")
        )
        evidence: Evidence = "clear" if model.shows_benefit(action) else "uncertain"
        because = "; ".join(lower_first(r) for r in reasons[action])
        if values[j] <= 0:
            why = f"expected value {_money(values[j])}: it costs more than it returns"
            unprofitable[action] = why + (
                f"; {lower_first(_uncertain(churn))}" if evidence == "uncertain" else ""
            )
            continue
        posterior = model.effect(action, "churn")
        text = f"{_value_rationale(churn, expansion, evidence, values[j], because)} {how_sure(posterior)}"
        expected = round(float(values[j]), 2)
        p_helps = round(posterior.p_helps, 3)
        ranked.append(Candidate(action, text, reasons[action], expected, churn, expansion, evidence, p_helps))
    return ranked, unprofitable


#: how many posterior standard deviations each of `_with_interval`'s rows moves: the estimate, then the
#: ends of its 95% interval
_MOVES = (0.0, -Z95, Z95)


def _with_interval(model: UpliftModel, inputs: Inputs) -> list[dict[str, np.ndarray]]:
    """One account's predicted changes, then the low and high ends of their 95% intervals, by outcome, each
    (1, actions): one `scaled` call over the account's row repeated per move, so its learners and array
    work run once rather than three times (the same numbers, row by row, as a call per move)."""
    n = len(_MOVES)
    stacked = Inputs(
        np.repeat(inputs.values, n, axis=0), {o: np.repeat(risk, n) for o, risk in inputs.risks.items()}
    )
    moves = np.repeat(np.array(_MOVES)[:, None], len(model.actions), axis=1)
    changes = model.scaled(stacked, dict.fromkeys(inputs.risks, moves))
    return [{o: change[i : i + 1] for o, change in changes.items()} for i in range(n)]


def _uplift_rows(row: FeatureRow, days_since: dict[str, float]) -> FeatureRows:
    """The account's features and days-since columns as the array-backed rows a model reads: through a
    one-row DataFrame, built and encoded by pandas, the uplift ranking cost ~5 ms a request, through these
    ~25 us. Text is what holds text; a missing category reads as missing either way. No model reads the
    cutoff."""
    values = {**row, **days_since}
    names = [name for name in values if name not in KEYS]
    text = frozenset(name for name in names if isinstance(values[name], str))
    columns = {name: [values[name]] for name in names}
    return FeatureRows.build([str(row["account_id"])], [None], columns, names, text)


def _money(value: float) -> str:
    return f"-${-value:,.0f}" if value < 0 else f"${value:,.0f}"


def _uncertain(churn: PredictedChange) -> str:
    return (
        "Uncertain: the data cannot yet tell its effect from none (95% interval of the change in churn risk: "
        f"{100 * churn.ci_low:+.1f} to {100 * churn.ci_high:+.1f} points)"
    )


def _value_rationale(
    churn: PredictedChange, expansion: PredictedChange, evidence: Evidence, ev: float, because: str
) -> str:
    parts = []
    if churn.estimate < 0:
        parts.append(f"lowers 90-day churn risk by {-100 * churn.estimate:.1f} points")
    elif churn.estimate > 0:
        parts.append(f"raises 90-day churn risk by {100 * churn.estimate:.1f} points")
    if expansion.estimate > 0:
        parts.append(f"raises the chance of expansion by {100 * expansion.estimate:.1f} points")
    effect = " and ".join(parts) or "changes little"
    text = f"Expected value {_money(ev)}: it {effect}, net of its cost; {because}."
    return text + (f" {_uncertain(churn)}." if evidence == "uncertain" else "")


#: how a probability of helping reads, from the surest down: (at least, words)
SURENESS = ((0.95, "very likely"), (0.8, "likely"), (0.6, "more likely than not"), (0.4, "a toss-up"))


def how_sure(churn: Posterior) -> str:
    """How sure the evidence is that the action lowers churn risk, in words a CSM reads, and what decided
    it: the account's data, the prior learnt across the playbook's actions, or the playbook's own prior."""
    words = next((w for floor, w in SURENESS if churn.p_helps >= floor), "unlikely")
    if churn.prior.learnt:
        decided = "mostly the data" if churn.decided_by == "data" else "mostly what the other actions show"
    else:
        decided = (
            f"mostly the data, over the playbook's prior ({churn.prior.source})"
            if churn.decided_by == "data"
            else f"mostly the playbook's prior ({churn.prior.source})"
        )
    chance = f"{chance_of(churn.p_helps)} chance it lowers churn risk"
    return f"How sure: {words} to help, {chance}; decided by {decided}."


def percent(p: float) -> str:
    """A probability as a CSM reads it: never a certainty that no posterior gives ("100%")."""
    if p > 0.995:
        return "over 99%"
    if p < 0.005:
        return "under 1%"
    return f"{100 * p:.0f}%"


def chance_of(p: float) -> str:
    """`percent` with its article, as said aloud: "an 87%", "an over 99%", "a 50%"."""
    said = percent(p)
    return f"{'an' if said.startswith(('8', '11', '18', 'over', 'under')) else 'a'} {said}"
