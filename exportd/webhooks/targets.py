"""Which URLs a tenant may register as a webhook endpoint, and which addresses we will POST to:
a webhook is a request we make on a stranger's behalf, so it must not reach our own network."""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import Final

from yarl import URL

from exportd.errors import InvalidRequest
from exportd.text import is_unsafe

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL: Final = 2048
SCHEMES: Final = frozenset({"http", "https"})
# A DNS name as it goes on the wire (IDNA already applied); underscores occur in real names.
_HOST_NAME: Final = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?")
# A host whose last label is a number is an IPv4 address to URL parsers (WHATWG) and, in part, to
# the C library: 127.1, 0x7f.1, 010.0.0.1, 2130706433, 10.0.0.1. are not names.
_ENDS_IN_NUMBER: Final = re.compile(r"(.+\.)?([0-9]+|0x[0-9a-f]*)\.?")
_CGNAT: Final = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")


class WebhookUrlInvalid(InvalidRequest):
    code, title = "webhook_url_invalid", "Webhook URL is not acceptable"


def parse_target(url: str, *, allow_private: bool) -> str:
    """The URL, normalised, or raise WebhookUrlInvalid with a detail safe to show. Names are
    resolved and their addresses checked at delivery time, not here."""
    if len(url) > MAX_URL:
        raise WebhookUrlInvalid(f"The URL is longer than {MAX_URL} characters.")
    # yarl quietly drops some of these (a newline, a leading space) instead of refusing them.
    if any(ch.isspace() or is_unsafe(ch) for ch in url):
        raise WebhookUrlInvalid("The URL must not contain spaces or control characters.")
    if "#" in url:
        raise WebhookUrlInvalid("The URL must not have a fragment (#...).")
    try:
        parsed = URL(url)
        host = parsed.raw_host
        port = parsed.explicit_port
    except ValueError:  # yarl's messages repeat the input; ours need not
        raise WebhookUrlInvalid("The URL is not valid (check the host and the port).") from None
    if parsed.scheme not in SCHEMES:
        raise WebhookUrlInvalid("The URL must start with http:// or https://.")
    if not host:
        raise WebhookUrlInvalid("The URL has no host.")
    if parsed.raw_user is not None or parsed.raw_password is not None:
        raise WebhookUrlInvalid("The URL must not carry a user name or password.")
    if port == 0:
        raise WebhookUrlInvalid("The port must be between 1 and 65535.")
    _check_host(host, parsed.host or host, allow_private=allow_private)
    normalised = str(parsed)
    if len(normalised) > MAX_URL:
        raise WebhookUrlInvalid(f"The URL is longer than {MAX_URL} characters once encoded.")
    return normalised


def _check_host(raw_host: str, host: str, *, allow_private: bool) -> None:
    address = literal_address(host)
    if address is None and not _HOST_NAME.fullmatch(raw_host):
        raise WebhookUrlInvalid("The host is not a valid name or IP address.")
    numeric = ":" not in host and _ENDS_IN_NUMBER.fullmatch(host)
    if numeric and (address is None or str(address) != host):
        raise WebhookUrlInvalid("An IPv4 address must be four decimal numbers (a.b.c.d).")
    if allow_private:
        return
    if address is not None and (reason := refusal(address)) is not None:
        raise WebhookUrlInvalid(f"The host must be a public address, not {reason}.")
    name = host.rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        raise WebhookUrlInvalid("The host must not be localhost.")


def literal_address(host: str) -> Address | None:
    """The address a host stands for without DNS: an IP literal, or one of the legacy IPv4
    forms (`127.1`, `0x7f000001`) that getaddrinfo turns into an address without asking DNS."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def is_public(address: Address) -> bool:
    """Global unicast only; IPv6 forms that carry an IPv4 address are judged by that address."""
    return refusal(address) is None


def refusal(address: Address) -> str | None:
    """Why we will not connect to `address` ("loopback", "private", ...), None if it is public."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = address.ipv4_mapped or address.sixtofour
        if inner is None and address in _NAT64:
            inner = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if inner is not None:
            return refusal(inner)
    # Most specific first: Python counts loopback, link-local and reserved as private too.
    checks = [
        (address.is_unspecified, "unspecified"),
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local"),
        (address.is_multicast, "multicast"),
        (address.is_reserved, "reserved"),
        (isinstance(address, ipaddress.IPv4Address) and address in _CGNAT, "shared (CGNAT)"),
        (address.is_private or not address.is_global, "private"),
    ]
    return next((reason for refused, reason in checks if refused), None)
