"""An uplift run end to end: the store's weekly design, cross-fitted nuisances per action, DR average
effects and DR-learners per action and outcome, overlap per action, and (given the simulator's output)
the judgement against the truth. Returns a TrainResult for tracking and the registry; no MLflow here."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from core.errors import RetainError
from core.parallel import Workers, side_by_side
from core.settings import NuisanceSampling, Settings
from features.definitions import KEYS
from features.stored import read_features
from store.delta import Store
from training.causal import against_truth, doubly_robust, tournament
from training.causal.crossfit import Sample, crossfit_cache, fit_side_by_side
from training.causal.design import Design, read_interventions, store_design
from training.causal.holdout import design_program_effects
from training.causal.learners import Learner
from training.causal.posterior import Posterior, helps_sign, posteriors
from training.causal.qini import Qini, qini
from training.causal.renewal import RenewalFit, RenewalRows, fit_renewal, renewal_rows
from training.causal.tournament import Standing
from training.causal.uplift import OUTCOMES, Overlap, UpliftModel
from training.columns import design_columns, fingerprint
from training.config import UpliftConfig
from training.result import TrainResult

QUANTILES = (0.01, 0.1, 0.5, 0.9, 0.99)


def _quantiles(propensity: np.ndarray) -> dict[str, float]:
    return {f"p{round(q * 100)}": float(np.quantile(propensity, q)) for q in QUANTILES}


def _overlap(
    design: Design, action: str, propensity: np.ndarray, clipped: np.ndarray, config: UpliftConfig
) -> Overlap:
    treated = design.treated[action] == 1
    return Overlap(
        n_treated=int(treated.sum()),
        n_randomised=int(design.randomised[action].sum()),
        effective_treated=doubly_robust.effective_sample_size(1.0 / propensity[treated]),
        clipped_share=float(clipped.mean()),
        propensity_quantiles=_quantiles(propensity),
        min_effective=config.min_effective_treated,
        control_treated_later=doubly_robust.control_treated_later(
            design.treated[action], design.taken_later(action), propensity
        ),
        control_horizon_later=doubly_robust.control_treated_later(
            design.treated[action], design.horizon_left[action], propensity
        ),
        settles_at_renewal=design.actions[action].settles_at_renewal,
    )


def _renewal_overlap(renewals: RenewalRows, fitted: RenewalFit, config: UpliftConfig) -> Overlap:
    """The overlap of the renewals the estimate kept; `clipped_share` is the share the trim left out."""
    treated = (renewals.treated == 1) & fitted.kept
    propensity = fitted.propensity
    return Overlap(
        n_treated=int(treated.sum()),
        n_randomised=0,
        effective_treated=doubly_robust.effective_sample_size(1.0 / propensity[treated]),
        clipped_share=float(1.0 - fitted.kept.mean()),
        propensity_quantiles=_quantiles(propensity),
        min_effective=config.min_effective_treated,
        settles_at_renewal=True,
        design="renewal",
    )


def _by_renewal(
    design: Design, action: str, fit: CrossFit, config: UpliftConfig
) -> tuple[RenewalRows, RenewalFit] | None:
    """The action's fit over one row per renewal (`renewal`), for an action that settles at the renewal and
    has enough renewals of each kind; None otherwise (its shares are then the weekly ones, scaled)."""
    if not design.actions[action].settles_at_renewal:
        return None
    renewals = renewal_rows(design, action, int(config.horizon_days or 0))
    if not renewals.enough:
        return None
    fitted = fit_renewal(
        renewals,
        fit.x,
        design.outcomes,
        design.groups,
        folds=config.folds,
        clip=config.clip,
        seed=int(config.seed or 0),
        threads=config.threads,
    )
    return renewals, fitted


@dataclass(frozen=True)
class CrossFit:
    """What every action's estimate over one design shares: the encoded features, the folds, each
    outcome's out-of-fold baseline E[Y | x] and each action's out-of-fold propensity (clipped, and where
    the clip moved it), all fitted side by side (`crossfit`)."""

    design: Design
    features: list[str]
    categories: dict[str, list[str]]
    x: doubly_robust.Matrix
    splits: list[tuple[np.ndarray, np.ndarray]]
    baseline: dict[str, np.ndarray]
    propensities: dict[str, tuple[np.ndarray, np.ndarray]]
    #: each outcome's baseline fitted on every row, where asked for (the model ranks with them)
    whole_baselines: dict[str, lgb.Booster | float]

    @staticmethod
    def of(
        design: Design,
        config: UpliftConfig,
        outcomes: tuple[str, ...] = OUTCOMES,
        *,
        whole: bool = False,
        cache: Path | None = None,
        workers: Workers | None = None,
        sampling: NuisanceSampling | None = None,
    ) -> CrossFit:
        """The shared fits over `design`, on `workers` (default: `config.jobs` local processes); with
        `sampling`, each propensity on a case-control sample of its fold's rows."""
        seed = int(config.seed or 0)
        features, categories = design_columns(design.rows)
        x = doubly_robust.Matrix.of(design.rows, features, categories)
        splits = doubly_robust.folds(design.groups, config.folds, seed)
        sample = Sample(
            x,
            splits,
            design.groups,
            seed,
            outcomes={o: design.outcomes[o] for o in outcomes},
            treatments={
                a: doubly_robust.targeted(design.treated[a], design.randomised[a]) for a in design.actions
            },
            whole_baselines=whole,
            sampling=sampling,
        )
        on = workers or Workers(config.resolved_jobs)
        (fitted,) = fit_side_by_side([sample], workers=on, threads=config.threads, desc="uplift", cache=cache)
        propensities = {
            a: doubly_robust.with_known(fitted.targeted[a], design.known_propensity[a], config.clip)
            for a in design.actions
        }
        return CrossFit(
            design, features, categories, x, splits, fitted.baseline, propensities, fitted.whole_baselines
        )

    def nuisance(self, action: str, outcome: str) -> doubly_robust.Nuisance:
        propensity, clipped = self.propensities[action]
        mu0, mu1 = doubly_robust.fit_outcomes(
            self.design.treated[action],
            self.design.outcomes[outcome],
            self.splits,
            self.baseline[outcome],
            propensity,
        )
        return doubly_robust.Nuisance(mu0, mu1, propensity, clipped)


def fit_uplift(
    design: Design,
    config: UpliftConfig,
    name: str,
    cache: Path | None = None,
    workers: Workers | None = None,
    sampling: NuisanceSampling | None = None,
) -> UpliftModel:
    """Every nuisance out of fold (from `cache` where fitted before, else on `workers`; propensities on
    case-control samples with `sampling`), then each action's average and relative effect on each
    outcome, over the weeks the team was free to act (held-out weeks left out: `holdout`). An action that
    settles at the renewal takes its shares and overlap from one row per renewal where there are enough
    (`renewal`); its average effect, like every action's, is this week's act against the usual course."""
    design = design.usual_course()
    fit = CrossFit.of(design, config, whole=True, cache=cache, workers=workers, sampling=sampling)
    relative: dict[tuple[str, str], doubly_robust.RelativeEffect] = {}
    average: dict[tuple[str, str], doubly_robust.Effect] = {}
    overlap: dict[str, Overlap] = {}
    psi: dict[tuple[str, str], np.ndarray] = {}
    for action in design.actions:
        weekly: dict[str, doubly_robust.RelativeEffect] = {}
        for outcome in OUTCOMES:
            nuisance = fit.nuisance(action, outcome)
            psi[(action, outcome)] = doubly_robust.pseudo_outcomes(
                design.treated[action], design.outcomes[outcome], nuisance
            )
            average[(action, outcome)], weekly[outcome] = doubly_robust.effect_and_share(
                psi[(action, outcome)],
                design.treated[action],
                design.outcomes[outcome],
                nuisance,
                fit.baseline[outcome],
                design.groups,
            )
        by_renewal = _by_renewal(design, action, fit, config)
        if by_renewal is None:
            overlap[action] = _overlap(design, action, *fit.propensities[action], config)
            worth_later = overlap[action].worth_taken_later
            relative |= {(action, o): s.against_never_acting(worth_later) for o, s in weekly.items()}
        else:
            overlap[action] = _renewal_overlap(*by_renewal, config)
            relative |= {(action, o): share for o, share in by_renewal[1].relative.items()}
    posterior = posteriors(relative, {a: spec.prior for a, spec in design.actions.items()})
    standings, learners = _tournaments(fit, overlap, psi, config, workers or Workers(config.resolved_jobs))
    return UpliftModel(
        name=name,
        features=fit.features,
        categories=fit.categories,
        actions=list(design.actions),
        horizon_days=int(config.horizon_days or 0),
        baselines=fit.whole_baselines,
        relative=relative,
        overlap=overlap,
        average=average,
        threads=1,
        posterior=posterior,
        ranking_quality=_ranking_quality(fit, posterior, psi, int(config.seed or 0)),
        learners=learners,
        tournament=standings,
    )


def _tournaments(
    fit: CrossFit,
    overlap: dict[str, Overlap],
    psi: dict[tuple[str, str], np.ndarray],
    config: UpliftConfig,
    workers: Workers,
) -> tuple[dict[str, Standing], dict[str, Learner]]:
    """Each weekly-compared action's tournament of effect learners on churn (`tournament`), with good
    overlap only, and the winners fitted on every row where one beat the pooled share. The DR-learners'
    folds, the tournament's costly part, are fitted for every action at once, side by side on `workers`."""
    levels = fit.categories.get(tournament.BAND) if tournament.BAND in fit.features else None
    seed = int(config.seed or 0)
    entered = [a for a, stats in overlap.items() if stats.design == "weekly" and not stats.poor]
    critical = tournament.critical_z(len(entered) * (len(tournament.ENTRANTS) - (1 if levels else 2)))
    entries = {}
    for action in entered:
        propensity, _ = fit.propensities[action]
        weight = propensity * (1.0 - propensity)
        entries[action] = tournament.Entry(
            fit.x, psi[(action, "churn")], weight, fit.baseline["churn"], fit.design.groups
        )
    changes = tournament.dr_changes(entries, seed, config.threads, lambda calls: side_by_side(calls, workers))
    standings, learners = {}, {}
    for action, entry in entries.items():
        stats = overlap[action]
        standings[action] = tournament.compete(
            action, entry, levels, config.budget_share, seed, config.threads, critical, changes[action]
        )
        scale = doubly_robust.never_acting_scale(stats.worth_taken_later)
        learner = tournament.winning_learner(standings[action], entry, levels, scale, seed, config.threads)
        if learner is not None:
            learners[action] = learner
    return standings, learners


def _ranking_quality(
    fit: CrossFit,
    posterior: dict[tuple[str, str], Posterior],
    psi: dict[tuple[str, str], np.ndarray],
    seed: int,
) -> dict[tuple[str, str], Qini]:
    """Each action's Qini on each outcome over the design's rows: the rows ranked by the posterior share
    times the out-of-fold baseline, against their cross-fitted pseudo-outcomes. An action whose churn a
    tournament learner ranks is judged by the tournament's held-out values instead (`Standing`): the
    learner was fitted on these very rows."""
    out = {}
    for (action, outcome), pseudo in psi.items():
        sign = helps_sign(outcome)
        score = sign * posterior[(action, outcome)].value * fit.baseline[outcome]
        out[(action, outcome)] = qini(score, sign * pseudo, fit.design.groups, seed)
    return out


@dataclass(frozen=True)
class Truth:
    """The simulator's truth for the store's own month-end feature rows (the truth is recorded at month
    ends): each row's true effects per action on both outcomes and its true churn probability."""

    rows: pd.DataFrame
    churn: pd.DataFrame
    expansion: pd.DataFrame
    p_churn: np.ndarray
    interventions: pd.DataFrame


def read_truth(store: Store, truth_dir: Path) -> Truth:
    """The truth of the simulator output folder `truth_dir` for the store's feature rows."""
    folder = truth_dir / "truth" if (truth_dir / "truth").is_dir() else truth_dir
    path = folder / "action_effects.parquet"
    if not path.exists():
        raise RetainError(f"no action_effects.parquet under {truth_dir}: is it a simulator output folder?")
    effects = pd.read_parquet(path)
    rows = read_features(store).to_pandas()
    rows = rows[~(rows["days_to_renewal"] < 0)].reset_index(drop=True)
    churn = against_truth.true_effects(effects, rows, "churn_effect")
    expansion = against_truth.true_effects(effects, rows, "expansion_effect")
    p_churn = against_truth.true_risk(pd.read_parquet(folder / "probabilities.parquet"), churn, rows)
    return Truth(rows, churn, expansion, p_churn, read_interventions(store))


def _truth_metrics(store: Store, model: UpliftModel, config: UpliftConfig) -> dict[str, Any]:
    assert config.truth_dir is not None
    truth = read_truth(store, config.truth_dir)
    return {
        "policy": against_truth.policy_values(
            model, truth.rows, truth.churn, truth.interventions, config.budget_share, truth.p_churn
        ),
        "coverage": {
            "churn": against_truth.effect_coverage(model, truth.churn, "churn"),
            "expansion": against_truth.effect_coverage(model, truth.expansion, "expansion"),
        },
        "churn_shares": against_truth.churn_shares(model, truth.churn, truth.p_churn),
    }


def _flat(metrics: dict[str, Any]) -> dict[str, float]:
    flat: dict[str, float] = {}
    for key, effect in metrics["effects"].items():
        flat[f"{key}_ate"] = effect["ate"]
        flat[f"{key}_ci_width"] = effect["ci_high"] - effect["ci_low"]
        flat[f"{key}_relative"] = metrics["relative_effects"][key]["share"]
        flat[f"{key}_relative_se"] = metrics["relative_effects"][key]["se"]
        flat[f"{key}_posterior"] = metrics["posterior_effects"][key]["share"]
        flat[f"{key}_p_helps"] = metrics["posterior_effects"][key]["p_helps"]
        flat[f"{key}_qini"] = metrics["qini"][key]["qini"]
        flat[f"{key}_qini_ci_low"] = metrics["qini"][key]["ci_low"]
        flat[f"{key}_auuc"] = metrics["qini"][key]["auuc"]
        flat[f"{key}_random_auuc"] = metrics["qini"][key]["random_auuc"]
    for action, standing in metrics["tournament"].items():
        flat[f"{action}_tournament_margin"] = standing["margin"]
        flat[f"{action}_tournament_margin_se"] = standing["se"]
        flat[f"{action}_tournament_won_by_pooled_share"] = float(standing["winner"] == tournament.POOLED)
    for outcome, program in metrics["program_effect"].items():
        flat[f"program_{outcome}_ate"] = program["ate"]
        flat[f"program_{outcome}_ci_width"] = program["ci_high"] - program["ci_low"]
    for action, stats in metrics["overlap"].items():
        flat[f"{action}_effective_treated"] = stats["effective_treated"]
        for later in ("control_treated_later", "control_horizon_later", "worth_taken_later"):
            if stats[later] is not None:
                flat[f"{action}_{later}"] = stats[later]
    truth = metrics.get("truth")
    if truth:
        for policy_name, share in truth["policy"]["share_of_oracle"].items():
            if share is not None:
                flat[f"policy_{policy_name}_share_of_oracle"] = share
        for policy_name, share in truth["policy"]["taken_anyway_share"].items():
            if share is not None:
                flat[f"policy_{policy_name}_taken_anyway_share"] = share
        for outcome, per_action in truth["coverage"].items():
            flat[f"coverage_{outcome}"] = float(np.mean([a["covered"] for a in per_action.values()]))
    return flat


def train_uplift(
    store: Store, settings: Settings, config: UpliftConfig, *, name: str = "uplift"
) -> TrainResult[UpliftModel]:
    config = config.resolved(settings)
    started = time.perf_counter()
    design = store_design(store, settings, int(config.horizon_days or settings.horizon_days), config.threads)
    cache = crossfit_cache(store)
    workers = Workers.of(settings, config.resolved_jobs)
    model = fit_uplift(
        design, config, name, cache=cache, workers=workers, sampling=settings.nuisance_sampling
    )
    seed = int(config.seed or 0)
    program = design_program_effects(
        design.rows,
        design.outcomes,
        design.holdout,
        folds=config.folds,
        seed=seed,
        threads=config.threads,
        workers=workers,
        cache=cache,
    )
    metrics: dict[str, Any] = {
        "rows": len(design.rows),
        "held_out_rows": int(design.holdout.held_out.sum()),
        "accounts": int(design.rows["account_id"].nunique()),
        "weeks": int(design.rows["cutoff"].nunique()),
        "program_effect": {p.outcome: p.as_dict() for p in program},
        "effects": {f"{a}_{o}": e.as_dict() for (a, o), e in model.average.items()},
        "relative_effects": {f"{a}_{o}": share.as_dict() for (a, o), share in model.relative.items()},
        "posterior_effects": {f"{a}_{o}": p.as_dict() for (a, o), p in model.posterior.items()},
        "qini": {f"{a}_{o}": q.as_dict() for (a, o), q in model.ranking_quality.items()},
        "tournament": {a: s.as_dict() for a, s in model.tournament.items()},
        "overlap": {a: o.as_dict() for a, o in model.overlap.items()},
        "usable_actions": model.usable(),
    }
    if config.truth_dir is not None:
        metrics["truth"] = _truth_metrics(store, model, config)
    metrics["seconds"] = round(time.perf_counter() - started, 2)
    lineage = {
        "source": "store",
        "store": store.location,
        "table_versions": store.versions(),
        "design": "weekly cutoffs on the interventions' weekday; treated = action taken within 7 days; "
        "held-out weeks left out; an action settling at the renewal compared per renewal",
        "cutoffs": [str(design.rows["cutoff"].min().date()), str(design.rows["cutoff"].max().date())],
        "horizon_days": model.horizon_days,
        "train_fingerprint": fingerprint(design.rows[list(KEYS)]),
    }
    return TrainResult(
        model=model,
        params=config.model_dump(mode="json"),
        metrics=metrics,
        flat_metrics=_flat(metrics),
        plots={},
        lineage=lineage,
        input_example=design.rows.head(5).reset_index(drop=True),
    )
