"""Delivery on the served world, scored at its last two cutoffs with a decision log of its own: `retain
digest --send` mails the digest to a real SMTP server (aiosmtpd) and posts its headlines to a
Slack-compatible webhook; the scoring's new alerts reach that webhook with their reasons and cockpit
links, once. Every failure of a server is one line and exit code 2 (or the alerts' error), nothing is
half-sent, and no message quotes the webhook's token."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pydantic import SecretStr

from core.settings import DeliverySettings, Settings, get_settings
from features.playbook_file import store_playbook
from features.stored import stored_cutoffs
from products import alerting
from retain import api
from retain.cli import main
from serving.assess import risk_band
from tests.support.receivers import TOKEN, HangUp, MailServer, SlackReceiver, free_port
from tests.support.served import World

PUBLIC = "https://retain.example.com"
SENDER, TO = "retain@example.com", ("lead@example.com", "csm-leads@example.com")
#: the digest's bands, drawn lower as in test_digest.py: the small model never reaches the default high
LOW_BANDS = {"MEDIUM": "0.03", "HIGH": "0.06", "CRITICAL": "0.2"}


@dataclass(frozen=True)
class Scored:
    world: World
    #: the world's settings with a decision log of this module's own, alerts posted to `slack`
    settings: Settings
    before: date
    latest: date
    monday: date
    frames: dict[str, pd.DataFrame]
    #: the posts the latest cutoff's scoring made
    posts: list[dict[str, Any]]


def _with(settings: Settings, log: Path, **delivery: Any) -> Settings:
    serve = settings.serve.model_copy(update={"decision_log_url": f"sqlite:///{log}"})
    return settings.model_copy(update={"serve": serve, "delivery": DeliverySettings(**delivery)})


@pytest.fixture(scope="module")
def scored(served_world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scored]:
    out, slack = tmp_path_factory.mktemp("delivery"), SlackReceiver()
    settings = _with(
        served_world.settings, out / "decisions.db", alerts_slack_url=slack.url, public_url=PUBLIC
    )
    before, latest = stored_cutoffs(served_world.store)[-2:]
    api.score(before, out / "before.parquet", store=served_world.store, settings=settings)
    slack.received.clear()
    api.score(latest, out / "latest.parquet", store=served_world.store, settings=settings)
    frames = {n: pd.read_parquet(out / f"{n}.parquet").set_index("account_id") for n in ("before", "latest")}
    monday = latest - timedelta(days=latest.weekday())
    yield Scored(served_world, settings, before, latest, monday, frames, list(slack.received))
    slack.close()


def _changed_bands(scored: Scored) -> list[str]:
    """The accounts whose risk band the latest scoring changed, from the two batches' files."""
    before, latest = scored.frames["before"], scored.frames["latest"]
    both = latest.index.intersection(before.index)
    bands = [
        frame["churn_probability"].map(lambda p: risk_band(float(p), scored.settings))
        for frame in (before, latest)
    ]
    return [a for a in both if bands[0][a] != bands[1][a]]


# -- the alerts ----------------------------------------------------------------------------------------


def test_the_scorings_new_alerts_reach_slack_once_with_reasons_and_cockpit_links(scored: Scored) -> None:
    changed = _changed_bands(scored)
    assert changed and len(scored.posts) == 1, "one post for the step's new alerts"
    post = scored.posts[0]
    assert post["blocks"][0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": f"{len(changed)} new Retain alert(s)"},
    }
    sections = [b["text"]["text"] for b in post["blocks"] if b["type"] == "section"]
    assert len(sections) == min(len(changed), alerting.SLACK_LISTED)
    for text in sections:
        account = next(a for a in changed if f"{PUBLIC}/ui/accounts/{a}|" in text)
        reasons = json.loads(scored.frames["latest"].at[account, "reasons"])
        assert reasons and all(r["text"].replace("&", "&amp;") in text for r in reasons), text
        assert "Churn risk rose" in text or "Churn risk fell" in text
    if len(changed) > alerting.SLACK_LISTED:
        assert f"and {len(changed) - alerting.SLACK_LISTED} more" in post["blocks"][-1]["elements"][0]["text"]
    assert post["text"].startswith(f"{len(changed)} new Retain alert(s)\n")


def test_alerts_recorded_before_are_not_posted_again(scored: Scored) -> None:
    slack = SlackReceiver()
    settings = scored.settings.model_copy(
        update={
            "delivery": scored.settings.delivery.model_copy(update={"alerts_slack_url": SecretStr(slack.url)})
        }
    )
    store = scored.world.store
    again = alerting.score_alerts(store, settings, scored.latest, store_playbook(store, settings))
    done = alerting.record(store, settings, again)
    slack.close()
    assert done.error is None and done.new == 0 and done.known == len(again) > 0
    assert slack.received == []


@pytest.mark.parametrize(
    ("receiver", "said"),
    [
        (
            dict(status=500, answer="no_service"),
            "the webhook answered HTTP 500 Internal Server Error: no_service",
        ),
        (dict(hold=2.0), "the webhook did not answer within 0.3 s"),
    ],
    ids=["http-500", "timeout"],
)
def test_a_failed_post_of_alerts_is_said_and_the_alerts_stand(
    scored: Scored, tmp_path: Path, receiver: dict[str, Any], said: str
) -> None:
    slack, store = SlackReceiver(**receiver), scored.world.store
    settings = _with(
        scored.settings, tmp_path / "decisions.db", alerts_slack_url=slack.url, slack_timeout_seconds=0.3
    )
    alerts = alerting.score_alerts(store, settings, scored.latest, store_playbook(store, settings))
    done = alerting.record(store, settings, alerts)
    slack.close()
    assert done.new == len(alerts) > 0, "recorded all the same: the webhooks will have them"
    assert done.error is not None and "not posted to Slack: " + said in done.error
    assert TOKEN not in done.error and len(slack.received) == 1


# -- the digest ----------------------------------------------------------------------------------------


@pytest.fixture
def retain(
    scored: Scored, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> Iterator[Callable[..., tuple[int, str, str]]]:
    """`retain digest --send` through its entry point on the scored world, with `RETAIN_DELIVERY__*` as
    given: the exit code, stdout and stderr."""

    def run(**delivery: str) -> tuple[int, str, str]:
        env = {"SERVE__DECISION_LOG_URL": scored.settings.serve.decision_log_url or ""}
        env |= {f"SERVE__RISK_BANDS__{k}": v for k, v in LOW_BANDS.items()}
        env |= {f"DELIVERY__{k.upper()}": v for k, v in delivery.items()}
        for name, value in env.items():
            monkeypatch.setenv(f"RETAIN_{name}", value)
        get_settings.cache_clear()
        args = ["digest", "--week", str(scored.monday), "--out", str(tmp_path), "--send"]
        monkeypatch.setattr(sys, "argv", ["retain", *args, "--store", str(scored.world.store.root)])
        with pytest.raises(SystemExit) as exit_:
            main()
        captured = capsys.readouterr()
        return int(exit_.value.code or 0), captured.out, captured.err

    yield run
    get_settings.cache_clear()


def _smtp(port: int) -> dict[str, str]:
    return {
        "smtp_host": "127.0.0.1",
        "smtp_port": str(port),
        "smtp_security": "none",
        "mail_from": SENDER,
        "mail_to": ", ".join(TO),
    }


def test_send_mails_the_digest_with_both_parts_and_posts_its_headlines(
    scored: Scored, retain: Callable[..., tuple[int, str, str]], tmp_path: Path
) -> None:
    mail, slack = MailServer(), SlackReceiver()
    code, out, err = retain(**_smtp(mail.port), digest_slack_url=slack.url, public_url=PUBLIC)
    mail.close()
    slack.close()
    assert code == 0, err
    report = json.loads((tmp_path / f"digest-{scored.monday}.json").read_text())
    page = (tmp_path / f"digest-{scored.monday}.html").read_text()
    assert f"Sent: mailed to {', '.join(TO)}; its headlines posted to Slack" in out

    (sent,) = mail.messages
    assert sent.sender == SENDER and sent.recipients == list(TO)
    message = message_from_bytes(sent.content, policy=policy.default)
    assert isinstance(message, EmailMessage)
    assert message["Subject"] == f"Retain weekly digest: week of {scored.monday} to {report['week_end']}"
    assert message["From"] == SENDER and message["To"] == ", ".join(TO)
    assert message.get_content_type() == "multipart/alternative"
    text, html = (part for part in message.iter_parts())
    assert text.get_content_type() == "text/plain" and html.get_content_type() == "text/html"
    as_sent = html.get_content().replace("\r\n", "\n")
    assert as_sent.rstrip("\n") == page.rstrip("\n"), "the HTML part is the page written"
    body = text.get_content().replace("\r\n", "\n")
    assert f"Week of {scored.monday} to {report['week_end']}" in body
    assert all(line in body for line in report["headlines"])
    assert "<" not in body.replace("<=", ""), "no markup in the text part"

    (post,) = slack.received
    assert slack.content_types == ["application/json; charset=utf-8"]
    assert post["text"].splitlines() == [message["Subject"], *report["headlines"]]
    summary = json.dumps(post["blocks"])
    assert all(json.dumps(line)[1:-1].replace("&", "&amp;") in summary for line in report["headlines"])
    entering = report["risk"]["entering"]
    assert entering and f"{PUBLIC}/ui/accounts/{entering[0]['account_id']}|" in summary
    assert "mailed to 2 recipient(s)" in summary


#: each failing server: how it fails, what the mail's settings add, what the error says
FAILING = [
    ("nothing", {}, "nothing listens at 127.0.0.1:"),
    ("hang-up", {}, "closed the connection before the mail was sent"),
    ("refuse-data", {}, "refused the message (554 5.6.0 message refused); nobody got it"),
    ("refuse-recipient", {}, f"refused the recipient {TO[1]} (550 5.1.1 no such mailbox here)"),
    ("no-starttls", {"smtp_security": "starttls"}, "does not offer STARTTLS"),
    ("no-login", {"smtp_user": "retain", "smtp_password": "hunter2"}, "does not offer a login"),
]


@pytest.mark.parametrize(("server", "extra", "said"), FAILING, ids=[case[0] for case in FAILING])
def test_a_failing_smtp_server_is_one_line_exit_2_and_nothing_is_sent(
    scored: Scored,
    retain: Callable[..., tuple[int, str, str]],
    tmp_path: Path,
    server: str,
    extra: dict[str, str],
    said: str,
) -> None:
    mail: MailServer | HangUp | None = None
    if server == "nothing":
        port = free_port()
    elif server == "hang-up":
        mail = HangUp()
        port = mail.port
    else:
        refused = "554 5.6.0 message refused" if server == "refuse-data" else None
        mail = MailServer(refuse=(TO[1],) if server == "refuse-recipient" else (), data_answer=refused)
        port = mail.port
    slack = SlackReceiver()
    code, out, err = retain(**(_smtp(port) | extra), digest_slack_url=slack.url)
    if mail is not None:
        mail.close()
    slack.close()
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and out == "" and "Traceback" not in err
    assert len(errors) == 1 and errors[0].startswith("error: the digest was not mailed: "), err
    assert said in errors[0] and "nothing was posted to Slack either" in errors[0]
    if isinstance(mail, MailServer):
        assert mail.messages == [], "all recipients or none"
    if isinstance(mail, HangUp):
        assert mail.connections >= 1
    assert slack.received == [], "Slack is not tried once the mail failed"
    assert "hunter2" not in err
    assert (tmp_path / f"digest-{scored.monday}.html").exists(), "the page is written all the same"


@pytest.mark.parametrize(
    ("slack", "said"),
    [
        ({"status": 404, "answer": "no_service"}, "the webhook answered HTTP 404 Not Found: no_service"),
        ({"hold": 2.0}, "the webhook did not answer within 0.3 s"),
        (None, "cannot reach the webhook (ConnectionError: [Errno 111] Connection refused"),
    ],
    ids=["http-404", "timeout", "nothing-listens"],
)
def test_a_failed_post_after_the_mail_says_the_mail_went(
    retain: Callable[..., tuple[int, str, str]], slack: dict[str, Any] | None, said: str
) -> None:
    mail = MailServer()
    receiver = SlackReceiver(**slack) if slack is not None else None
    url = receiver.url if receiver is not None else f"http://127.0.0.1:{free_port()}/services/T/B/{TOKEN}"
    code, out, err = retain(**_smtp(mail.port), digest_slack_url=url, slack_timeout_seconds="0.3")
    mail.close()
    if receiver is not None:
        receiver.close()
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and out == "" and len(errors) == 1 and "Traceback" not in err
    assert f"error: the digest was mailed to {', '.join(TO)} but not posted to Slack: {said}" in errors[0]
    assert "RETAIN_DELIVERY__SMTP_HOST unset" in errors[0]
    assert TOKEN not in err and len(mail.messages) == 1


def test_send_with_nowhere_to_send_is_refused_before_composing(
    retain: Callable[..., tuple[int, str, str]], tmp_path: Path
) -> None:
    code, out, err = retain()
    assert (
        code == 2
        and out == ""
        and "error: --send: nowhere to send the digest" in err
        and not list(tmp_path.iterdir())
    )
    code, out, err = retain(smtp_host="127.0.0.1")
    assert code == 2 and out == "" and "RETAIN_DELIVERY__MAIL_FROM and RETAIN_DELIVERY__MAIL_TO is not" in err


# -- the settings ----------------------------------------------------------------------------------------


def test_delivery_settings_take_a_list_of_recipients_and_never_show_a_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RETAIN_DELIVERY__MAIL_TO", "a@example.com, b@example.com")
    monkeypatch.setenv("RETAIN_DELIVERY__SMTP_USER", "retain")
    monkeypatch.setenv("RETAIN_DELIVERY__SMTP_PASSWORD", "hunter2")
    monkeypatch.setenv("RETAIN_DELIVERY__ALERTS_SLACK_URL", f"https://hooks.slack.com/services/T/B/{TOKEN}")
    settings = Settings()
    assert settings.delivery.mail_to == ["a@example.com", "b@example.com"]
    assert DeliverySettings.model_validate({"mail_to": '["c@example.com"]'}).mail_to == ["c@example.com"]
    shown = repr(settings) + settings.model_dump_json() + str(settings.model_dump())
    assert "hunter2" not in shown and TOKEN not in shown
    monkeypatch.setenv("RETAIN_DELIVERY__MAIL_TO", "lead at example.com")
    with pytest.raises(ValueError, match="is not a mail address") as refused:
        Settings()
    assert "hunter2" not in str(refused.value) and TOKEN not in str(refused.value)
    for bad, said in [
        ({"mail_to": "lead at example.com"}, "is not a mail address"),
        ({"smtp_user": "retain"}, "smtp_user and smtp_password go together"),
        ({"public_url": "retain.example.com"}, "public_url must be an http(s) URL"),
    ]:
        with pytest.raises(ValueError, match=re.escape(said)):
            DeliverySettings(**bad)
