"""`retain digest --send`: the week's digest mailed (the page, with its plain-text part) and its headlines
posted to a Slack-compatible webhook, to whichever of the two the settings name (docs/methods/delivery.md).

Mail goes first. A mail that fails stops the sending: Slack is not tried, so once the server is fixed
the same command sends each exactly once. A post that fails after the mail went says that the mail went
and how to post alone, rather than mail the recipients twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import RetainError
from core.settings import DeliverySettings
from products.delivery import (
    DeliveryError,
    MailRoute,
    SlackMessage,
    account_url,
    book_url,
    context,
    escaped,
    header,
    linked,
    mail_message,
    mail_route,
    post_to_slack,
    section,
    send_mail,
)
from products.digest.schema import DigestReport
from products.digest.text import render_text
from products.monitor.impact import money

#: accounts entering high risk named in the Slack post (the mail lists more, the JSON all)
SLACK_LISTED = 5


@dataclass(frozen=True)
class DigestSent:
    """Where the digest went: the recipients its mail was taken for (none: mail is off), and whether its
    headlines were posted."""

    mailed_to: tuple[str, ...]
    posted: bool


def destinations(settings: DeliverySettings) -> MailRoute | None:
    """The mail's route (None: mail is off); `--send` with neither mail nor Slack set is refused before
    anything is composed."""
    route = mail_route(settings)
    if route is None and settings.digest_slack_url is None:
        raise RetainError(
            "--send: nowhere to send the digest: set RETAIN_DELIVERY__SMTP_HOST (with __MAIL_FROM and "
            "__MAIL_TO) to mail it, RETAIN_DELIVERY__DIGEST_SLACK_URL to post it"
        )
    return route


def subject(report: DigestReport) -> str:
    return f"Retain weekly digest: week of {report.week} to {report.week_end}"


def slack_summary(report: DigestReport, settings: DeliverySettings, mailed: int) -> SlackMessage:
    """The headlines, the largest accounts entering high risk (each linked to its cockpit page when the
    cockpit's public URL is set), and where the whole digest is."""
    title = subject(report)
    blocks = [header(title), section("\n".join(f"• {escaped(line)}" for line in report.headlines))]
    entering = report.risk.entering[:SLACK_LISTED]
    if entering:
        named = [
            f"• {linked(m.name or m.account_id, account_url(settings, m.account_id))}: "
            f"{money(m.arr or 0.0)} ARR, {escaped(m.reason or 'no reason given')}"
            for m in entering
        ]
        more = len(report.risk.entering) - len(entering)
        tail = [f"and {more} more in the digest"] if more else []
        blocks.append(section("\n".join(["*Entering high risk*, largest ARR first:", *named, *tail])))
    where = [f"Store {escaped(report.store)}", f"computed {report.computed_at}"]
    if mailed:
        where.append(f"the whole digest was mailed to {mailed} recipient(s)")
    book = book_url(settings)
    if book is not None:
        where.append(linked("open the cockpit", book))
    blocks.append(context(" · ".join(where)))
    return SlackMessage(text="\n".join([title, *report.headlines]), blocks=blocks)


def send(report: DigestReport, page: str, settings: DeliverySettings) -> DigestSent:
    """Mail `page` (the digest's HTML) with its text part, then post the headlines; `DeliveryError` says
    what went and what did not."""
    route = destinations(settings)
    slack = settings.digest_slack_url
    if route is not None:
        message = mail_message(route, subject(report), render_text(report), page)
        try:
            send_mail(settings, route, message)
        except DeliveryError as e:
            untried = "; nothing was posted to Slack either" if slack is not None else ""
            raise DeliveryError(f"the digest was not mailed: {e}{untried}") from None
    mailed_to = route.recipients if route is not None else ()
    if slack is not None:
        try:
            post_to_slack(
                slack, slack_summary(report, settings, len(mailed_to)), settings.slack_timeout_seconds
            )
        except DeliveryError as e:
            if not mailed_to:
                raise DeliveryError(f"the digest was not posted to Slack: {e}") from None
            raise DeliveryError(
                f"the digest was mailed to {', '.join(mailed_to)} but not posted to Slack: {e}; to post it "
                "alone, run `retain digest --send` again with RETAIN_DELIVERY__SMTP_HOST unset"
            ) from None
    return DigestSent(mailed_to, slack is not None)
