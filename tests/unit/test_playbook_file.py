"""A deployment's own playbook: read from YAML, refused at the line to fix, and run as the built-in one is
(eligibility, plays, contact limits, alert rules), with conditions that keep SQL's logic of unknowns."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from core.catalogue import BUILT_IN_PLAYBOOK, CATALOGUE
from core.contract import INTERVENTION_SCHEMA
from core.errors import RetainError
from core.settings import Settings
from features.alerts import rule_alerts
from features.conditions import ConditionError, compile_condition
from features.playbook import eligibility, rules_ranking
from features.playbook_file import BUILT_IN, COLUMNS, load_playbook, playbook_path, store_playbook
from ingest.readers import Frame
from ingest.validate import check_interventions
from retain.cli import app, main
from serving.webhooks.checks import WebhookInputError, parse_events
from store.delta import Store
from tests.support.playbooks import TEXT, WORKSHOP, own, with_workshop
from tests.support.rows import QUIET
from training.causal.design import treatments, with_takes

AS_OF = datetime(2025, 6, 2, tzinfo=UTC)


def line_of(text: str, fragment: str) -> int:
    return text[: text.index(fragment)].count("\n") + 1


def test_the_built_in_playbook_is_the_file_and_holds_the_catalogue() -> None:
    assert BUILT_IN.source == "built-in" and BUILT_IN.actions == CATALOGUE
    assert load_playbook(BUILT_IN_PLAYBOOK).digest == BUILT_IN.digest
    assert [r.type for r in BUILT_IN.alerts] == [
        "usage_drop",
        "error_spike",
        "onboarding_stalled",
        "unpaid_invoices",
        "sponsor_disengaged",
    ]


def test_a_new_action_is_eligible_ranked_by_its_play_and_alerted(tmp_path: Path) -> None:
    playbook = load_playbook(own(tmp_path, with_workshop()))
    assert playbook.names[0] == "success_plan_workshop" and len(playbook.names) == len(CATALOGUE) + 1
    row = {**QUIET, "health_band": "at_risk", "core_features_unused_7d": 3}
    verdicts = eligibility(row, {}, AS_OF, playbook)
    ranked = rules_ranking("at_risk", verdicts, playbook)
    assert [r.action for r in ranked][:2] == ["success_plan_workshop", "health_check_call"]
    assert ranked[0].eligibility == ("3 core features unused this week",)
    # a play that leaves the new action out reaches for it after the ones it lists
    assert playbook.plays["healthy"].priority[-1] == "success_plan_workshop"
    # the built-in playbook knows nothing of it
    assert "success_plan_workshop" not in {v.action for v in eligibility(row, {}, AS_OF)}

    latest = pd.DataFrame([{**row, "account_id": "a1", "cutoff": AS_OF}])
    (alert,) = [
        a for a in rule_alerts(latest, latest.iloc[0:0], {}, playbook) if a.type == "adoption_stalled"
    ]
    assert alert.actions[0] == "success_plan_workshop" and alert.evidence[0].value == 3


def test_interventions_of_a_new_action_are_accepted_under_its_playbook_and_refused_otherwise(
    tmp_path: Path,
) -> None:
    playbook = load_playbook(own(tmp_path, with_workshop()))
    row = {
        "intervention_id": "i1",
        "account_id": "a1",
        "ts": AS_OF - timedelta(days=1),
        "action": "success_plan_workshop",
        "owner": "csm-1",
        "channel": "meeting",
        "assignment": "targeted",
        "propensity": None,
    }
    frame = Frame("interventions", "test", pa.Table.from_pylist([row], INTERVENTION_SCHEMA))
    known = pa.array(["a1"])
    assert check_interventions(frame, known, actions=playbook.names).valid.num_rows == 1
    refused = check_interventions(frame, known).rejected
    assert refused.num_rows == 1 and "success_plan_workshop" in refused.column("detail")[0].as_py()


def test_uplift_learns_a_new_action_once_the_team_has_taken_it(tmp_path: Path) -> None:
    playbook = load_playbook(own(tmp_path, with_workshop()))
    monday = pd.Timestamp("2025-03-03", tz="UTC")
    keys = pd.DataFrame({"account_id": ["a", "b"], "cutoff": [monday, monday]})
    log = pd.DataFrame(
        {
            "account_id": ["a"],
            "ts": [monday + pd.Timedelta(hours=10)],
            "action": ["save_offer"],
            "assignment": ["targeted"],
            "propensity": [None],
        }
    )
    before = with_takes(playbook.actions, treatments(keys, log, playbook.names)[0])
    assert list(before) == ["save_offer"], "never taken: ranked by the rules, not learnt"
    log.loc[1] = ["b", monday + pd.Timedelta(hours=11), "success_plan_workshop", "targeted", None]
    after = with_takes(playbook.actions, treatments(keys, log, playbook.names)[0])
    assert list(after) == ["success_plan_workshop", "save_offer"]
    assert after["success_plan_workshop"].cost_hours == 1.5


def test_webhooks_take_the_playbook_s_own_alert_types(tmp_path: Path) -> None:
    types = load_playbook(own(tmp_path, with_workshop())).alert_types
    assert parse_events(["adoption_stalled", "risk_band_changed"], types) == (
        "adoption_stalled",
        "risk_band_changed",
    )
    with pytest.raises(WebhookInputError, match="unknown event type 'adoption_stalled'"):
        parse_events(["adoption_stalled"])


def test_the_contact_limit_holds_back_every_action_on_its_channels(tmp_path: Path) -> None:
    limited = TEXT.replace(
        "# contact_limit:\n#   days: 7\n#   channels: [call, meeting, email]",
        "contact_limit:\n  days: 7\n  channels: [call, meeting, email]",
    )
    playbook = load_playbook(own(tmp_path, limited))
    row = {**QUIET, "health_band": "at_risk", "invoices_overdue": 1, "core_features_unused_7d": 1.0}
    free = {v.action for v in eligibility(row, {}, AS_OF, playbook) if v.eligible}
    assert {"health_check_call", "billing_outreach", "in_app_nudge"} <= free
    called = {"health_check_call": AS_OF - timedelta(days=3)}
    verdicts = {v.action: v for v in eligibility(row, called, AS_OF, playbook)}
    assert not verdicts["billing_outreach"].eligible
    assert verdicts["billing_outreach"].reasons[0].startswith("Contacted 3 days ago (health_check_call)")
    assert verdicts["in_app_nudge"].eligible, "in-app is not a channel the limit covers"
    later = {v.action for v in eligibility(row, called, AS_OF + timedelta(days=4), playbook) if v.eligible}
    assert "billing_outreach" in later
    assert verdicts["health_check_call"].reasons[0].startswith("Taken 3 days ago"), "its own cool-down first"


@pytest.mark.parametrize(
    ("change", "fragment", "message"),
    [
        (
            ("cost_usd: 2000", "cost_usd: lots"),
            "cost_usd: lots",
            "actions.save_offer.cost_usd: Input should be",
        ),
        (("channel: in_app", "channel: fax"), "channel: fax", "actions.in_app_nudge.channel"),
        (
            ("- when: integrations_failing > 0", "- when: integrations_broken > 0"),
            "integrations_broken",
            "no feature named integrations_broken",
        ),
        (
            ("- when: invoices_overdue > 0", "- when: invoices_overdue + invoices_failed > 0"),
            "invoices_overdue + invoices_failed > 0\n      - when: invoices_failed",
            "a test reads one feature",
        ),
        (
            ("- when: health_band = 'critical'", "- when: health_band = 'critcal'"),
            "critcal",
            "health_band is never 'critcal'",
        ),
        (
            (
                "- when: tier <> 'trial'\n        if_false: \"Trial account: no concessions\"",
                "- when: tier <>",
            ),
            "tier <>\n",
            "not a SQL condition",
        ),
        (("order: [upgrade_offer,", "order: [upsell,"), "upsell", "no action 'upsell' in `actions`"),
        (("  - type: error_spike", "  - type: risk_band_changed"), "risk_band_changed", "is taken"),
        (("evidence: [errors_7d,", "evidence: [mood,"), "mood", "no feature named mood"),
        (
            ("actions: [billing_outreach]", "actions: [send_flowers]"),
            "send_flowers",
            "no action 'send_flowers'",
        ),
        (
            ("  critical:\n    name: intervention required", "  panic:\n    name: intervention required"),
            "panic",
            "no play for critical",
        ),
        (("version: 1", "version: 1\nversion: 2"), "version: 2", "'version' is given twice"),
        (
            ("  reference_ask:\n    description", "  holdout:\n    description"),
            "holdout:\n    description",
            "marks the plan's held-out rows",
        ),
        (("  reference_ask:\n    any:", "  reference_ask:\n    any: [\n"), "any: [", "not valid YAML"),
    ],
)
def test_a_playbook_that_does_not_read_is_refused_at_its_line(
    tmp_path: Path, change: tuple[str, str], fragment: str, message: str
) -> None:
    old, new = change
    assert old in TEXT
    text = TEXT.replace(old, new, 1)
    path = own(tmp_path, text)
    with pytest.raises(RetainError, match=message) as refused:
        load_playbook(path)
    said = str(refused.value)
    if "no play for" not in message and "not valid YAML" not in message:
        assert said.startswith(f"{path}:{line_of(text, fragment)}:"), said
    else:
        assert said.startswith(f"{path}:"), said


def test_an_action_without_a_rule_is_refused_naming_it(tmp_path: Path) -> None:
    text = TEXT.replace("actions:\n", "actions:\n" + WORKSHOP, 1)
    with pytest.raises(RetainError, match="success_plan_workshop has no rule under `eligibility`") as refused:
        load_playbook(own(tmp_path, text))
    assert f":{line_of(text, 'success_plan_workshop')}:" in str(refused.value)


def test_the_store_runs_the_setting_then_its_own_file_then_the_built_in(tmp_path: Path) -> None:
    store = Store.at(tmp_path / "store", tmp_path)
    assert (
        playbook_path(store, Settings()) == BUILT_IN_PLAYBOOK
        and store_playbook(store, Settings()) is BUILT_IN
    )
    store.root.mkdir()
    (store.root / "playbook.yaml").write_text(with_workshop())
    assert "success_plan_workshop" in store_playbook(store, Settings()).actions
    elsewhere = own(tmp_path, TEXT)
    assert store_playbook(store, Settings(playbook=elsewhere)).digest == BUILT_IN.digest


def test_playbook_check_prints_the_line_and_exits_2(tmp_path: Path) -> None:
    bad = own(
        tmp_path,
        TEXT.replace("cooldown_days: 180\n    needs_approval", "cooldown_days: -1\n    needs_approval"),
    )
    refused = CliRunner().invoke(app, ["playbook", "check", str(bad)])
    assert refused.exit_code != 0
    good = CliRunner().invoke(app, ["playbook", "check", str(own(tmp_path, with_workshop()))])
    assert good.exit_code == 0 and "13 actions" in good.output and "adoption_stalled" in good.output
    shown = CliRunner().invoke(app, ["playbook", "show"])
    assert shown.output == TEXT


def test_numpy_values_read_as_python_ones() -> None:
    either = compile_condition("invoices_overdue > 0 OR invoices_failed > 0", COLUMNS)
    assert either.verdict({"invoices_overdue": np.int64(2), "invoices_failed": np.int64(0)}) is True
    assert either.holds({"invoices_overdue": np.float32("nan"), "invoices_failed": np.float64(1.0)})
    assert compile_condition("nps_last IS NULL", COLUMNS).holds({"nps_last": np.float32("nan")})


@pytest.mark.parametrize(
    ("condition", "row", "verdict"),
    [
        ("days_to_renewal > 0 AND days_to_renewal <= 120", {"days_to_renewal": 120}, True),
        ("days_to_renewal > 0 AND days_to_renewal <= 120", {"days_to_renewal": None}, None),
        (
            "invoices_overdue > 0 OR invoices_failed > 0",
            {"invoices_overdue": None, "invoices_failed": 2},
            True,
        ),
        (
            "invoices_overdue > 0 OR invoices_failed > 0",
            {"invoices_overdue": None, "invoices_failed": 0},
            None,
        ),
        (
            "invoices_overdue > 0 AND invoices_failed > 0",
            {"invoices_overdue": None, "invoices_failed": 0},
            False,
        ),
        ("NOT (tier IN ('trial', 'small_business'))", {"tier": "enterprise"}, True),
        ("tier NOT IN ('trial')", {"tier": None}, None),
        ("nps_last IS NULL", {"nps_last": float("nan")}, True),
        ("seat_utilisation BETWEEN 0.2 AND 0.3", {"seat_utilisation": 0.25}, True),
        ("invoices_overdue + invoices_failed > 2", {"invoices_overdue": 1, "invoices_failed": 2}, True),
        ("sessions_7d / tickets_created_30d < 1", {"sessions_7d": 3, "tickets_created_30d": 0}, None),
    ],
)
def test_conditions_keep_sql_s_logic_of_unknowns(
    condition: str, row: dict[str, object], verdict: bool | None
) -> None:
    assert compile_condition(condition, COLUMNS).verdict(row) is verdict


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ("sessions_7d", "not a condition"),
        ("tier > 3", "compares a text with a number"),
        ("error_spike = TRUE", "flags are numbers"),
        ("nps_last = NULL", "IS NULL"),
        ("coalesce(nps_last, 0) > 8", "not supported"),
        ("accounts.tier = 'trial'", "no feature named accounts.tier"),
    ],
)
def test_a_condition_that_cannot_mean_anything_is_refused(condition: str, message: str) -> None:
    with pytest.raises(ConditionError, match=message):
        compile_condition(condition, COLUMNS)


#: seven lines of nested aliases: nine to the seventh values once expanded (49 s and 1.36 GB, issue 51)
ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcdef", "bcdefg", strict=True)
)


def _actions(count: int) -> str:
    """The built-in playbook with `count` more actions, each with its rule."""
    names = [f"extra_action_{i}" for i in range(count)]
    text = TEXT.replace(
        "actions:\n",
        "actions:\n" + "".join(f"  {n}:\n    description: more\n    channel: email\n" for n in names),
        1,
    )
    rules = "".join(f"  {n}:\n    any:\n      - when: sessions_7d > 0\n    otherwise: none\n" for n in names)
    return text.replace("eligibility:\n", "eligibility:\n" + rules, 1)


HOSTILE: dict[str, tuple[str | bytes, str | None, str]] = {
    "aliases": (ALIAS_BOMB.encode(), None, ":2: aliases (*a) are not allowed"),
    "110,000 actions": (_actions(110_000).encode(), None, "bytes; a YAML file here is at most"),
    "250 actions": (_actions(250).encode(), "actions:\n", "262 actions; a playbook holds at most 200"),
    "values": (("version: 1\nx: [" + "0, " * 25_000 + "]\n").encode(), None, ":2: more than 20,000 values"),
    "nesting": (("version: " + "[" * 5_000 + "]" * 5_000 + "\n").encode(), None, ":1: nested more than"),
    "not UTF-8": (
        TEXT.replace("description: at-risk band", "description: at-risk caf\xe9 band").encode("latin-1"),
        "at-risk caf",
        "not UTF-8 (byte 0xe9)",
    ),
    "a python tag": (
        TEXT.replace("version: 1", "version: !!python/name:os.system 1").encode(),
        "version: !!",
        "the tag tag:yaml.org,2002:python/name:os.system is not allowed",
    ),
    "a list as a key": (TEXT.replace("version: 1", "[a, b]: 1").encode(), "[a, b]", "a key is a plain word"),
    "an unterminated quote": (
        TEXT.replace("when: open_p1p2_tickets > 0", 'when: "tier = \'enterprise"'),
        "tier = 'enterprise",
        "eligibility.office_hours_invite.any.0.when: not a SQL condition",
    ),
    "dollars": (
        TEXT.replace("when: open_p1p2_tickets > 0", "when: open_p1p2_tickets > $$1"),
        "open_p1p2_tickets > $$",
        "not a SQL condition",
    ),
    "a nested condition": (
        TEXT.replace("when: open_p1p2_tickets > 0", f"when: {'(' * 300}open_p1p2_tickets > 0{')' * 300}"),
        "open_p1p2_tickets > 0)",
        "nested too deeply",
    ),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_a_hostile_playbook_is_refused_fast_in_one_line_at_its_place(
    tmp_path: Path, case: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Alias bombs and huge files ran for minutes; a bad condition, deep nesting, a file not in UTF-8 or a
    python tag ended in a traceback with exit 1 (issue 51). Each is one line with its file and line, and
    `retain playbook check` exits 2 as for any other mistake."""
    content, fragment, message = HOSTILE[case]
    path = tmp_path / "playbook.yaml"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    started = time.perf_counter()
    with pytest.raises(RetainError) as refused:
        load_playbook(path)
    assert time.perf_counter() - started < 0.5
    said = str(refused.value)
    assert "\n" not in said and message in said, said
    if fragment is not None:
        raw = content if isinstance(content, str) else content.decode("latin-1")
        assert said.startswith(f"{path}:{line_of(raw, fragment)}:"), said
    assert said.startswith(f"{path}:"), said
    monkeypatch.setattr(sys, "argv", ["retain", "playbook", "check", str(path)])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    assert capsys.readouterr().err.strip() == f"error: {said}"


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (("channel: in_app", "channel: carrier_pigeon"), "actions.in_app_nudge.channel"),
        (("when: open_p1p2_tickets > 0", "when: open_p1p2_tickets > $$1"), "not a SQL condition"),
    ],
)
def test_serve_does_not_start_on_a_playbook_that_does_not_read(
    tmp_path: Path, change: tuple[str, str], said: str
) -> None:
    bad = own(tmp_path, TEXT.replace(*change, 1))
    done = subprocess.run(
        [sys.executable, "-m", "retain", "serve", "--store", str(tmp_path / "store"), "--port", "0"],
        env={**os.environ, "RETAIN_PLAYBOOK": str(bad)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"error: {bad}:{line_of(TEXT, change[0])}: ") and said in done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert "Traceback" not in done.stderr
