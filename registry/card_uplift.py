"""The uplift model card: each catalogue action's effect on churn and expansion with its interval and
overlap, how the ranking fares against the simulator's truth, where not to trust it and the features of
the churn baseline the effects multiply. `registry.card` puts the sections under the title."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import lightgbm as lgb

from registry.card_sections import importance, provenance
from registry.markdown import bullets, percent, shown, table
from training.artifact import ScoringModel
from training.causal.doubly_robust import Z95
from training.causal.posterior import Posterior
from training.causal.qini import Qini
from training.causal.tournament import Standing
from training.causal.uplift import OUTCOMES, UpliftModel
from training.labels import label_delay_days
from training.result import TrainResult

#: the causal report's caveat: the usual course took the action later in more than half the comparable weeks
LATER_CAVEAT = 0.5
#: the uplift judgement's policies beside the model's ranking (`training.causal.against_truth`)
POLICIES = {"uplift": "the uplift ranking", "rules": "the rules", "highest_risk": "the riskiest first"}


def uplift_card(result: TrainResult[Any], model: UpliftModel) -> list[str]:
    """The card's sections for an uplift model, in order."""
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
        bullets("Known limits", _uplift_limits(model)),
        importance(
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
    where = "\n".join(f"- {line}" for line in provenance(lineage))
    return f"## Training window and data volumes\n\n{text}\n\n{where}".rstrip()


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
                percent(churn.p_helps),
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
        table(header, rows),
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
        table(["action", "ranks by", "runner-up", "margin (se)"], rows),
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
        f"{label} {percent(shares.get(key))}" for key, label in POLICIES.items() if key in shares
    )
    coverage = "; ".join(
        f"{sum(a['covered'] for a in per_action.values())} of {len(per_action)} {outcome} intervals"
        for outcome, per_action in truth["coverage"].items()
    )
    return (
        "## Against the oracle\n\n"
        f"Each policy treats {percent(policy['budget'] / policy['rows'] if policy['rows'] else None)} of "
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


def _signed(share: float | None) -> str:
    """A share as a whole signed percentage; one that rounds to nothing is 0%, neither +0% nor -0%."""
    said = shown(share, "{:+.0%}")
    return "0%" if said in ("+0%", "-0%") else said


def _with_interval(share: Posterior) -> str:
    low, high = share.value - Z95 * share.se, share.value + Z95 * share.se
    return f"{_signed(share.value)} ({_signed(low)} to {_signed(high)})"


def _qini(q: Qini) -> str:
    return f"{q.qini:+.4f} ({q.ci_low:+.4f} to {q.ci_high:+.4f})"


def _names(actions: Iterable[str]) -> str:
    return ", ".join(f"`{a}`" for a in actions)


def _which(chosen: Sequence[str], actions: Sequence[str]) -> str:
    """The chosen actions by name, or by those left out when they are most of them."""
    rest = [a for a in actions if a not in chosen]
    if len(rest) >= len(chosen):
        return _names(chosen)
    return f"every action but {_names(rest)}" if rest else "every action"
