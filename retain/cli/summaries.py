"""What each command tells a person: a few lines and, where a comparison helps, a table.

One function per result of `retain.api`; the full result is `--json`. Each summary says what was done,
the headline figures and where the outputs are.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from features.alerts import Alerted
    from features.build import FeatureBuild
    from features.playbook_file import PlaybookSummary
    from registry.promotion import PolicyEvaluation, Promotion, Rollback
    from retain.api import Json, Retrained, Trained
    from retain.autopilot.run import AutopilotRun
    from retain.core.store import Commit
    from retain.digest.run import DigestFiles
    from retain.ingest import IngestSummary
    from retain.ingest.migrate import Migration
    from retain.maintenance import Compaction
    from retain.maintenance.check import StoreCheck
    from retain.monitor.run import MonitorFiles
    from retain.plan import MostPlanned, PlanSummary
    from retain.report.html import ReportFiles
    from retain.report.schema import ProgramComparison
    from retain.simulate import Simulation
    from serving.autopilot_log import Switch
    from serving.batch import ModelAnswered, StoreScores, TableScores
    from serving.keys import ApiKey
    from serving.webhooks.delivery import DeliveryRound
    from serving.webhooks.outbox import FailedDelivery, Retried, RotatedSecret, Webhook

#: binary metrics shown for each candidate of a churn or expansion run, by their key in `metrics`
CANDIDATE_METRICS = {"auc": "AUC", "pr_auc": "PR-AUC", "brier": "Brier", "lift_top_decile": "lift top 10%"}


def _count(n: int) -> str:
    return f"{n:,}"


def _written_to(out: object, rows: str) -> str:
    """Where a batch went: a file, or a database table (its URL, password redacted: a `str`) and which of
    its rows the batch replaced."""
    return f"table {out} (its {rows} replaced)" if isinstance(out, str) else str(out)


def _number(value: object, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, int | float) else "–"


def _table(
    title: str | None, columns: Iterable[str], rows: Iterable[Iterable[str]], *, figures: bool = True
) -> Table:
    """A plain table; with `figures`, every column after the first holds one, right-aligned and unbroken."""
    table = Table(title=title, title_justify="left", box=None, pad_edge=False, header_style="bold")
    for i, column in enumerate(columns):
        figure = figures and i > 0
        table.add_column(column, justify="right" if figure else "left", no_wrap=figure)
    for row in rows:
        table.add_row(*row)
    return table


def simulation(s: Simulation) -> RenderableType:
    return Group(
        f"Simulated {_count(s.accounts)} accounts over {s.days} days from {s.start} (seed {s.seed}) "
        f"in {s.seconds:.1f} s",
        f"  {_count(s.events)} events, {_count(s.interventions)} interventions "
        f"({s.random_share:.0%} by the experiment arm), {_count(s.held_out)} account-quarters held "
        f"out; {_count(s.churned)} churned, "
        f"{_count(s.expanded)} expanded",
        f"  telemetry in {s.out}, the truth kept apart in {s.out / 'truth'}",
    )


def ingested(s: IngestSummary) -> RenderableType:
    tables = sorted(set(s.accepted) | set(s.quarantined.by_table))
    rows = [
        [
            t,
            _count(s.accepted.get(t, 0)),
            _count(s.duplicates.get(t, 0)),
            _count(s.quarantined.by_table.get(t, 0)),
        ]
        for t in tables
    ]
    lines: list[RenderableType] = [
        f"Ingested {s.source} into the store {s.store} (ingest {s.ingest_id})",
        _table(None, ["table", "accepted", "duplicates", "quarantined"], rows),
    ]
    if s.quarantined.total:
        reasons = ", ".join(f"{reason} {_count(n)}" for reason, n in s.quarantined.by_reason.items())
        lines.append(f"  quarantined rows by reason: {reasons} ({_count(s.quarantined.new)} new)")
    if s.ignored_columns:
        lines.append(f"  columns not in the contract, ignored: {', '.join(s.ignored_columns)}")
    if s.adapter is not None:
        lines += [f"  {s.adapter.name}: {note}" for note in s.adapter.notes]
    return Group(*lines)


def alerted(a: Alerted | None) -> list[RenderableType]:
    """A step's alerts in one line (none for a step that raises none, as an export)."""
    if a is None:
        return []
    if a.error is not None:
        return [Text.assemble(("warning:", "yellow"), f" {a.raised} alerts raised, {a.error}")]
    return [f"  alerts: {a.raised} raised, {a.new} new, {a.deliveries} deliveries queued for the webhooks"]


def alerts_recorded(a: Alerted) -> RenderableType:
    if a.error is not None:
        return Text.assemble(("error:", "red"), f" {a.raised} alerts derived, {a.error}")
    return (
        f"{a.raised} alerts derived from the latest build, scores and plan: {a.new} recorded now, "
        f"{a.known} recorded before; {a.deliveries} deliveries queued for the webhooks"
    )


def features_built(b: FeatureBuild) -> RenderableType:
    span = f"{b.cutoffs[0]} to {b.cutoffs[-1]}" if b.cutoffs else "none"
    written = (
        f"feature table version {b.version}"
        if b.version is not None
        else f"written to {b.out} only (the store's feature table and online store unchanged)"
    )
    lines: list[RenderableType] = [
        f"Built {_count(b.rows)} feature rows ({_count(b.accounts)} accounts at {len(b.cutoffs)} cutoffs, "
        f"{span}; {b.columns} columns) in {b.seconds:.1f} s",
        f"  {written}, built from "
        + ", ".join(f"{table} v{version}" for table, version in b.read.items() if version is not None),
    ]
    if b.feast is not None:
        lines.append(
            f"  Feast: {_count(b.feast.rows_materialised)} accounts' latest rows in the "
            f"{b.feast.online_store} online store, in {b.feast.seconds:.1f} s"
        )
    return Group(*lines, *alerted(b.alerts))


#: the policies a trained uplift model is judged by against the truth, as shares of the oracle's
POLICIES = ("uplift", "rules", "highest_risk")


def _registered(t: Trained) -> str:
    r = t.mlflow
    return f"registered as {r.name} version {r.version} ({', '.join(r.aliases)})"


def trained(t: Trained) -> RenderableType:
    if "effects" in t.metrics:
        return _uplift_trained(t)
    candidates = [
        name for name in ("model", "health", "logistic", "oracle") if isinstance(t.metrics.get(name), dict)
    ]
    rows = [
        [name, *(_number(_get(t.metrics, name, key)) for key in CANDIDATE_METRICS)] for name in candidates
    ]
    return Group(
        f"Trained {t.model} in {_number(t.metrics.get('seconds'), 0)} s; {_registered(t)}",
        _table(_judged_on(t.metrics), ["candidate", *CANDIDATE_METRICS.values()], rows),
        f"  calibration error (ECE) {_number(t.metrics.get('ece'))}; MLflow run {t.mlflow.run_id}",
    )


def _judged_on(metrics: Mapping[str, Json]) -> str:
    """Which rows the figures come from: the test window, or every row out of fold (a small table)."""
    if metrics.get("evaluation") != "cross_validation":
        return "On the test window (health: the rules' score, oracle: the true probability)"
    return (
        f"Cross-validated: every row scored by the fold model that did not see it ({metrics.get('folds')} "
        f"folds); the final model ({_number(_get(metrics, 'tuning', 'trees'), 0)} trees, "
        f"{metrics.get('calibration')} calibration) is refitted on all {metrics.get('rows_refitted')} rows"
    )


def _get(metrics: Mapping[str, Json], *keys: str) -> Json:
    """A value deep in a JSON document, or None where the path stops."""
    value: Json = dict(metrics)
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _uplift_trained(t: Trained) -> RenderableType:
    usable = _get(t.metrics, "usable_actions")
    usable = usable if isinstance(usable, list) else []
    overlap = _get(t.metrics, "overlap")
    actions = list(overlap) if isinstance(overlap, dict) else []
    rows = [
        [
            action + ("" if action in usable else " (poor overlap)"),
            _share(_get(t.metrics, "relative_effects", f"{action}_churn")),
            _share(_get(t.metrics, "relative_effects", f"{action}_expansion")),
            _number(_get(t.metrics, "overlap", action, "effective_treated"), 0),
        ]
        for action in actions
    ]
    lines: list[RenderableType] = [
        f"Trained {t.model} on {_count(_int(t.metrics.get('rows')))} account-weeks "
        f"({_count(_int(t.metrics.get('accounts')))} accounts, {_int(t.metrics.get('weeks'))} weeks) "
        f"in {_number(t.metrics.get('seconds'), 0)} s; {_registered(t)}",
        _table(
            "Each action's effect as a share of the account's churn risk or expansion chance, ± 95%",
            ["action", "churn", "expansion", "effective treated"],
            rows,
        ),
    ]
    shares = _get(t.metrics, "truth", "policy", "share_of_oracle")
    if isinstance(shares, dict):
        told = ", ".join(f"{p} {_number(shares[p], 2)}" for p in POLICIES if p in shares)
        lines.append(f"  against the truth, churn averted as a share of the oracle's: {told}")
    lines.append(f"  MLflow run {t.mlflow.run_id}")
    return Group(*lines)


def _int(value: Json) -> int:
    return value if isinstance(value, int) else 0


def _share(effect: Json) -> str:
    if not isinstance(effect, dict):
        return "–"
    share, low, high = (effect.get(k) for k in ("share", "ci_low", "ci_high"))
    if (
        not isinstance(share, int | float)
        or not isinstance(low, int | float)
        or not isinstance(high, int | float)
    ):
        return "–"
    return f"{share:+.2f} ± {(high - low) / 2:.2f}"


def scored(s: StoreScores) -> RenderableType:
    used = [f"{v.name} version {v.version}" for v in (s.models.churn, s.models.expansion) if v is not None]
    return Group(
        f"Scored {_count(s.rows)} accounts active at {s.cutoff} with {' and '.join(used)} "
        f"in {s.seconds:.1f} s ({_count(round(s.rows_per_second))} a second)",
        f"  scores, health and top reasons: {_written_to(s.out, f'rows at {s.cutoff}')}",
        f"  and in the store's scores table, version {s.scores_version}",
        *(f"  note: {note}" for note in s.models.notes),
        *alerted(s.alerts),
    )


def table_scored(s: TableScores) -> RenderableType:
    return Group(
        f"Scored {_count(s.rows)} rows of {s.table} with {s.model.name} version {s.model.version} in "
        f"{s.seconds:.1f} s",
        f"  probabilities and top reasons: {s.out}",
    )


def example_account(a: ModelAnswered) -> str:
    return a.account_id


def planned(p: PlanSummary) -> RenderableType:
    rows = [[action, _count(n)] for action, n in sorted(p.by_action.items(), key=lambda item: -item[1])]
    hours = list(p.hours_used.values())
    used = f"{min(hours):.1f} to {max(hours):.1f}" if hours else "0"
    return Group(
        f"Planned the week of {p.week}: {_count(p.planned_actions)} actions for {_count(p.accounts)} "
        f"active accounts, expected value ${p.expected_value:,.0f} "
        f"(by {p.model.name} version {p.model.version})",
        f"  holdout {_count(p.holdout)} ({p.holdout_share:.0%}, no action, to keep effects measurable); "
        f"{_count(p.no_action)} with nothing worth doing; {p.needs_approval} need approval",
        f"  each CSM used {used} of {p.capacity_hours_per_csm:g} hours",
        f"  explored {_count(p.explored)} ({p.explore_share:.0%} of the accounts it would act on, each "
        "given the action that is best under a draw from the evidence, so that unsure actions get tried)",
        _table(None, ["action", "accounts"], rows),
        *([_most_planned(p.most_planned)] if p.most_planned else []),
        *(
            [f"  not planned (too little overlap to trust): {', '.join(p.excluded_actions)}"]
            if p.excluded_actions
            else []
        ),
        *(
            [f"  not planned (no uplift model has learnt them yet): {', '.join(p.unmodelled_actions)}"]
            if p.unmodelled_actions
            else []
        ),
        f"  plan: {_written_to(p.out, f'rows of the week of {p.week}')}",
        *alerted(p.alerts),
    )


def _most_planned(m: MostPlanned) -> str:
    if m.why_anyway is None:
        return f"  most planned: {m.action}, a {100 * m.p_helps:.0f}% chance it lowers churn risk"
    return f"  most planned: {m.why_anyway}"


def report_written(r: ReportFiles) -> RenderableType:
    """Where the report is, after a warning for each column a statistic left out of the adjustment or
    --covariates forced in against it, and how strong a hidden factor would have to be to erase each clear
    effect."""
    warnings = [
        Text.assemble(
            ("warning:", "yellow"), f" left out `{d.column}`: {d.reason}. Pass --covariates to choose."
        )
        for d in r.covariates_dropped
        if d.statistic is not None
    ] + [
        Text.assemble(
            ("warning:", "yellow"),
            f" adjusting for `{d.column}` as --covariates asks, though it looks post-treatment or "
            f"post-outcome: {d.reason}.",
        )
        for d in r.covariates_suspect
    ]
    return Group(
        *warnings,
        f"Causal report: {r.effects} effects estimated",
        *(f"  {s.treatment} on {s.outcome}: {s.sentence}" for s in r.robustness),
        *(_program(p) for p in r.program),
        *(
            Text.assemble(
                ("warning:" if c.disagree else "cross-check:", "yellow" if c.disagree else ""),
                f" {c.treatment} on {c.outcome}: {c.sentence}",
            )
            for c in r.cross_check
        ),
        f"  {r.html} (open it in a browser); its figures in {r.json}",
    )


def _program(p: ProgramComparison) -> str:
    """One outcome's usual course against never acting, in percentage points."""
    if p.ate is None or p.ci_low is None or p.ci_high is None:
        return f"  the usual course against never acting on {p.outcome}: not estimable"
    return (
        f"  the usual course against never acting on {p.outcome}: {100 * p.ate:+.1f} pp "
        f"(95% CI {100 * p.ci_low:+.1f} to {100 * p.ci_high:+.1f}) from {100 * p.never_rate:.1f}% "
        f"among {_count(p.held_accounts)} held-out accounts"
    )


def promotion(p: Promotion) -> RenderableType:
    return Group(
        f"{p.name}: {p.decision} ({p.reason}); the champion is version {p.champion}", *alerted(p.alerts)
    )


def policies(e: PolicyEvaluation) -> RenderableType:
    cutoffs = e.window.cutoffs or ["?", "?"]
    rows = [
        [
            p.policy,
            _count(p.pairs),
            f"{p.dr:+.1f} ({p.dr_ci[0]:+.1f} to {p.dr_ci[1]:+.1f})",
            f"{p.snipw:+.1f} ({p.snipw_ci[0]:+.1f} to {p.snipw_ci[1]:+.1f})",
        ]
        for p in e.policies
    ]
    return Group(
        f"Churned accounts averted against the usual course, weeks of {cutoffs[0]} to {cutoffs[-1]} "
        f"({_count(e.window.rows)} account-weeks, {_count(e.window.budget or 0)} acted on by each policy):",
        _table(None, ["policy", "actions", "doubly robust (95%)", "self-normalised IPW (95%)"], rows),
    )


def rolled_back(r: Rollback) -> RenderableType:
    said = f"{r.name}: version {r.rolled_back} rolled back; the champion is version {r.champion} again"
    return Group(said, *alerted(r.alerts))


def key_created(key: ApiKey) -> RenderableType:
    return (
        f"Created API key {key.key_id}{f' ({key.name})' if key.name else ''} with scopes "
        f"{', '.join(sorted(key.scopes))}. It is shown once, on the next line; only its hash is kept."
    )


def keys_listed(keys: list[ApiKey]) -> RenderableType:
    rows = [
        [
            k.key_id,
            k.name or "",
            ", ".join(sorted(k.scopes)),
            f"{k.created_at:%Y-%m-%d %H:%M}",
            "" if k.revoked_at is None else f"{k.revoked_at:%Y-%m-%d %H:%M}",
        ]
        for k in keys
    ]
    columns = ["key id", "name", "scopes", "created (UTC)", "revoked (UTC)"]
    return _table(None, columns, rows, figures=False) if rows else "No API keys."


def key_revoked(key: ApiKey) -> RenderableType:
    return f"Revoked API key {key.key_id}; a running server refuses it from its next request"


def keys_imported(keys: list[ApiKey]) -> RenderableType:
    if not keys:
        return "No keys to copy: the database has every key the file holds."
    return f"Copied {len(keys)} API key(s) into the database: {', '.join(k.key_id for k in keys)}"


def webhook_added(w: Webhook) -> RenderableType:
    return (
        f"Subscribed webhook {w.webhook_id} at {w.url} to {', '.join(w.events)}. Its signing secret is on "
        "the next line: it will not be shown again, so give it to the receiver now."
    )


def playbook_checked(p: PlaybookSummary) -> RenderableType:
    limit = p.contact_limit or "none"
    return (
        f"The playbook reads ({p.source}, sha256 {p.digest[:12]}): {len(p.actions)} actions "
        f"({', '.join(p.actions)}); alert rules {', '.join(p.alert_types) or 'none'}; contact limit {limit}."
    )


def webhooks_listed(webhooks: list[Webhook]) -> RenderableType:
    rows = [
        [
            w.webhook_id,
            w.url,
            ", ".join(w.events),
            f"{w.created_at:%Y-%m-%d %H:%M}",
            _count(w.pending),
            _count(w.dead),
        ]
        for w in webhooks
    ]
    columns = ["webhook id", "url", "events", "created (UTC)", "pending", "dead"]
    return _table(None, columns, rows, figures=False) if rows else "No webhooks."


def webhook_removed(w: Webhook) -> RenderableType:
    return f"Removed webhook {w.webhook_id} ({w.url}): nothing more is sent to it."


def webhook_rotated(r: RotatedSecret) -> RenderableType:
    w = r.webhook
    kept = (
        f"the secret it replaces still signs beside it until {r.previous_until:%Y-%m-%d %H:%M:%S} UTC, "
        "then is dropped"
        if r.previous_until is not None
        else "the secret it replaces was dropped at once"
    )
    return (
        f"Rotated the signing secret of webhook {w.webhook_id} ({w.url}): {kept}. The new secret is on the "
        "next line: it will not be shown again, so give it to the receiver now."
    )


def deliveries_failed(failed: list[FailedDelivery]) -> RenderableType:
    if not failed:
        return "No dead deliveries."
    rows = [
        [f.alert_id, f.type, f.account_id or "", f.webhook_id, str(f.attempts), f.last_error or ""]
        for f in failed
    ]
    columns = ["alert id", "type", "account", "webhook id", "attempts", "last error"]
    return Group(
        f"{len(failed)} dead deliveries; `retain webhooks retry` sends them again.",
        _table(None, columns, rows, figures=False),
    )


def deliveries_retried(r: Retried) -> RenderableType:
    return f"{r.deliveries} dead deliveries made pending again; the worker sends them on its next round."


def delivery_round(r: DeliveryRound) -> RenderableType:
    return f"Delivered {r.sent}; {r.failed} failed and will be tried again; {r.dead} dead" + (
        " (`retain webhooks failed` lists them)." if r.dead else "."
    )


def autopilot_ran(r: AutopilotRun) -> RenderableType:
    if r.week is None:
        return f"The autopilot executed nothing: {r.note}."
    done = sum(r.executed.values())
    verb = "would execute" if r.dry_run else "executed"
    dry = ", dry run" if r.dry_run else ""
    lines: list[RenderableType] = [
        f"Autopilot run {r.run_id} (week of {r.week}{dry}): {verb} {_count(done)} of {_count(r.candidates)} "
        f"autonomous plan rows; {_count(r.compared)} held-out accounts newly compared."
    ]
    if r.executed:
        lines.append(_table(None, ["action", verb], [[a, _count(n)] for a, n in r.executed.items()]))
    if r.skipped:
        lines.append(
            _table(None, ["skipped because", "rows"], [[w, _count(n)] for w, n in r.skipped.items()])
        )
    said = "Would pause" if r.dry_run else "Paused"
    lines += [f"{said} {action}: its holdout comparison shows it harmful." for action in r.paused]
    return Group(*lines)


def autopilot_switched(s: Switch) -> RenderableType:
    scope = "The whole autopilot" if s.scope == "*" else s.scope
    state = "is paused: it executes nothing" if s.paused else "runs again"
    why = f" ({s.reason})" if s.reason else ""
    return f"{scope} {state}{'' if s.scope == '*' else ' for this action'}{why}; set by {s.actor}."


def autopilot_switches(switches: list[Switch]) -> RenderableType:
    rows = [
        [s.scope, "paused" if s.paused else "running", s.actor, f"{s.at:%Y-%m-%d %H:%M}", s.reason or ""]
        for s in switches
    ]
    columns = ["scope", "state", "set by", "at (UTC)", "why"]
    return _table(None, columns, rows, figures=False) if rows else "No switch set: the autopilot runs."


def store_checked(c: StoreCheck) -> RenderableType:
    rows = ([f.part, f.subject, "problem" if f.problem else "ok", f.said] for f in c.findings)
    verdict = f"{_count(len(c.problems))} problems" if c.problems else "nothing to fix"
    return Group(
        f"Checked the store {c.store}: {verdict}",
        _table("Parts", ["part", "of", "", "said"], rows, figures=False),
    )


def compacted(c: Compaction) -> RenderableType:
    folded = c.folded
    lines: list[RenderableType] = [
        f"Folded {_count(folded.pending)} actions recorded through the API into the store "
        f"({_count(folded.added)} new)"
        + (f", interventions v{folded.version}" if folded.version is not None else ""),
        _table(
            "Compacted",
            ["table", "version", "files before", "files after", "files vacuumed"],
            (
                [
                    t.table,
                    f"{t.version_before} → {t.version_after}",
                    _count(t.files_before),
                    _count(t.files_after),
                    _count(t.files_vacuumed),
                ]
                for t in c.tables
            ),
        ),
    ]
    return Group(*lines)


def history(commits: list[Commit]) -> RenderableType:
    if not commits:
        return "No versions: nothing was written to this table yet"
    return _table(
        f"Versions of {commits[0].table}, newest first",
        ["version", "at (UTC)", "operation", "rows added", "written by"],
        (
            [
                str(c.version),
                f"{c.at:%Y-%m-%d %H:%M:%S}",
                c.operation,
                _count(c.metrics.get("num_added_rows", c.metrics.get("num_target_rows_inserted", 0))),
                c.retain or "",
            ]
            for c in commits
        ),
        figures=False,
    )


def migrated(m: Migration) -> RenderableType:
    return Group(
        f"Migrated the store {m.source} into {m.store}",
        _table(
            None,
            ["table", "rows read", "rows written", "version"],
            ([t.table, _count(t.rows_read), _count(t.rows_written), str(t.version)] for t in m.tables),
        ),
    )


def monitored(m: MonitorFiles) -> RenderableType:
    return Group(
        f"Monitor written to {m.html} and {m.json} (MLflow run {m.mlflow_run}, gauges v{m.gauges_version})",
        *(f"  {line}" for line in m.findings),
    )


def digested(d: DigestFiles) -> RenderableType:
    return Group(
        f"Digest of the week of {d.week} written to {d.html} and {d.json}",
        *(f"  {line}" for line in d.headlines),
    )


def retrained(r: Retrained) -> RenderableType:
    lines = [
        f"Features built (version {r.features_version}); trained {', '.join(t.model for t in r.trained)}"
    ]
    for p in r.promotions:
        lines.append(f"  {p.name}: {p.decision}, champion version {p.champion} ({p.reason})")
    if r.refused:
        lines.append(f"  the gate kept the champion of {', '.join(r.refused)}: exit status 1")
    return Group(*lines, monitored(r.monitor))
