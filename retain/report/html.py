"""The causal report as one HTML page for leadership, beside its JSON.

The page is self-contained: inline CSS, figures as base64 PNG, no scripts and no links, so it can be
mailed, attached to a ticket or archived and still open as it was written.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from retain.report.causal import Analysis
from retain.report.wording import amount, level

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
p, li { line-height: 1.45; }
h1 { margin-bottom: 0.1em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.92em; }
th, td { border: 1px solid #ddd; padding: 0.3em 0.6em; text-align: left; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.good { color: #17663a; font-weight: 600; } .bad { color: #a31515; font-weight: 600; } .muted { color: #777; }
img { max-width: 100%; } details { margin: 0.4em 0; } summary { cursor: pointer; font-weight: 600; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Cells are HTML already (text escaped with `_e`); a cell starting with a digit or sign is a number."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{c}</td>' if c[:1].isdigit() or c[:1] in "+−" else f"<td>{c}</td>" for c in row
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _image(figure: Figure, alt: str) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _binary(report: dict[str, Any], outcome: str) -> bool:
    return bool(report["outcomes"][outcome]["type"] == "binary")


def _scale(report: dict[str, Any], outcome: str) -> tuple[float, str]:
    return (100.0, "percentage points") if _binary(report, outcome) else (1.0, outcome)


def _units(report: dict[str, Any]) -> str:
    return "accounts" if report["source"]["mode"] == "store" else "rows"


def _number(value: float | None) -> float:
    return math.nan if value is None else value


def forest(report: dict[str, Any]) -> str:
    """Per outcome, each treatment's DR effect with its interval, the naive difference and the holdout."""
    outcomes = list(dict.fromkeys(e["outcome"] for e in report["effects"]))
    treatments = list(dict.fromkeys(e["treatment"] for e in report["effects"]))
    holdout = {(h["treatment"], h["outcome"]): h for h in report["holdout"]}
    figure = Figure(figsize=(5.2 * len(outcomes), 1.6 + 0.38 * len(treatments)), layout="constrained")
    axes = figure.subplots(1, len(outcomes), sharey=True, squeeze=False)[0]
    y = np.arange(len(treatments))[::-1]
    for ax, outcome in zip(axes, outcomes, strict=True):
        scale, unit = _scale(report, outcome)
        rows = {e["treatment"]: e for e in report["effects"] if e["outcome"] == outcome}
        ate = np.array([_number(rows[t]["ate"]) for t in treatments]) * scale
        low = np.array([_number(rows[t]["ci_low"]) for t in treatments]) * scale
        high = np.array([_number(rows[t]["ci_high"]) for t in treatments]) * scale
        naive = np.array([_number(rows[t]["naive_difference"]) for t in treatments]) * scale
        ax.axvline(0, color="grey", linewidth=1)
        ax.errorbar(
            ate, y, xerr=[ate - low, high - ate], fmt="o", color="#1f5fa8", capsize=3, label="DR, 95% CI"
        )
        ax.plot(naive, y, "x", color="#c0392b", label="naive difference")
        held = [(i, holdout[(t, outcome)]) for i, t in enumerate(treatments) if (t, outcome) in holdout]
        if held:
            ax.plot(
                [_number(h["ate"]) * scale for _, h in held],
                [y[i] - 0.25 for i, _ in held],
                "o",
                mfc="none",
                color="#555",
                label="randomised holdout",
            )
        ax.set(title=f"effect on {outcome}", xlabel=unit, yticks=y, yticklabels=treatments)
        ax.grid(axis="x", alpha=0.3)
    figure.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncol=3, fontsize=8)
    return _image(figure, "average effects with 95% intervals")


def propensity_plot(analysis: Analysis) -> str:
    """Per treatment, where treated and untreated rows sit in estimated propensity (log scale)."""
    overlap = {o["treatment"]: o for o in analysis.report["overlap"]}
    names = list(analysis.propensity)
    columns = min(4, len(names))
    rows = math.ceil(len(names) / columns)
    figure = Figure(figsize=(3.2 * columns, 2.4 * rows))
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax, name in zip(axes, names, strict=False):
        treated, control = analysis.propensity[name]
        values = np.log10(np.concatenate([treated, control]))
        bins = np.linspace(values.min(), values.max() + 1e-9, 30)
        ax.hist(np.log10(control), bins=bins, density=True, alpha=0.5, color="#777", label="untreated")
        ax.hist(np.log10(treated), bins=bins, density=True, alpha=0.6, color="#1f5fa8", label="treated")
        poor = overlap[name]["poor"]
        ax.set_title(
            f"{name}\nESS {overlap[name]['effective_treated']:.0f}{' · poor overlap' if poor else ''}",
            fontsize=9,
            color="#a31515" if poor else "black",
        )
        ax.set_xlabel("log10 propensity", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_yticks([])
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    axes[0].legend(fontsize=7)
    figure.tight_layout()
    return _image(figure, "propensity distributions, treated vs untreated")


def _verdict(effect: dict[str, Any], goal: str | None) -> str:
    low, high = effect["ci_low"], effect["ci_high"]
    if low is None or high is None:
        return '<span class="muted">no estimate</span>'
    if low <= 0 <= high:
        return '<span class="muted">no clear effect</span>'
    direction = "lowers" if high < 0 else "raises"
    if goal is None:
        return direction
    good = (direction == "lowers") == (goal == "lower")
    return f'<span class="{"good" if good else "bad"}">{direction} {_e(effect["outcome"])}</span>'


def _ci(row: dict[str, Any], binary: bool) -> str:
    return f"{amount(row['ci_low'], binary)} to {amount(row['ci_high'], binary)}"


def _summary(report: dict[str, Any]) -> str:
    clear = [e for e in report["effects"] if e["ci_low"] is not None and not e["ci_low"] <= 0 <= e["ci_high"]]
    items = [
        f"{len(clear)} of {len(report['effects'])} effects have a 95% interval that excludes zero"
        + (": " + ", ".join(f"{_e(e['treatment'])} on {_e(e['outcome'])}" for e in clear) if clear else ".")
    ]
    poor = [o["treatment"] for o in report["overlap"] if o["poor"]]
    items.append(
        f"Poor overlap: {', '.join(map(_e, poor))}." if poor else "Overlap is adequate for every arm."
    )
    failed = [r for r in report["refutations"] if not r["passed"]]
    items.append(
        f"{len(report['refutations']) - len(failed)} of {len(report['refutations'])} refutation checks passed"
        + (
            ": failed " + ", ".join(f"{_e(r['treatment'])} {_e(r['check'])}" for r in failed)
            if failed
            else "."
        )
    )
    return "<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>"


def _source(report: dict[str, Any]) -> str:
    s = report["source"]
    if s["mode"] == "store":
        return (
            f"Store <code>{_e(s['store'])}</code>: {s['rows']:,} account-weeks of {s['accounts']:,} "
            "accounts, "
            f"weekly cutoffs {_e(s['cutoffs'][0])} to {_e(s['cutoffs'][1])}; outcomes at {s['horizon_days']} "
            "days. Each action is compared with not taking it that week."
        )
    return (
        f"Table <code>{_e(s['table'])}</code>: {s['rows']:,} rows; treatment column "
        f"<code>{_e(s['treatment_column'])}</code> against {_e(', '.join(s['control']))}; outcome "
        f"<code>{_e(s['outcome_column'])}</code> ({_e(s['outcome_type'])}); adjusted for "
        f"{_e(', '.join(s['covariates']))}."
    )


def _effects(report: dict[str, Any]) -> str:
    rows = []
    poor = {o["treatment"] for o in report["overlap"] if o["poor"]}
    for e in report["effects"]:
        b = _binary(report, e["outcome"])
        rows.append(
            [
                _e(e["treatment"])
                + (' <span class="bad">(poor overlap)</span>' if e["treatment"] in poor else ""),
                _e(e["outcome"]),
                amount(e["ate"], b),
                _ci(e, b),
                amount(e["naive_difference"], b),
                f"{e['n_treated']:,}",
                f"{e['n_control']:,}",
                _verdict(e, report["outcomes"][e["outcome"]]["goal"]),
            ]
        )
    headers = ["treatment", "outcome", "effect (DR)", "95% CI", "naive difference", "treated", "control", ""]
    return _table(headers, rows)


def _holdout(report: dict[str, Any]) -> str:
    if not report["holdout"]:
        return "<p>No experiment arm in this data: there is no randomised comparison.</p>"
    rows = [
        [
            _e(h["treatment"]),
            _e(h["outcome"]),
            amount(h["ate"], True),
            _ci(h, True),
            f"{h['n_treated']:,}",
            amount(h["dr_ate"], True),
            f"{amount(h['dr_ci_low'], True)} to {amount(h['dr_ci_high'], True)}",
            "yes" if h["intervals_overlap"] else '<span class="bad">no</span>',
        ]
        for h in report["holdout"]
    ]
    return (
        "<p>The experiment arm drew actions at random with a known weekly probability. Its rows against the "
        "untreated rows of the same weeks, weighted by that probability, estimate each effect without any "
        "model; with few randomised rows the intervals are wide. Where the two intervals do not overlap, "
        "the doubly robust estimate deserves a second look.</p>"
        + _table(
            [
                "action",
                "outcome",
                "holdout effect",
                "95% CI",
                "randomised rows",
                "DR effect",
                "DR 95% CI",
                "agree",
            ],
            rows,
        )
    )


def _responders(report: dict[str, Any]) -> str:
    parts = [
        "<p>A shallow tree splits the rows where the estimated effect differs most, over a few readable "
        f"columns. It is grown on half of the {_units(report)} and each group's effect is measured on the "
        "other half, so the best-looking group is not flattered by the chance that made the split.</p>"
    ]
    for r in report["responders"]:
        b = _binary(report, r["outcome"])
        rows = [
            [
                _e(leaf["rule"]),
                f"{leaf['rows']:,}",
                f"{leaf['n_treated']:,}",
                *(
                    (amount(leaf["ate"], b), _ci(leaf, b))
                    if leaf["ate"] is not None
                    else ('<span class="muted">too few treated rows</span>', "")
                ),
            ]
            for leaf in r["leaves"]
        ]
        parts.append(
            f"<details><summary>{_e(r['treatment'])} on {_e(r['outcome'])}: {_e(r['summary'])}</summary>"
            + _table(["who", "rows", "treated", "effect", "95% CI"], rows)
            + "</details>"
        )
    return "".join(parts)


def _segments(report: dict[str, Any]) -> str:
    if not report["segments"] and not report["segments_skipped"]:
        return "<p>No segment columns in this data.</p>"
    parts = []
    for treatment in dict.fromkeys(e["treatment"] for e in report["effects"]):
        found = [s for s in report["segments"] if s["treatment"] == treatment]
        skipped = [s for s in report["segments_skipped"] if s["treatment"] == treatment]
        rows = [
            [
                _e(s["outcome"]),
                _e(s["by"]),
                _e(s["level"]),
                amount(s["ate"], _binary(report, s["outcome"])),
                _ci(s, _binary(report, s["outcome"])),
                f"{s['n_treated']:,}",
            ]
            for s in found
        ]
        note = (
            f"<p class='muted'>Skipped (fewer than {report['method']['min_subgroup_treated']} treated rows): "
            + ", ".join(
                f"{_e(s['by'])} {_e(s['level'])} ({s['n_treated']})"
                for s in skipped
                if s["outcome"] == skipped[0]["outcome"]
            )
            + "</p>"
            if skipped
            else ""
        )
        parts.append(
            f"<details><summary>{_e(treatment)}</summary>"
            + (_table(["outcome", "by", "segment", "effect", "95% CI", "treated"], rows) if rows else "")
            + note
            + "</details>"
        )
    return "".join(parts)


def _overlap(analysis: Analysis) -> str:
    report = analysis.report
    threshold = report["method"]["min_effective_treated"]
    rows = [
        [
            _e(o["treatment"]),
            f"{o['n_treated']:,}",
            f"{o['n_randomised']:,}",
            f"{o['effective_treated']:.0f}",
            f"{o['clipped_share']:.1%}",
            _quantile_span(o["propensity_treated"]),
            _quantile_span(o["propensity_control"]),
            "n/a" if o["control_treated_later"] is None else f"{o['control_treated_later']:.0%}",
            '<span class="bad">poor overlap</span>' if o["poor"] else "ok",
        ]
        for o in report["overlap"]
    ]
    return (
        f"<p>Effective sample size (ESS) is how many equally weighted treated rows their inverse-propensity "
        f"weights are worth. Below {threshold:g} a handful of rows carries the estimate: flagged "
        "<b>poor overlap</b> (the threshold below which serving does not rank an action by its uplift). "
        f"Propensities are clipped into [{report['method']['propensity_clip']:g}, "
        f"{1 - report['method']['propensity_clip']:g}]. <i>Untreated, got it later</i>: of the untreated "
        "rows, weighted to resemble the treated ones, the share that got the action later within the horizon "
        "anyway (from the interventions log); the higher it is, the more the estimate compares acting now "
        "with acting a little later rather than never.</p>"
        + propensity_plot(analysis)
        + _table(
            [
                "treatment",
                "treated",
                "randomised",
                "ESS",
                "clipped",
                "propensity, treated (p10-p90)",
                "untreated (p10-p90)",
                "untreated, got it later",
                "",
            ],
            rows,
        )
    )


def _quantile_span(q: dict[str, float | None]) -> str:
    if q["p10"] is None or q["p90"] is None:
        return "n/a"
    return f"{q['p10']:.3g} to {q['p90']:.3g}"


def _refutations(report: dict[str, Any]) -> str:
    refute = report["method"]["refutations"]
    rows = [
        [
            _e(r["treatment"]),
            _e(r["check"].replace("_", " ")),
            '<span class="good">passed</span>' if r["passed"] else '<span class="bad">failed</span>',
            _e(r["verdict"]),
        ]
        for r in report["refutations"]
    ]
    return (
        "<p>Three checks try to break each estimate: a placebo (the treatment shuffled among the rows, whose "
        f"effect must be indistinguishable from zero at {level(refute['placebo_level'])}, so that a report "
        f"without bias fails any of its placebos only {refute['placebo_false_alarm']:.0%} of the time), a "
        "random common cause (a noise covariate added, which "
        "must barely move the estimate) and a data subset (a random "
        f"{refute['subset_share']:.0%} of the {_units(report)}"
        ", whose estimate must stay inside the original interval). To bound the cost they run on "
        f"{_e(refute['outcome'])} only, the placebo and subset with {refute['folds']} folds.</p>"
        + _table(["treatment", "check", "result", "verdict"], rows)
    )


def render(analysis: Analysis) -> str:
    report = analysis.report
    m = report["method"]
    sections = [
        ("Summary", _summary(report)),
        (
            "Average effects",
            "<p>The doubly robust (DR) effect adjusts for who was treated; the naive difference does not. "
            "Effects on 0/1 outcomes are in percentage points: −2.0 pp on churn means 2 fewer churned "
            "accounts in 100 treated.</p>" + forest(report) + _effects(report),
        ),
        ("Against the randomised holdout", _holdout(report)),
        ("Who responds best", _responders(report)),
        ("Effects by segment", _segments(report)),
        ("Overlap and propensity", _overlap(analysis)),
        ("Refutations", _refutations(report)),
        ("Caveats", "<ul>" + "".join(f"<li>{_e(c)}</li>" for c in report["caveats"]) + "</ul>"),
        (
            "Method",
            f"<p>{_e(m['estimator'])}; {m['folds']} folds; intervals {_e(m['interval'])}. Report version "
            f"{report['report_version']}; every number here is also in report.json.</p>",
        ),
    ]
    body = "".join(f"<h2>{_e(title)}</h2>{content}" for title, content in sections)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Causal intervention report</title><style>{STYLE}</style></head><body>"
        f"<h1>Causal intervention report</h1><p class='muted'>{_source(report)}</p>{body}</body></html>"
    )


def write_report(analysis: Analysis, out: Path) -> dict[str, Any]:
    """`out/report.html` and `out/report.json`; returns what was written."""
    out.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out / "report.json", out / "report.html"
    json_path.write_text(json.dumps(analysis.report, indent=2, allow_nan=False) + "\n")
    html_path.write_text(render(analysis), encoding="utf-8")
    return {"html": str(html_path), "json": str(json_path), "effects": len(analysis.report["effects"])}
