"""`retain monitor`: read the store, the champions and the decision log, measure, and write the figures.

The I/O edge of the monitor: the feature table and labels come from the store (labels by the same SQL
training uses), the champions and their training windows from the registry, answers and feedback from
the decision log, plans from the store's `plans` table. The measuring is done by the pure modules beside
this one; the figures go to `monitor.json`, `monitor.html`, an MLflow run and the store's `gauges` table.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import get_args

import duckdb
import mlflow
import numpy as np
import pandas as pd
from tqdm import tqdm

from core.errors import RetainError
from core.files import atomic_path
from core.settings import Settings
from features.definitions import CLOCK_FEATURES, FEATURES
from features.run import register_store
from features.stored import read_features
from products.monitor import drift, impact, performance
from products.monitor.schema import (
    ActionFeedback,
    CutoffPerformance,
    DriftAlarm,
    Fallbacks,
    InputDrift,
    MonitorReport,
    ScoreSpread,
    TargetPerformance,
)
from registry.models import VersionInfo, load_scoring_model
from registry.tracking import active_uri, client, experiment_id, tracking_uri
from serving.assess import risk_band
from serving.schemas import RiskBand
from store.decision_log import DecisionLog, DecisionLogUnavailable
from store.delta import Store
from store.gauges import Gauge, write_gauges
from store.plan_table import recorded_plans
from training.artifact import ScoringModel
from training.evaluate import health_probability
from training.labels import Target, label_frame

QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)
#: the plans judged together: the last this many weeks whose labels matured
PLAN_WEEKS = 12
MODELS: tuple[Target, ...] = ("churn", "expansion")
#: the longest window a feature looks back over: cutoffs with less history behind them are no reference
LOOKBACK_DAYS = 90
#: the MLflow experiment holding one run per monitor run
MONITORING = "monitoring"


@dataclass(frozen=True)
class MonitoredChampion:
    target: Target
    model: ScoringModel
    info: VersionInfo
    #: the cutoffs of its training run's windows, by window (train, calibration, test)
    windows: dict[str, list[pd.Timestamp]]


def _lineage_windows(store: Store, settings: Settings, info: VersionInfo) -> dict[str, list[pd.Timestamp]]:
    """The train, calibration and test cutoffs the version's training run recorded."""
    if info.run_id is None:
        raise RetainError(f"{info.uri} has no training run to read its window from")
    with tempfile.TemporaryDirectory() as scratch:
        path = client(store, settings).download_artifacts(info.run_id, "lineage.json", scratch)
        lineage = json.loads(Path(path).read_text())
    return {w: [pd.Timestamp(c, tz="UTC") for c in cs] for w, cs in lineage["cutoffs"].items()}


def _champions(store: Store, settings: Settings) -> list[MonitoredChampion]:
    found = []
    for target in MODELS:
        try:
            model, info = load_scoring_model(store, settings, f"{target}@champion")
        except RetainError as e:
            if target == "churn":
                raise RetainError(f"the monitor needs a churn champion ({e}): run `retain train`") from e
            continue
        found.append(MonitoredChampion(target, model, info, _lineage_windows(store, settings, info)))
    return found


def _labels(store: Store, keys: pd.DataFrame, target: Target, horizon: int) -> pd.DataFrame:
    with duckdb.connect() as con:
        register_store(con, store)
        return label_frame(con, keys, target, horizon)


def reference_cutoffs(rows: pd.DataFrame, train: list[pd.Timestamp]) -> list[pd.Timestamp]:
    """The champion's train cutoffs with a whole lookback of history before them: features at a store's
    first cutoffs see less than 90 days of events, so against them every later cutoff looks drifted. The
    last train cutoff stands in when none has."""
    full = min(rows["cutoff"]) + pd.Timedelta(days=LOOKBACK_DAYS)
    return [c for c in train if c >= full] or sorted(train)[-1:]


def drift_section(rows: pd.DataFrame, champion: MonitoredChampion) -> InputDrift:
    """PSI of every feature of the catalogue at every cutoff after the training window; an alarm
    where a feature that is no clock drifted at a cutoff and the one before it (a one-cutoff blip, a
    holiday week, say, is shown but not alarmed)."""
    reference = reference_cutoffs(rows, champion.windows["train"])
    features = [f.name for f in FEATURES if f.name in rows.columns]
    values = drift.feature_drift(rows, reference, features)
    alarms = [
        DriftAlarm(feature=now.feature, cutoff=now.cutoff, psi=now.psi, previous_psi=before.psi)
        for before, now in drift.alarmed(values, CLOCK_FEATURES)
    ]
    return InputDrift(
        reference_cutoffs=[str(c.date()) for c in reference],
        features=features,
        clock_features=sorted(set(features) & CLOCK_FEATURES),
        values=values,
        alarms=alarms,
    )


def score_spread(
    cutoffs: Sequence[pd.Timestamp], rows: pd.DataFrame, p: np.ndarray, settings: Settings
) -> list[ScoreSpread]:
    """Per cutoff, the churn probabilities' quantiles and the share in each risk band the API serves."""
    out = []
    for cutoff in cutoffs:
        at = p[(rows["cutoff"] == cutoff).to_numpy()]
        if at.size == 0:
            continue
        bands = Counter(risk_band(float(value), settings) for value in at)
        out.append(
            ScoreSpread(
                cutoff=str(cutoff.date()),
                rows=int(at.size),
                quantiles={f"p{round(q * 100)}": round(float(np.quantile(at, q)), 4) for q in QUANTILES},
                bands={band: round(bands[band] / at.size, 4) for band in get_args(RiskBand)},
            )
        )
    return out


def _health_probability(scored: pd.DataFrame, champion: MonitoredChampion) -> np.ndarray | None:
    """The health formula as a probability, Platt-scaled on the champion's matured calibration rows as
    training does; None where that window holds one class only."""
    window = scored["cutoff"].isin(champion.windows.get("calibration", [])) & scored["matured"]
    y = scored.loc[window, "label"].to_numpy(int)
    if len(set(y)) < 2:
        return None
    return health_probability(scored[window], scored, y, champion.target)


def performance_section(
    rows: pd.DataFrame, champion: MonitoredChampion, store: Store, settings: Settings
) -> TargetPerformance:
    """Every cutoff from the champion's test window on: realised figures where the labels matured (model
    and health formula, overall and per tier), and CBPE's estimate at every cutoff."""
    first = min(champion.windows.get("test", []) or [rows["cutoff"].max()])
    after = rows[rows["cutoff"] >= first].reset_index(drop=True)
    calibration = rows[rows["cutoff"].isin(champion.windows.get("calibration", []))]
    scored = pd.concat([calibration, after], ignore_index=True)
    labels = _labels(store, scored[["account_id", "cutoff"]], champion.target, settings.horizon_days)
    scored = scored.merge(labels, on=["account_id", "cutoff"], how="inner")
    p = champion.model.predict(scored)
    health = _health_probability(scored, champion)
    keep = (scored["cutoff"] >= first).to_numpy()
    scored, p = scored[keep].reset_index(drop=True), p[keep]
    health = None if health is None else health[keep]
    cutoffs = []
    for i, cutoff in enumerate(sorted(scored["cutoff"].unique())):
        at = (scored["cutoff"] == cutoff).to_numpy()
        matured = bool(scored.loc[at, "matured"].all())
        realised: dict[str, dict[str, performance.Realised]] = {}
        if matured:
            y = scored.loc[at, "label"].to_numpy(int)
            tiers = scored.loc[at, "tier"].astype(str).to_numpy() if "tier" in scored else None
            for name, probability in (("model", p), ("health", health)):
                if probability is None:
                    continue
                realised[name] = {"all": performance.realised(y, probability[at])}
                for tier in sorted(set(tiers)) if tiers is not None else []:
                    sel = tiers == tier
                    realised[name][tier] = performance.realised(y[sel], probability[at][sel])
        seed = settings.seed + i
        cutoffs.append(
            CutoffPerformance(
                target=champion.target,
                cutoff=str(pd.Timestamp(cutoff).date()),
                matured=matured,
                realised=realised,
                estimated=performance.estimated(p[at], seed),
            )
        )
    matured_rows = scored["matured"].to_numpy()
    reliability = (
        performance.reliability_points(scored.loc[matured_rows, "label"].to_numpy(int), p[matured_rows])
        if matured_rows.any()
        else None
    )
    return TargetPerformance(
        target=champion.target, model_version=champion.info.version, cutoffs=cutoffs, reliability=reliability
    )


def fallback_section(log: DecisionLog | None, since: datetime) -> Fallbacks:
    sources = [] if log is None else log.answer_sources(since)
    answers = sum(s.answers for s in sources)
    rules = [s for s in sources if s.source == "rules"]
    by_reason = Counter({s.code or "unknown": 0 for s in rules})
    for s in rules:
        by_reason[s.code or "unknown"] += s.answers
    total_rules = sum(by_reason.values())
    return Fallbacks(
        since=since.date().isoformat(),
        answers=answers,
        rules=total_rules,
        share=round(total_rules / answers, 4) if answers else None,
        by_reason=dict(by_reason.most_common()),
    )


def feedback_section(log: DecisionLog | None, since: datetime) -> list[ActionFeedback]:
    counts = [] if log is None else log.feedback_counts(since)
    out = []
    for action in sorted({c.action for c in counts}):
        mine = [c for c in counts if c.action == action]
        status: Counter[str] = Counter()
        reasons: Counter[str] = Counter()
        for c in mine:
            status[c.status] += c.n
            if c.status == "rejected" and c.reason:
                reasons[c.reason] += c.n
        answered = status["accepted"] + status["rejected"] + status["done"]
        out.append(
            ActionFeedback(
                action=action,
                accepted=status["accepted"],
                rejected=status["rejected"],
                done=status["done"],
                acceptance_rate=round((status["accepted"] + status["done"]) / answered, 4)
                if answered
                else None,
                rejection_rate=round(status["rejected"] / answered, 4) if answered else None,
                top_rejection_reasons=reasons.most_common(3),
            )
        )
    return out


def plan_section(store: Store, settings: Settings, before: datetime | None = None) -> impact.PlanImpact:
    """What the recorded plans kept against their holdouts; with `before`, only the plans of weeks that
    start before it (the weekly digest's past plans)."""
    plans = recorded_plans(store)
    if before is not None:
        plans = plans[plans["week"] < pd.Timestamp(before)].reset_index(drop=True)
    if plans.empty:
        return impact.plan_impact(plans.assign(churned=[], expanded=[], matured=[]), settings.seed)
    weeks = sorted(plans["week"].unique())
    rows = with_outcomes(store, settings, plans)
    matured_weeks = [w for w in weeks if rows.loc[rows["week"] == w, "matured"].all()]
    judged = set(matured_weeks[-PLAN_WEEKS:])
    rows = rows[rows["week"].isin(judged) | ~rows["week"].isin(matured_weeks)]
    return impact.plan_impact(rows, settings.seed)


def with_outcomes(store: Store, settings: Settings, plans: pd.DataFrame) -> pd.DataFrame:
    """Recorded plan rows with each account's realised churn and expansion over the horizon after its week
    and whether both matured: the rows `impact.plan_impact` reads."""
    keys = plans[["account_id", "week"]].rename(columns={"week": "cutoff"})
    churn = _labels(store, keys, "churn", settings.horizon_days)
    expansion = _labels(store, keys, "expansion", settings.horizon_days)
    outcomes = churn.rename(columns={"label": "churned", "matured": "churn_matured"}).merge(
        expansion.rename(columns={"label": "expanded", "matured": "expansion_matured"}),
        on=["account_id", "cutoff"],
        how="left",
    )
    outcomes["matured"] = outcomes["churn_matured"] & outcomes["expansion_matured"].fillna(False).astype(bool)
    rows = plans.merge(outcomes.rename(columns={"cutoff": "week"}), on=["account_id", "week"], how="inner")
    rows["expanded"] = rows["expanded"].fillna(0)
    return rows


def _decision_log(store: Store, settings: Settings) -> DecisionLog | None:
    """The API's decision log, or None when this store never served (no SQLite file to read)."""
    log = DecisionLog.for_store(store, settings)
    return log if log.exists() else None


def findings(report: MonitorReport) -> list[str]:
    """What to look at first, in words: alarms, decay, fallbacks, the plans' result."""
    out = []
    latest = {alarm.feature: alarm for alarm in report.drift.alarms}
    if latest:
        named = ", ".join(f"{a.feature} (PSI {a.psi:.2f} at {a.cutoff})" for a in latest.values())
        out.append(f"Input drift: {named}. Retrain when the drift is a lasting change, not a blip.")
    else:
        out.append("No feature drifted for two cutoffs running against the champion's training window.")
    for target in report.performance:
        matured = [c for c in target.cutoffs if c.matured and "model" in c.realised]
        if matured:
            last = matured[-1]
            auc = last.realised["model"]["all"].auc
            health = last.realised.get("health", {}).get("all")
            beside = (
                f" (health formula {health.auc:.3f})" if health is not None and health.auc is not None else ""
            )
            if auc is not None:
                out.append(
                    f"{target.target}: realised AUC {auc:.3f} at {last.cutoff}{beside}, latest matured."
                )
        pending = [c for c in target.cutoffs if not c.matured]
        if pending and pending[-1].estimated.auc is not None:
            e = pending[-1].estimated
            out.append(
                f"{target.target}: estimated AUC {e.auc:.3f} (95% range {e.auc_low:.3f} to {e.auc_high:.3f}) "
                f"at {pending[-1].cutoff}, whose labels mature later (if the model is still calibrated)."
            )
    if report.fallbacks.share is not None:
        out.append(
            f"{report.fallbacks.share:.1%} of {report.fallbacks.answers} answers since "
            f"{report.fallbacks.since} came from the rules fallback."
        )
    out.append(report.plans.sentence)
    return out


def _drift_gauges(report: MonitorReport) -> list[Gauge]:
    latest = report.drift.values[-1].cutoff if report.drift.values else None
    help_psi = "PSI of the feature at the latest cutoff against the champion's training window"
    out = [
        Gauge("feature_psi", {"feature": v.feature}, v.psi, help_psi)
        for v in report.drift.values
        if v.cutoff == latest
    ]
    alarmed = {a.feature for a in report.drift.alarms if a.cutoff == latest}
    out.append(
        Gauge(
            "drift_alarms",
            {},
            float(len(alarmed)),
            "features drifted at the latest cutoff and the one before",
        )
    )
    return out


def _performance_gauges(target: TargetPerformance) -> list[Gauge]:
    out = []
    labels = {"model": target.target}
    matured = [c for c in target.cutoffs if c.matured and "model" in c.realised]
    if matured:
        last = matured[-1].realised["model"]["all"]
        if last.auc is not None:
            out.append(
                Gauge("realised_auc", labels, last.auc, "AUC at the latest cutoff whose labels matured")
            )
        out.append(Gauge("realised_brier", labels, last.brier, "Brier score at the latest matured cutoff"))
        out.append(
            Gauge("realised_ece", labels, last.ece, "calibration error (ECE) at the latest matured cutoff")
        )
    estimate = target.cutoffs[-1].estimated.auc if target.cutoffs else None
    if estimate is not None:
        out.append(Gauge("estimated_auc", labels, estimate, "CBPE's AUC estimate at the latest cutoff"))
    return out


def gauges(report: MonitorReport) -> list[Gauge]:
    """The latest figures as Prometheus gauges: drift per feature, realised and estimated performance,
    the fallback share and the plans' impact."""
    out = _drift_gauges(report)
    for target in report.performance:
        out += _performance_gauges(target)
    if report.fallbacks.share is not None:
        out.append(
            Gauge("fallback_share", {}, report.fallbacks.share, "share of answers from the rules fallback")
        )
    plans = report.plans
    if plans.arr_kept is not None and plans.churn_prevented is not None:
        out.append(Gauge("plans_arr_kept", {}, plans.arr_kept.estimate, "ARR the judged weekly plans kept"))
        out.append(
            Gauge(
                "plans_churn_prevented",
                {},
                plans.churn_prevented.estimate,
                "churns the judged plans prevented",
            )
        )
    return out


@dataclass(frozen=True)
class MonitorFiles:
    """Where a monitor run wrote its figures, and the headline findings."""

    html: Path
    json: Path
    mlflow_run: str
    gauges_version: int
    findings: list[str]
    drift_alarms: int


def measure(store: Store, settings: Settings) -> MonitorReport:
    """Every figure of the monitor, from the store, the registry and the decision log."""
    steps = tqdm(total=5, desc="monitor", unit="step", disable=None)
    with steps:
        champions = _champions(store, settings)
        rows = read_features(store).to_pandas()
        if rows.empty:
            raise RetainError(f"no feature rows in {store.location}: run `retain features build` first")
        rows["cutoff"] = pd.to_datetime(rows["cutoff"], utc=True)
        steps.update()
        churn = champions[0]
        drifted = drift_section(rows, churn)
        cutoffs = sorted(c for c in rows["cutoff"].unique() if c >= min(churn.windows["train"]))
        spread = score_spread(cutoffs, rows, churn.model.predict(rows), settings)
        steps.update()
        judged = [performance_section(rows, c, store, settings) for c in champions]
        steps.update()
        latest = pd.Timestamp(rows["cutoff"].max())
        since = (latest - timedelta(days=settings.horizon_days)).to_pydatetime()
        try:
            log = _decision_log(store, settings)
            served, feedback = fallback_section(log, since), feedback_section(log, since)
        except DecisionLogUnavailable as e:
            raise RetainError(f"the monitor reads answers and feedback from the decision log: {e}") from e
        steps.update()
        plans = plan_section(store, settings)
        steps.update()
    report = MonitorReport(
        store=store.location,
        computed_at=datetime.now(UTC).isoformat(timespec="seconds"),
        latest_cutoff=str(latest.date()),
        models={c.target: c.info.version for c in champions},
        drift=drifted,
        scores=spread,
        performance=judged,
        fallbacks=served,
        feedback=feedback,
        plans=plans,
        findings=[],
    )
    return report.model_copy(update={"findings": findings(report)})


def _metric_key(gauge: Gauge) -> str:
    return "_".join([gauge.name, *(v for _, v in sorted(gauge.labels.items()))])


def log_run(
    store: Store, settings: Settings, report: MonitorReport, figures: list[Gauge], files: list[Path]
) -> str:
    """One MLflow run in the `monitoring` experiment: the gauges as metrics, page and JSON as artifacts."""
    with active_uri(tracking_uri(store, settings)):
        experiment = experiment_id(client(store, settings), store, MONITORING)
        with mlflow.start_run(experiment_id=experiment, run_name=f"monitor-{report.latest_cutoff}") as run:
            mlflow.log_params(
                {"latest_cutoff": report.latest_cutoff, **{f"model.{k}": v for k, v in report.models.items()}}
            )
            mlflow.log_metrics({_metric_key(g): g.value for g in figures})
            for path in files:
                mlflow.log_artifact(str(path))
    return str(run.info.run_id)


def monitor_store(store: Store, settings: Settings, out: Path) -> MonitorFiles:
    """Measure, write `out/monitor.html` and `out/monitor.json`, log the run to MLflow and replace the
    store's gauges."""
    from products.monitor.html import render  # deferred: matplotlib and Jinja2

    report = measure(store, settings)
    out.mkdir(parents=True, exist_ok=True)
    page, data = out / "monitor.html", out / "monitor.json"
    with atomic_path(data) as tmp:
        tmp.write_text(report.model_dump_json(indent=2))
    with atomic_path(page) as tmp:
        tmp.write_text(render(report), encoding="utf-8")
    figures = gauges(report)
    run = log_run(store, settings, report, figures, [page, data])
    note = json.dumps(
        {"step": "monitor", "latest_cutoff": report.latest_cutoff, "mlflow_run": run}, sort_keys=True
    )
    version = write_gauges(store, figures, datetime.fromisoformat(report.computed_at), note)
    return MonitorFiles(
        html=page,
        json=data,
        mlflow_run=run,
        gauges_version=version,
        findings=report.findings,
        drift_alarms=len(report.drift.alarms),
    )
