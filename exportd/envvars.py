"""EXPORTD_* variables' values: text parsed to typed values (and back), and the checks of
values that are URLs or network lists."""

from __future__ import annotations

import difflib
import ipaddress
import math
import re
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import jwt

from exportd.errors import ConfigError

Networks = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]


def dsn_problems(name: str, dsn: str) -> list[str]:
    """A database URL asyncpg can use: postgresql://user:pass@host:port/db?options."""
    try:
        parts = urlsplit(dsn)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as exc:
        return [f"{name} is not a valid URL: {exc}"]
    if parts.scheme not in ("postgresql", "postgres"):
        return [f"{name} must be a postgresql:// URL (not {parts.scheme or 'key=value'}://...)"]
    return []


def _parse_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _parse_seconds(raw: str) -> timedelta:
    seconds = float(raw)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError("expected a finite, non-negative number of seconds")
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError("too large") from None


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}")
        return raw

    return parse


_PARSERS: dict[str, Callable[[str], Any]] = {
    "str": str,
    "int": int,
    "bool": _parse_bool,
    "timedelta": _parse_seconds,
    "Path": Path,
    "SmtpTls": _choice("none", "starttls", "tls"),
    "LogFormat": _choice("json", "console"),
}


def parse(name: str, type_name: str, raw: str) -> object:
    try:
        return _PARSERS[type_name](raw)
    except ValueError as exc:
        reason = re.sub(r"^invalid literal for int\(\).*", "expected an integer", str(exc))
        raise ConfigError(f"{name}={raw!r} is invalid: {reason}") from None


def text_of(value: Any) -> str:
    """A value as the variable would spell it (so it parses back to the same value)."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
        return str(int(seconds)) if seconds.is_integer() else repr(seconds)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def url_problems(name: str, url: str) -> list[str]:
    """A base URL a browser can follow: http(s)://host[:port][/path], no query or fragment."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as exc:
        return [f"{name} is not a valid URL: {exc}"]
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return [f"{name} must be an http:// or https:// URL with a host"]
    if parts.query or parts.fragment:
        return [f"{name} must not have a query or a fragment"]
    return []


def networks(text: str) -> Networks:
    """Comma-separated addresses or CIDR blocks (raises ValueError)."""
    return tuple(ipaddress.ip_network(item.strip()) for item in text.split(",") if item.strip())


def mentions(problem: str, variables: set[str]) -> bool:
    """Whether a problem's line names one of these variables."""
    return any(re.search(rf"\b{name}\b", problem) for name in variables)


# Read by the `exportd` client commands (exports, types), never by a replica: set in the
# same shell as a replica's settings, they are not typos.
CLIENT_VARIABLES: Final = frozenset({"EXPORTD_URL", "EXPORTD_TOKEN"})


def unknown_variables(env: Mapping[str, str], prefix: str, known: set[str]) -> list[str]:
    """Variables with the prefix that set nothing: a typo (EXPORTD_RETRY_MAX for ..._S)
    would otherwise leave a default in force without a word."""
    problems = []
    ignored = known | CLIENT_VARIABLES
    for name in sorted(k for k in env if k.startswith(prefix) and k not in ignored):
        # Compared without the prefix every name shares, which would make anything look close.
        close = difflib.get_close_matches(
            name.removeprefix(prefix), [k.removeprefix(prefix) for k in known], n=1, cutoff=0.75
        )
        hint = f"; did you mean {prefix}{close[0]}?" if close else ""
        problems.append(f"{name} is not an exportd setting{hint}")
    return problems


JWT_ALGORITHMS: Final = ("HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384")


def min_secret_bytes(algorithm: str) -> int:
    """An HS* secret's least length: as long as the hash (RFC 7518 3.2)."""
    return int(algorithm[2:]) // 8


def jwt_problems(algorithm: str, secret: str, public_key: str) -> list[str]:
    """The signing key, loaded now and matched to its algorithm: a wrong one is found at
    start, not by every request after it."""
    if algorithm not in JWT_ALGORITHMS:
        return [f"EXPORTD_JWT_ALGORITHM must be one of {', '.join(JWT_ALGORITHMS)}"]
    if algorithm.startswith("HS"):
        if not secret:
            return [f"EXPORTD_JWT_SECRET is required for {algorithm}"]
        needed = min_secret_bytes(algorithm)
        if len(secret.encode()) < needed:
            return [f"EXPORTD_JWT_SECRET must be at least {needed} bytes for {algorithm}"]
        return []
    family = "RSA" if algorithm.startswith("RS") else "EC"
    if "PRIVATE KEY" in public_key:  # it verifies, but must never be here
        return ["EXPORTD_JWT_PUBLIC_KEY holds a private key: give exportd the public one"]
    try:
        jwt.get_algorithm_by_name(algorithm).prepare_key(public_key)
    except (jwt.InvalidKeyError, ValueError, TypeError):
        return [f"EXPORTD_JWT_PUBLIC_KEY must be a PEM {family} public key for {algorithm}"]
    return []
