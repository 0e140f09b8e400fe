"""What a subscription may hold: known alert types or commands, and an http(s) URL that neither is nor
resolves to a link-local or cloud metadata address. A server's cloud credentials can be read there, and a
webhook must not be a way to make Retain fetch them. Loopback and private addresses stay allowed: in-house
playbook engines live there. A URL is checked when subscribed and again before each delivery, since DNS
can change in between.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from urllib.parse import urlsplit

from core.errors import RetainError
from core.urls import redact
from features.alerts import ALERT_TYPES

#: the event type that subscribes to every alert type, present and future (not to commands)
ALL_EVENTS = "*"
#: the autopilot's order to a playbook engine to execute an action (serving.autopilot_log)
ACTION_EXECUTE = "action.execute"
#: events that make a receiver act rather than inform it: only a subscription that names one gets it
COMMANDS = (ACTION_EXECUTE,)
SCHEMES = ("http", "https")
#: names of cloud metadata services, refused before any lookup
METADATA_HOSTS = frozenset({"metadata.google.internal"})
#: cloud metadata addresses (link-local ones are refused with their whole range): AWS's, over IPv4 and
#: IPv6, and Alibaba Cloud's
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
#: IPv6 networks whose last 32 bits are an IPv4 address (besides the mapped ::ffff:0:0/96 and 6to4)
_CARRIERS = tuple(
    ipaddress.IPv6Network(n) for n in ("::/96", "::ffff:0:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48")
)
#: (host, port) -> the addresses the host resolves to
Resolver = Callable[[str, int], list[str]]


class WebhookInputError(RetainError):
    """Input a subscription or a retry cannot take: the field at fault, and a stable code for the API."""

    def __init__(self, field: str, code: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.code = code


class RefusedUrl(WebhookInputError):
    """A URL no delivery may go to, ever: a delivery to it is dead at once."""

    def __init__(self, message: str) -> None:
        super().__init__("url", "refused_url", message)


class UnresolvedHost(WebhookInputError):
    """A host that does not resolve now: refused when subscribing, tried again when delivering."""

    def __init__(self, message: str) -> None:
        super().__init__("url", "unresolved_host", message)


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to now."""
    try:
        found = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (OSError, ValueError) as e:  # ValueError: a name no lookup can take (a label too long)
        raise UnresolvedHost(f"host {host!r} does not resolve ({e})") from e
    return [str(info[4][0]) for info in found]


def check_url(url: str, resolver: Resolver = resolve) -> None:
    """Raise `RefusedUrl` unless `url` is http(s) and its host neither is nor resolves to a link-local or
    cloud metadata address; `UnresolvedHost` when its host does not resolve. Messages show the URL
    without a password."""
    try:
        parts = urlsplit(url)
        port = parts.port
        shown = redact(url)
    except ValueError as e:
        raise RefusedUrl(f"not a URL ({e})") from e
    if any(c.isspace() or not c.isprintable() for c in url):
        raise RefusedUrl(f"{shown!r} holds whitespace or control characters")
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise RefusedUrl(
            f"only http and https URLs can be subscribed, not {scheme or 'no scheme'!r} ({shown})"
        )
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise RefusedUrl(f"no host in {shown}")
    if host in METADATA_HOSTS:
        raise RefusedUrl(f"{shown} is refused: {host} is a cloud metadata service")
    literal = _literal(host)
    if literal is not None:
        addresses = [literal]
    else:
        default_port = 443 if scheme == "https" else 80
        addresses = [ipaddress.ip_address(a) for a in resolver(host, port or default_port)]
    for address in addresses:
        if (why := refusal(address)) is not None:
            which = str(address) if literal is not None else f"{host} resolves to {address}"
            raise RefusedUrl(f"{shown} is refused: {which}, {why}")


def refusal(address: Address) -> str | None:
    """Why no delivery may go to `address`, or None; an IPv6 address that carries an IPv4 one counts as
    that IPv4 address too (`[::a9fe:a9fe]` and `[64:ff9b::a9fe:a9fe]` spell 169.254.169.254)."""
    if isinstance(address, ipaddress.IPv6Address):
        address = _carried_ipv4(address) or address
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if address.is_link_local:
        return "a link-local address"
    return None


def _carried_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one embeds, or None: mapped (::ffff:a.b.c.d), translated
    (::ffff:0:a.b.c.d), compatible (::a.b.c.d), NAT64 (64:ff9b::/96, 64:ff9b:1::/48) or 6to4 (2002::/16);
    a network that translates it delivers to the IPv4 address."""
    carried = address.ipv4_mapped or address.sixtofour
    if carried is None and any(address in network for network in _CARRIERS):
        carried = ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    return carried


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def parse_events(events: Iterable[str], types: Sequence[str] = ALERT_TYPES) -> tuple[str, ...]:
    """The alert types (of the playbook's `types`) and commands a subscription takes, in their order;
    `*` stands for every alert type, and a command is taken only where it is named."""
    chosen = {e.strip() for e in events if e.strip()}
    known = f"event types are {', '.join((*types, *COMMANDS))}, or {ALL_EVENTS} for every alert type"
    unknown = sorted(chosen - {*types, *COMMANDS, ALL_EVENTS})
    if unknown:
        said = ", ".join(repr(u) for u in unknown)
        raise WebhookInputError("events", "unknown_event_type", f"unknown event type {said}; {known}")
    if not chosen:
        raise WebhookInputError("events", "no_event_types", f"no event types given; {known}")
    commands = tuple(c for c in COMMANDS if c in chosen)
    if ALL_EVENTS in chosen:
        return (ALL_EVENTS, *commands)
    return (*(t for t in types if t in chosen), *commands)
