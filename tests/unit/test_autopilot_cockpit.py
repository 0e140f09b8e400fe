"""The cockpit's part of the autopilot: an account's executions with where their deliveries stand (read
from a real decision log on SQLite), the CSM's stop, and the page that lists them with its stop form."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from serving.autopilot_log import AutopilotLog, Execution
from serving.cockpit.pages import TEMPLATES, AccountPage
from serving.cockpit.timeline import action_label
from serving.resources import AccountRecord
from serving.schemas import Fallback, Freshness, Health, Risk
from serving.webhooks.outbox import Outbox
from store.decision_log import DecisionLog

WEEK = datetime(2025, 6, 2, tzinfo=UTC)
AT = datetime(2025, 6, 2, 9, tzinfo=UTC)
EXECUTION = Execution(
    "ex_1", WEEK, "acc-9", "in_app_nudge", "in_app", "chosen", AT, "autopilot", None, "uplift/3", 0.9, "ap_1"
)


def test_an_account_s_executions_say_where_their_deliveries_stand_and_a_stop_is_kept(tmp_path: Path) -> None:
    log = DecisionLog(f"sqlite:///{tmp_path}/decisions.db")
    pilot = AutopilotLog(log)
    assert pilot.execute(EXECUTION, "targeted") is None
    Outbox(log).add("http://127.0.0.1:9/hook", ["action.execute"])
    later = replace(EXECUTION, execution_id="ex_2", action="billing_outreach", at=AT.replace(hour=10))
    assert pilot.execute(later, "targeted") is None
    history = pilot.account_history("acc-9")
    assert [(e.execution_id, e.status) for e in history] == [
        ("ex_2", "queued"),
        ("ex_1", "no webhook subscribed"),
    ]
    assert pilot.account_history("acc-other") == []
    assert pilot.stop_of("acc-9") is None
    pilot.set_stop("acc-9", True, "Dana (CSM)", "key_1")
    stop = pilot.stop_of("acc-9")
    assert stop is not None and stop.stopped and stop.actor == "Dana (CSM)" and pilot.stopped() == {"acc-9"}
    assert pilot.execute(replace(EXECUTION, execution_id="ex_3"), "targeted") == "stopped by CSM"
    log.close()


def _page(**autopilot: object) -> str:
    risk = Risk(
        account_id="acc-9",
        source="rules",
        fallback_reason=Fallback(code="no_feature_row", message="no feature row"),
        churn_probability=None,
        expansion_probability=None,
        horizon_days=90,
        risk_band=None,
        health=Health(score=None, band=None, components={}, weights={}),
        reasons=[],
        changes=None,
        models={"churn": None, "expansion": None},
        features=Freshness(cutoff=None, age_days=None, limit_days=14, fresh=False),
    )
    page = AccountPage(
        "acc-9",
        AccountRecord("acc-9"),
        risk,
        None,
        (),
        [],
        False,
        [],
        90,
        [],
        None,
        False,
        True,
        None,
        None,
        False,
        None,
        **autopilot,  # type: ignore[arg-type]
    )
    viewer = type("Viewer", (), {"csrf": "tok", "name": "Dana (CSM)", "session": None})()
    return TEMPLATES.get_template("account.html").render(
        viewer=viewer, flash=None, error=None, fallback_words={}, **page.context()
    )


def test_the_account_page_lists_what_the_autopilot_did_and_offers_the_stop_or_the_resume(
    tmp_path: Path,
) -> None:
    log = DecisionLog(f"sqlite:///{tmp_path}/decisions.db")
    pilot = AutopilotLog(log)
    pilot.execute(EXECUTION, "targeted")
    html = _page(autopilot=pilot.account_history("acc-9"))
    listed = html.split('<table id="autopilot">')[1].split("</table>")[0]
    assert action_label("in_app_nudge") in listed
    assert "2025-06-02" in listed and "autopilot" in listed and "no webhook subscribed" in listed
    assert 'action="/ui/accounts/acc-9/autopilot"' in html and 'name="stopped" value="true"' in html
    stopped = _page(autopilot_stop=pilot.set_stop("acc-9", True, "Dana (CSM)", None))
    assert 'id="autopilot-stopped"' in stopped and "Dana (CSM)" in stopped
    assert 'name="stopped" value="false"' in stopped and "Nothing executed by the autopilot" in stopped
    log.close()
