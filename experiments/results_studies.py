"""The headline figures of the larger studies: uplift, the store, Spark, bring-your-own tables, the churn
model on unseen worlds, the soak, uplift over seeds, the closed loop and the drift monitor.

As in `experiments.results_sections`: every figure is read from the run's JSON or computed from figures in
it, and every bar is the JSON's own or a constant below naming where it was set.
"""

from __future__ import annotations

from collections.abc import Callable
from statistics import mean
from typing import Any

from experiments.results_sections import NO_PEER, NONE_SET, Lead, Row, ms, secs, show, table, times

Figures = Any

# -- uplift at scale --------------------------------------------------------------------------------------

#: the aims set for next-best actions on unseen worlds (`uplift_seeds_unseen`): a share of the oracle's
#: churn averted, and a multiple of "call the riskiest first"
UPLIFT_AIM_SHARE = 0.65
UPLIFT_AIM_OVER_RISKIEST = 3.0
#: commit ebe1397: uplift training for the 12 actions at 10,000 accounts
UPLIFT_TRAIN_AIM_S = 120.0


def uplift(f: Figures) -> Lead:
    p = f["policy_vs_truth"]["share_of_oracle"]
    share, riskiest, rules = p["uplift"], p["highest_risk"], p["rules"]
    trained = next(v for k, v in f["timings_s"].items() if k.startswith("train uplift"))
    single, batch = f["single_account"], f["batch_accounts_per_s"]
    rows = [
        Row(
            "share of the oracle's churn averted",
            f"{share:.3f} ({times(share / riskiest)} the riskiest)",
            f"riskiest first {riskiest:.3f}; rules {rules:.3f}",
            f"≥ {UPLIFT_AIM_SHARE:g} and ≥ {UPLIFT_AIM_OVER_RISKIEST:g}× the riskiest first",
            share >= UPLIFT_AIM_SHARE and share >= UPLIFT_AIM_OVER_RISKIEST * riskiest,
        ),
        Row(
            "train uplift, 12 actions",
            secs(trained),
            "—",
            f"≤ {UPLIFT_TRAIN_AIM_S:g} s",
            trained <= UPLIFT_TRAIN_AIM_S,
        ),
        Row(
            "rank every active account",
            f"{batch['uplift']:,} accounts/s",
            f"rules {batch['rules']:,}/s",
            NONE_SET,
            None,
        ),
        Row(
            "rank one account, p50",
            ms(single["uplift"]["p50_ms"]),
            f"rules {ms(single['rules']['p50_ms'])}",
            NONE_SET,
            None,
        ),
    ]
    says = (
        f"On {f['accounts']:,} accounts the uplift ranking averts {share:.0%} of the churn the oracle averts "
        f"on the same budget; calling the riskiest first averts {riskiest:.0%}."
    )
    return Lead(says, rows)


# -- the store --------------------------------------------------------------------------------------------


def store(f: Figures) -> Lead:
    writes, ingest = f["interventions"], f["ingest"]
    delta, peer, must = writes["delta"], writes["manifest"], writes["must_hold"]
    top, peer_top = delta["levels"][-1], peer["levels"][-1]
    small, big = ingest["sizes"][0], ingest["sizes"][-1]
    capped = " (stopped at its time allowed)" if peer["capped"] else ""

    def memory(who: str) -> str:
        growth = ingest["peak_rss_growth"][who]
        return f"{small[who]['peak_rss_mib']:,} → {big[who]['peak_rss_mib']:,} MiB ({times(growth)})"

    rows = [
        Row(
            f"write p99 at {top['level']:,} over at {delta['levels'][0]['level']:,} interventions",
            times(must["value"]),
            f"previous store {times(peer['p99_growth'])} by {peer_top['level']:,}{capped}",
            "< 1.5×",
            must["holds"],
        ),
        Row(
            f"`POST /v1/interventions` p99, {top['level']:,} recorded",
            ms(top["p99_ms"]),
            f"previous store {ms(peer_top['p99_ms'])} at {peer_top['level']:,}",
            NONE_SET,
            None,
        ),
        Row(
            f"ingest, {big['events']:,} events",
            f"{big['delta']['events_per_s']:,} events/s",
            f"previous store {big['manifest']['events_per_s']:,}/s",
            NONE_SET,
            None,
        ),
        Row(
            "peak memory, smallest to largest ingest",
            memory("delta"),
            f"previous store {memory('manifest')}",
            "flat",
            None,
        ),
    ]
    says = (
        f"Recording an intervention takes {ms(top['p99_ms'])} at p99 with {top['level']:,} recorded, "
        f"{times(must['value'])} its p99 at {delta['levels'][0]['level']:,}. The previous store's p99 "
        f"reached {ms(peer_top['p99_ms'])} at {peer_top['level']:,}."
    )
    return Lead(says, rows)


# -- Spark ------------------------------------------------------------------------------------------------


#: the Spark engines beside DuckDB, as the rows name them
SPARK_ENGINES = {"spark": "local[2]", "cluster": "cluster"}


def _or_failed(figures: dict[str, Any], pick: Callable[[dict[str, Any]], str]) -> str:
    """`pick` of an engine's figures, or `failed` where it failed."""
    return "failed" if "failed" in figures else pick(figures)


def _each(by_engine: dict[str, Any], pick: Callable[[dict[str, Any]], str]) -> str:
    """`pick` of each Spark engine's figures: `local[2] 1 s; cluster 2 s`."""
    return "; ".join(f"{name} {_or_failed(by_engine[e], pick)}" for e, name in SPARK_ENGINES.items())


def _share(held: dict[str, Any]) -> str:
    return f"{held['worst_share']:.1%}"


def _ratio(built: dict[str, Any]) -> str:
    return times(built["over_duckdb_seconds"]["with_setup"])


def _per_event(seconds: list[float | None]) -> str:
    """Seconds per new event across the sizes, in microseconds."""
    if all(s is None for s in seconds):
        return "failed"
    micros = (None if s is None else s * 1e6 for s in seconds)
    said = ("failed" if u is None else f"{u:.0f}" if u >= 10 else f"{u:.2g}" for u in micros)
    return " → ".join(said) + " µs"


def _spark_features(features: Figures) -> list[Row]:
    """The full build on each engine, the daily build's share of it, and its cost per new event."""
    sizes, must, curve = features["sizes"], features["daily_must_hold"], features["curve"]
    big, held = sizes[-1], must["engines"]
    same_rows = all(s[e].get("same_rows", False) for s in sizes for e in SPARK_ENGINES)
    per_event = {e: _per_event(seconds) for e, seconds in curve["seconds_per_new_event"].items()}
    millions = " → ".join(f"{n / 1e6:.0f}M" for n in curve["events"])
    return [
        Row(
            f"feature build, {big['events']:,} events",
            _each(big, lambda e: secs(e["total_s"])),
            f"DuckDB {secs(big['duckdb']['total_s'])}",
            "DuckDB's rows",
            same_rows,
        ),
        Row(
            f"daily build adding a month end, after {must['events']:,} events / full",
            _each(held, _share),
            f"DuckDB {_or_failed(held['duckdb'], _share)}",
            f"≤ {must['aim']:.0%} on each engine, same rows",
            must["holds"],
        ),
        Row(
            "other daily builds (no new cutoff) / full",
            _each(big["daily"], _other_days),
            f"DuckDB {_or_failed(big['daily']['duckdb'], _other_days)}",
            f"≤ {must['aim']:.0%}",
            all(_other_share(d) <= must["aim"] for d in big["daily"].values() if "failed" not in d),
        ),
        Row(
            f"daily build per new event, {millions} events",
            "; ".join(f"{name} {per_event[e]}" for e, name in SPARK_ENGINES.items()),
            f"DuckDB {per_event['duckdb']}",
            NONE_SET,
            None,
        ),
    ]


def _other_share(daily: Figures) -> float:
    """The largest share of the full build among the daily builds that computed no cutoff."""
    return max(d["share_of_full"] for d in daily["daily"] if not d["cutoffs_computed"])


def _other_days(daily: Figures) -> str:
    return f"{_other_share(daily):.1%}"


def _daily_says(must: Figures) -> str:
    """Whether the daily builds at the largest size hold to the must-hold, and where they break it."""
    said = f"After {must['events']:,} events a daily build "
    if must["holds"]:
        return said + f"costs at most {must['aim']:.0%} of its engine's full build and equals it."
    broken = ", ".join(
        SPARK_ENGINES.get(e, "DuckDB") for e, held in must["engines"].items() if not held["holds"]
    )
    return said + f"misses the {must['aim']:.0%} aim (or the full build's rows) on: {broken}."


def spark(f: Figures) -> Lead:
    sizes, score, fits = f["features"]["sizes"], f["scoring"], f["uplift"]
    big = sizes[-1]
    slower = all(s["spark"].get("total_s", 0) > s["duckdb"]["total_s"] for s in sizes)
    same_scores = score["max_churn_probability_difference"] == 0 and score["same_reasons"]
    rows = [
        *_spark_features(f["features"]),
        Row(
            f"score {score['rows']:,} rows",
            secs(score["spark"]["seconds"]),
            f"one process {secs(score['one_process']['seconds'])}",
            "the same scores and reasons",
            same_scores,
        ),
        Row(
            "uplift fits",
            secs(fits["spark"]["seconds"]),
            f"2 processes {secs(fits['processes']['seconds'])}; 1 {secs(fits['sequential']['seconds'])}",
            "the same estimates",
            fits["max_ate_difference"] == 0,
        ),
    ]
    local, cluster = (_or_failed(big[e], _ratio) for e in SPARK_ENGINES)
    says = (
        f"On {f['machine_cores']} cores Spark takes {local} DuckDB's time to build the features of "
        f"{big['events']:,} events on local[2] and {cluster} on a two-worker cluster; local[2] is "
        f"{'slower at every' if slower else 'faster at some'} size measured. "
        + _daily_says(f["features"]["daily_must_hold"])
    )
    return Lead(says, rows, [])


# -- bring your own tables --------------------------------------------------------------------------------

BYO_CONTENDERS = ("retain", "flaml", "lightgbm_defaults", "logistic")


def byo(f: Figures) -> Lead:
    tol, budget = f["tolerance"], f["budget_seconds"]
    rows = []
    for name, t in f["tables"].items():
        best = max((c for c in BYO_CONTENDERS if c != "retain"), key=lambda c: t["auc"][c])
        rows.append(
            Row(
                f"{name}: held-out AUC ({t['rows']:,} rows)",
                f"{t['auc']['retain']:.4f} in {secs(t['seconds']['retain'])}",
                f"best peer {best} {t['auc'][best]:.4f}",
                f"≥ best peer − {tol:g}, ≤ {budget:g} s",
                t["holds"],
            )
        )
    held = sum(t["holds"] for t in f["tables"].values())
    says = (
        f"Retain's AUC is within {tol:g} of the best peer's, inside the {budget:g} s budget, on {held} of "
        f"{len(f['tables'])} tables."
    )
    cells = [
        (name, *(f"{t['auc'][c]:.4f} ({secs(t['seconds'][c])})" for c in BYO_CONTENDERS))
        for name, t in f["tables"].items()
    ]
    details = [
        "Every contender's held-out AUC (wall time):",
        "",
        *table(("table", *BYO_CONTENDERS), cells),
        "",
    ]
    return Lead(says, rows, details)


# -- the churn model on unseen worlds ---------------------------------------------------------------------

#: the churn bars by a short name: near the oracle, above the logistic, lift at least the logistic's
CHURN_BARS = {
    "auc_within_oracle": "oracle",
    "auc_above_logistic": "logistic",
    "lift_at_least_logistic": "lift",
}


def churn(f: Figures) -> Lead:
    seeds, gap, margin = f["seeds"], f["oracle_gap"], f["logistic_margin"]

    def avg(who: str, key: str = "auc") -> float:
        return mean(s[who][key] for s in seeds)

    def held(name: str) -> str:
        return f"{sum(s['bars'][name] for s in seeds)} of {len(seeds)} seeds"

    every = {name: all(s["bars"][name] for s in seeds) for name in seeds[0]["bars"]}
    rows = [
        Row(
            "AUC on the oracle's rows, mean",
            f"{avg('model_on_oracle_rows'):.3f}",
            f"oracle {avg('oracle'):.3f}",
            f"≥ oracle − {gap:g} on every seed",
            every["auc_within_oracle"],
        ),
        *_churn_bound(seeds, avg("oracle")),
        *_churn_learners(seeds),
        Row(
            "test AUC, mean",
            f"{avg('model'):.3f}",
            f"logistic {avg('logistic'):.3f}",
            f"≥ logistic + {margin:g} on every seed",
            every["auc_above_logistic"],
        ),
        Row(
            "top-decile lift, mean",
            f"{avg('model', 'lift_top_decile'):.2f}",
            f"logistic {avg('logistic', 'lift_top_decile'):.2f}",
            "≥ logistic's on every seed",
            every["lift_at_least_logistic"],
        ),
    ]
    says = (
        f"Every bar holds on {sum(s['holds'] for s in seeds)} of {len(seeds)} unseen worlds. Held: AUC "
        f"within {gap:g} of the oracle on {held('auc_within_oracle')}, {margin:g} above the logistic on "
        f"{held('auc_above_logistic')}, lift at least the logistic's on {held('lift_at_least_logistic')}."
    )
    return Lead(says, rows, _churn_seeds(seeds))


def _churn_bound(seeds: list[dict[str, Any]], oracle: float) -> list[Row]:
    """The features' bound (a run from before it was measured has none): how near the oracle a model of
    these features could come, fitted to the true probability instead of 0/1 labels."""
    if not all("features_bound" in s for s in seeds):
        return []
    bound = mean(s["features_bound"]["auc"] for s in seeds)
    return [
        Row(
            "features' bound: AUC of a model fitted to the true probability, mean",
            f"{bound:.3f}",
            f"oracle {oracle:.3f}",
            "none set: what these features allow",
            None,
        )
    ]


def _churn_learners(seeds: list[dict[str, Any]]) -> list[Row]:
    """The time-to-event challenger beside the classifier (a run from before it was built has none), and
    how often the promotion gate made it the champion whose figures the section reports."""
    if not all("learners" in s for s in seeds):
        return []
    hazard = mean(s["learners"]["hazard"]["model"]["auc"] for s in seeds)
    classifier = mean(s["learners"]["classifier"]["model"]["auc"] for s in seeds)
    champions = sum(s["champion"] == "hazard" for s in seeds)
    return [
        Row(
            f"hazard learner's test AUC, mean (the gate's champion on {champions} of {len(seeds)} seeds)",
            f"{hazard:.3f}",
            f"classifier {classifier:.3f}",
            "the champion is whichever the promotion gate keeps",
            None,
        )
    ]


def _churn_seeds(seeds: list[dict[str, Any]]) -> list[str]:
    """Per seed: the model's AUC beside its peers', the lifts and which bars held."""
    cells = [
        (
            s["seed"],
            f"{s['model']['auc']:.3f}",
            f"{s['logistic']['auc']:.3f}",
            f"{s['model_on_oracle_rows']['auc']:.3f}",
            f"{s['features_bound']['auc']:.3f}" if "features_bound" in s else "—",
            f"{s['oracle']['auc']:.3f}",
            _learner_cell(s),
            f"{s['model']['lift_top_decile']:.2f} / {s['logistic']['lift_top_decile']:.2f}",
            "all"
            if s["holds"]
            else ", ".join(CHURN_BARS.get(n, n) for n, ok in s["bars"].items() if ok) or "none",
        )
        for s in seeds
    ]
    header = (
        "seed",
        "model AUC",
        "logistic",
        "model on oracle's rows",
        "features' bound",
        "oracle",
        "classifier / hazard AUC (champion)",
        "lift model / logistic",
        "bars held",
    )
    return [
        "Per seed, the champion's figures (bars held: AUC near the oracle's, above the logistic's, lift):",
        "",
        *table(header, cells),
        "",
    ]


def _learner_cell(seed: dict[str, Any]) -> str:
    if "learners" not in seed:
        return "—"
    learners = seed["learners"]
    return (
        f"{learners['classifier']['model']['auc']:.3f} / {learners['hazard']['model']['auc']:.3f} "
        f"({seed['champion']})"
    )


# -- soak -------------------------------------------------------------------------------------------------


def soak(f: Figures) -> Lead:
    d, ready = f["decisions"], f["readiness"]
    during = ready["during_faults"].values()
    probes, refused = sum(w["probes"] for w in during), sum(w["not_ready"] for w in during)
    outside = ready["outside"]
    rows = [
        Row("5xx answers to a client", f"{f['server_errors']:,}", NO_PEER, "0", f["server_errors"] == 0),
        Row("crashes", f"{f['crashes']:,}", NO_PEER, "0", f["crashes"] == 0),
        Row(
            "decisions served but not logged",
            f"{d['unaccounted']:,} of {d['served']:,}",
            NO_PEER,
            "0",
            d["unaccounted"] == 0 and d["missing_from_log"] == 0,
        ),
        Row(
            "`/readyz` 503 in faults, 200 outside",
            f"{refused}/{probes} in, {outside['probes'] - outside['not_200']}/{outside['probes']} outside",
            NO_PEER,
            "every probe",
            ready["held"],
        ),
    ]
    says = (
        f"Over {f['seconds'] / 60:g} minutes at {f['requests_per_s']:g} requests/s through "
        f"{len(f['faults'])} faults, `retain serve` answered a client with a 5xx {f['server_errors']:,} "
        f"times and logged {d['in_log']:,} of the {d['served']:,} decisions it served."
    )
    cells = [
        (
            x["name"],
            f"{x['end'] - x['start']:.0f}",
            f"{ready['during_faults'][x['name']]['not_ready']}/{ready['during_faults'][x['name']]['probes']}",
        )
        for x in f["faults"]
    ]
    details = [
        f"{f['workers']} workers, {f['restarts']} restarts, {f['transport_errors']:,} connections refused "
        "while restarting (not answers). Each fault:",
        "",
        *table(("fault", "seconds", "`/readyz` 503"), cells),
        "",
    ]
    return Lead(says, rows, details)


# -- uplift over several seeds ----------------------------------------------------------------------------


def seeds(f: Figures) -> Lead:
    m, se, by = f["share_of_oracle_mean"], f["share_of_oracle_se_of_mean"], f["share_of_oracle_by_seed"]
    over = f.get("uplift_over_highest_risk_by_seed") or [
        u / h for u, h in zip(by["uplift"], by["highest_risk"], strict=True)
    ]
    n, cover = len(f["seeds"]), f["coverage_overall"]
    peer = f"riskiest first {m['highest_risk']:.3f}; rules {m['rules']:.3f}"
    if "econml_drlearner" in m:
        peer = f"econml {m['econml_drlearner']:.3f}; " + peer
    rows = [
        Row(
            "mean share of the oracle's churn averted",
            f"{m['uplift']:.3f} (se {se['uplift']:.3f})",
            peer,
            f"≥ {UPLIFT_AIM_SHARE:g}",
            m["uplift"] >= UPLIFT_AIM_SHARE,
        ),
        Row(
            "uplift over the riskiest first, per seed",
            f"{min(over):.2f}× to {max(over):.2f}×",
            "—",
            f"≥ {UPLIFT_AIM_OVER_RISKIEST:g}× on every seed",
            min(over) >= UPLIFT_AIM_OVER_RISKIEST,
        ),
    ]
    if "econml_drlearner" in m:
        rows.append(
            Row(
                "uplift over econml's DRLearner, mean",
                f"{m['uplift']:.3f}",
                f"econml {m['econml_drlearner']:.3f}",
                "≥ econml's",
                m["uplift"] >= m["econml_drlearner"],
            )
        )
    rows.append(
        Row(
            "true effects inside their 95% intervals",
            f"churn {cover['churn']:.0%}, expansion {cover['expansion']:.0%}",
            "—",
            "about 95%",
            None,
        )
    )
    says = (
        f"Over {n} seeds the uplift ranking averts {m['uplift']:.0%} of the churn the oracle averts, on "
        f"average; calling the riskiest first averts {m['highest_risk']:.0%}, the rules {m['rules']:.0%}."
    )
    return Lead(says, rows)


def _count(n: int, thing: str) -> str:
    return f"{n:,} {thing}" + ("" if n == 1 else "s")


# -- the closed loop --------------------------------------------------------------------------------------

#: the closed loop's bar (`make bench-loop`, docs/methods/closed-loop.md)
LOOP_AIM_OVER = 2.5
LOOP_AIM_SHARE = 0.60
LOOP_AIM_COVERAGE = 0.90


def closed_loop(f: Figures) -> Lead:
    h = f["must_hold"]
    policies = {p["policy"]: p for p in f["policies"]}

    def averted(name: str) -> str:
        return f"{mean(policies[name]['true_churn_averted']):.1f}"

    rows = [
        Row(
            "churn averted, retain_explore over the rules",
            times(h["explore_over_rules"]),
            f"rules {averted('rules')}; retain_explore {averted('retain_explore')}",
            f"≥ {LOOP_AIM_OVER:g}×",
            h["explore_over_rules"] >= LOOP_AIM_OVER,
        ),
        Row(
            "churn averted, over the riskiest first",
            times(h["explore_over_highest_risk"]),
            f"riskiest first {averted('highest_risk')}",
            f"≥ {LOOP_AIM_OVER:g}×",
            h["explore_over_highest_risk"] >= LOOP_AIM_OVER,
        ),
        Row(
            "share of the oracle's churn averted",
            f"{h['explore_share_of_oracle']:.3f}",
            f"oracle {averted('oracle')}",
            f"≥ {LOOP_AIM_SHARE:g}",
            h["explore_share_of_oracle"] >= LOOP_AIM_SHARE,
        ),
        Row(
            "share grows, first quarter to last", show(h["explore_learns"]), "—", "true", h["explore_learns"]
        ),
        Row(
            "holdout intervals holding the truth",
            f"{h['coverage']:.0%}",
            "—",
            f"≥ {LOOP_AIM_COVERAGE:.0%}",
            h["coverage"] >= LOOP_AIM_COVERAGE,
        ),
    ]
    says = (
        f"Retain's plan with exploration truly averted {h['explore_share_of_oracle']:.0%} of the churn the "
        f"oracle averted, and {times(h['explore_over_rules'])} what the rules averted. This run has "
        f"{f['accounts']:,} accounts, {_count(f['quarters'], 'quarter')} and "
        f"{_count(len(f['seeds']), 'seed')}; the bar is set for 2,000 accounts, 4 quarters and 3 unseen "
        "seeds."
    )
    return Lead(says, rows, _loop_policies(policies))


def _loop_policies(policies: dict[str, dict[str, Any]]) -> list[str]:
    """Each policy's truth figures (means over the seeds) and how often its holdout held the truth."""
    cells = [
        (
            name,
            f"{mean(p['true_churn_averted']):.1f}",
            f"{mean(p['true_arr_kept']):,.0f}",
            ", ".join(f"{s:.3f}" for s in p["share_of_oracle_by_quarter"]),
            f"{p['covered']}/{p['judged']}",
        )
        for name, p in policies.items()
    ]
    header = (
        "policy",
        "churn averted",
        "ARR kept ($)",
        "share of the oracle by quarter",
        "holdout holds the truth",
    )
    return ["Each policy, truth figures as means over the seeds:", "", *table(header, cells), ""]


# -- the drift monitor ------------------------------------------------------------------------------------


def monitor_drift(f: Figures) -> Lead:
    ours, usual = f["monitor"], f["usual_reading"]
    a, b = ours["summary"], usual["summary"]
    peer = f"PSI ≥ {usual['threshold']:g}"

    def ci(pair: list[float]) -> str:
        return f" (95% CI {pair[0]:.2f} to {pair[1]:.2f})"

    rows = [
        Row(
            "undrifted worlds with a false alarm",
            f"{a['false_alarm_worlds']} of {a['worlds']}" + ci(a["false_alarm_worlds_ci95"]),
            f"{peer}: {b['false_alarm_worlds']} of {b['worlds']}",
            "no world",
            a["false_alarm_worlds"] == 0,
        ),
        Row(
            "release alarmed within one cutoff",
            f"{a['detected_within_one']} of {a['worlds']}",
            f"{peer}: {b['detected_within_one']} of {b['worlds']}",
            "every world",
            a["detected_within_one"] == a["worlds"],
        ),
        Row(
            "drifted worlds alarming an unmoved feature",
            f"{a['drifted_false_alarm_worlds']} of {a['worlds']}",
            f"{peer}: {b['drifted_false_alarm_worlds']} of {b['worlds']}",
            "no world",
            a["drifted_false_alarm_worlds"] == 0,
        ),
    ]
    says = (
        f"At PSI ≥ {ours['threshold']:g} the monitor raised no false alarm on "
        f"{a['worlds'] - a['false_alarm_worlds']} of {a['worlds']} undrifted worlds and named the release "
        "within one cutoff on "
        f"{a['detected_within_one']} of {a['worlds']} (median delay {a['median_delay']:g} cutoff)."
    )
    return Lead(says, rows)


BUILDERS: dict[str, Callable[[Figures], Lead]] = {
    "uplift": uplift,
    "store": store,
    "spark": spark,
    "byo": byo,
    "churn": churn,
    "soak": soak,
    "uplift_seeds": seeds,
    "uplift_seeds_unseen": seeds,
    "uplift_seeds_no_holdout": seeds,
    "closed_loop": closed_loop,
    "monitor_drift": monitor_drift,
}
