"""Sending what the products say to people: one mail over SMTP, one post to a Slack-compatible incoming
webhook (docs/methods/delivery.md).

A mail is one SMTP transaction: every recipient is offered before the message, and the first refused
one resets it, so all of them get the mail or none does. A post is one JSON `{"text", "blocks"}` POST;
anything but a 2xx is a failure. Failures are `DeliveryError`s that say what the server answered in one
line, never the password nor the webhook's URL (its path is its token).
"""

from __future__ import annotations

import contextlib
import json
import re
import smtplib
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, make_msgid
from typing import Any, TypedDict
from urllib.parse import quote

import requests
from pydantic import SecretStr

from core.errors import RetainError
from core.settings import SMTP_PORTS, DeliverySettings

#: Slack cuts a section's text at 3,000 characters and a header's at 150
SECTION_CHARS, HEADER_CHARS = 3000, 150
#: what of a failed post's answer is quoted: Slack says why in a word or two (`invalid_token`)
ANSWER_CHARS = 120


class DeliveryError(RetainError):
    """A mail or a post that did not go; the message says why in one line."""


class SlackMessage(TypedDict):
    #: what notifications and clients without blocks show
    text: str
    blocks: list[dict[str, Any]]


@dataclass(frozen=True)
class MailRoute:
    """Where a mail goes, from the settings: the server, the sender and the recipients."""

    host: str
    port: int
    sender: str
    recipients: tuple[str, ...]

    @property
    def server(self) -> str:
        return f"{self.host}:{self.port}"


def mail_route(settings: DeliverySettings) -> MailRoute | None:
    """The mail's route; None when no SMTP host is set (mail is off). A host without a sender or
    recipients is refused before anything is composed."""
    if settings.smtp_host is None:
        return None
    if settings.mail_from is None or not settings.mail_to:
        missing = [n for n in ("mail_from", "mail_to") if not getattr(settings, n)]
        names = " and ".join(f"RETAIN_DELIVERY__{n.upper()}" for n in missing)
        raise RetainError(f"mail: RETAIN_DELIVERY__SMTP_HOST is set but {names} is not")
    port = settings.smtp_port or SMTP_PORTS[settings.smtp_security]
    return MailRoute(settings.smtp_host, port, settings.mail_from, tuple(settings.mail_to))


def mail_message(route: MailRoute, subject: str, text: str, html: str) -> EmailMessage:
    """A multipart/alternative mail: the text part first, the HTML part (what clients show) last. Both are
    quoted-printable, so the message is 7-bit whatever the server supports."""
    message = EmailMessage(policy=SMTP)
    message["Subject"] = subject
    message["From"] = route.sender
    message["To"] = ", ".join(route.recipients)
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(domain=route.sender.rpartition("@")[2])
    message.set_content(text, cte="quoted-printable")
    message.add_alternative(html, subtype="html", cte="quoted-printable")
    return message


def send_mail(settings: DeliverySettings, route: MailRoute, message: EmailMessage) -> None:
    """Send `message` to every recipient of `route` in one transaction, or to none: `DeliveryError`."""
    try:
        with _connected(settings, route) as smtp:
            _transaction(smtp, route, message.as_bytes(policy=SMTP))
    except DeliveryError:
        raise
    except (smtplib.SMTPException, OSError) as e:
        raise DeliveryError(_smtp_said(e, route, settings)) from None


@contextlib.contextmanager
def _connected(settings: DeliverySettings, route: MailRoute) -> Iterator[smtplib.SMTP]:
    """A session with the server, secured and logged in as the settings say; closed after use."""
    timeout, context = settings.smtp_timeout_seconds, ssl.create_default_context()
    if settings.smtp_security == "ssl":
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(route.host, route.port, timeout=timeout, context=context)
    else:
        smtp = smtplib.SMTP(route.host, route.port, timeout=timeout)
    try:
        if settings.smtp_security == "starttls":
            _offered(smtp.starttls, route, "STARTTLS", "set RETAIN_DELIVERY__SMTP_SECURITY to ssl or none")
        user, password = settings.smtp_user, settings.smtp_password
        if user is not None and password is not None:
            instead = "unset RETAIN_DELIVERY__SMTP_USER and __SMTP_PASSWORD"
            _offered(lambda: smtp.login(user, password.get_secret_value()), route, "a login", instead)
        yield smtp
    finally:
        # QUIT is a courtesy: once DATA was taken the mail is sent, whatever QUIT answers
        with contextlib.suppress(smtplib.SMTPException, OSError):
            smtp.quit()
        smtp.close()


def _offered(step: Callable[[], object], route: MailRoute, what: str, instead: str) -> None:
    """Run a step of the session the server may not offer (STARTTLS, AUTH), saying so if it does not."""
    try:
        step()
    except smtplib.SMTPNotSupportedError:
        raise DeliveryError(f"{route.server} does not offer {what}: {instead}") from None


def _transaction(smtp: smtplib.SMTP, route: MailRoute, message: bytes) -> None:
    """MAIL, every RCPT, then DATA: `sendmail` would send to the recipients it got through even when one
    is refused; here a refusal resets the transaction before any data, so nobody gets it."""
    smtp.ehlo_or_helo_if_needed()
    code, answer = smtp.mail(route.sender)
    if code != 250:
        _reset(smtp)
        raise DeliveryError(f"{route.server} refused the sender {route.sender} ({_answer(code, answer)})")
    for recipient in route.recipients:
        code, answer = smtp.rcpt(recipient)
        if code not in (250, 251):
            _reset(smtp)
            raise DeliveryError(
                f"{route.server} refused the recipient {recipient} ({_answer(code, answer)}); "
                "no recipient was sent the mail"
            )
    code, answer = smtp.data(message)  # raises on a refusal before the message, returns one after it
    if code != 250:
        _reset(smtp)
        raise smtplib.SMTPDataError(code, answer)


def _reset(smtp: smtplib.SMTP) -> None:
    with contextlib.suppress(smtplib.SMTPException, OSError):
        smtp.rset()


def _answer(code: int, answer: bytes | str) -> str:
    text = answer.decode(errors="replace") if isinstance(answer, bytes) else answer
    return f"{code} {' '.join(text.split())}".strip()


def _smtp_said(error: Exception, route: MailRoute, settings: DeliverySettings) -> str:
    """What went wrong with the server, in one line a person can act on."""
    server = route.server
    if isinstance(error, smtplib.SMTPAuthenticationError):
        answer = _answer(error.smtp_code, error.smtp_error)
        return f"{server} refused the login of {settings.smtp_user} ({answer})"
    if isinstance(error, smtplib.SMTPDataError):
        return f"{server} refused the message ({_answer(error.smtp_code, error.smtp_error)}); nobody got it"
    if isinstance(error, smtplib.SMTPResponseException):
        return f"{server} answered {_answer(error.smtp_code, error.smtp_error)}"
    if isinstance(error, smtplib.SMTPServerDisconnected):
        return f"{server} closed the connection before the mail was sent"
    if isinstance(error, ConnectionRefusedError):
        return f"nothing listens at {server} (connection refused)"
    if isinstance(error, TimeoutError):
        return f"{server} did not answer within {settings.smtp_timeout_seconds:g} s"
    if isinstance(error, ssl.SSLError):
        return f"TLS with {server} failed ({error.reason or type(error).__name__})"
    if isinstance(error, OSError):
        return f"cannot reach {server} ({error.strerror or type(error).__name__})"
    return f"{server}: {type(error).__name__}: {' '.join(str(error).split())}"


def post_to_slack(url: SecretStr, message: SlackMessage, timeout: float) -> None:
    """POST the message to an incoming webhook; `DeliveryError` unless it answers 2xx. Redirects are not
    followed: an incoming webhook answers where it is."""
    body = json.dumps(message, ensure_ascii=False).encode()
    headers = {"Content-Type": "application/json; charset=utf-8"}
    try:
        with requests.post(
            url.get_secret_value(), data=body, headers=headers, timeout=timeout, allow_redirects=False
        ) as answer:
            if 200 <= answer.status_code < 300:
                return
            said = " ".join(answer.text.split())[:ANSWER_CHARS]
            status = f"HTTP {answer.status_code} {answer.reason or ''}".strip()
            raise DeliveryError(f"the webhook answered {status}" + (f": {said}" if said else ""))
    except requests.Timeout:
        raise DeliveryError(f"the webhook did not answer within {timeout:g} s") from None
    except requests.RequestException as e:
        # requests' own text quotes the URL, whose path is the webhook's token
        reason = re.search(r"\[Errno -?\d+\][^'\")]*", str(e))
        raise DeliveryError(
            f"cannot reach the webhook ({type(e).__name__}: "
            f"{reason.group(0).strip() if reason else 'the request failed'})"
        ) from None


def account_url(settings: DeliverySettings, account_id: str) -> str | None:
    """The account's page in the cockpit, where people open it; None without `public_url`."""
    if settings.public_url is None:
        return None
    return f"{settings.public_url.rstrip('/')}/ui/accounts/{quote(account_id, safe='')}"


def book_url(settings: DeliverySettings) -> str | None:
    """The cockpit's book of accounts; None without `public_url`."""
    return None if settings.public_url is None else f"{settings.public_url.rstrip('/')}/ui"


def escaped(text: str) -> str:
    """Text as Slack's mrkdwn shows it literally: `&`, `<` and `>` are its only control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def linked(text: str, url: str | None) -> str:
    """`text` as a mrkdwn link to `url`, or as plain text without one."""
    return escaped(text) if url is None else f"<{url}|{escaped(text).replace('|', '¦')}>"


def section(mrkdwn: str) -> dict[str, Any]:
    """A section block, cut to what Slack takes."""
    if len(mrkdwn) > SECTION_CHARS:
        mrkdwn = mrkdwn[: SECTION_CHARS - 1] + "…"
    return {"type": "section", "text": {"type": "mrkdwn", "text": mrkdwn}}


def header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": text[:HEADER_CHARS]}}


def context(mrkdwn: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": mrkdwn[:SECTION_CHARS]}]}
