"""Where the client finds its server and token: flags, then EXPORTD_URL / EXPORTD_TOKEN, then
the `.exportd-dev/dev.json` an `exportd dev` in this folder (or a parent) wrote.

The dev token is used only with the dev URL: a token meant for a laptop's dev stack is never
sent to a server named by a flag or the environment."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit, urlunsplit

from exportd.client.errors import ClientConfigError

URL_VAR: Final = "EXPORTD_URL"
TOKEN_VAR: Final = "EXPORTD_TOKEN"
DEV_FILE: Final = Path(".exportd-dev") / "dev.json"
# What a dev stack may announce as its listen address; a client connects to loopback.
ANY_ADDRESS: Final = ("0.0.0.0", "::", "[::]")


@dataclass(frozen=True, slots=True)
class Target:
    """A server and the token to use with it; `source` says where each came from."""

    url: str
    token: str
    source: str


def find_dev_file(start: Path) -> Path | None:
    """The nearest `.exportd-dev/dev.json` in `start` or its parents."""
    for folder in (start, *start.parents):
        candidate = folder / DEV_FILE
        if candidate.is_file():
            return candidate
    return None


def read_dev_file(path: Path) -> tuple[str, str]:
    """(api_url, token) from a dev.json."""
    try:
        facts = json.loads(path.read_text())
        url, token = facts["api_url"], facts["token"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ClientConfigError(f"cannot read {path}: {exc}") from None
    if not isinstance(url, str) or not isinstance(token, str):
        raise ClientConfigError(f"{path}: api_url and token must be strings")
    return url, token


def normalize_url(url: str, where: str) -> str:
    """An http(s) base URL without a trailing slash; a wildcard listen address becomes
    loopback."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ClientConfigError(f"{where}: {url!r} is not an http(s) URL")
    netloc = parts.netloc
    for wildcard in ANY_ADDRESS:
        if netloc == wildcard or netloc.startswith(f"{wildcard}:"):
            netloc = "127.0.0.1" + netloc[len(wildcard) :]
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def pick(flag: str | None, flag_name: str, env: Mapping[str, str], var: str) -> tuple[str, str]:
    """A value and where it came from: the flag, else the variable; ("", "") without either."""
    if flag:
        return flag, flag_name
    if env.get(var):
        return env[var], var
    return "", ""


def resolve(*, url: str | None, token: str | None, env: Mapping[str, str], cwd: Path) -> Target:
    """The server and token to use: each from its flag, else its variable, else dev.json."""
    found_url, url_from = pick(url, "--url", env, URL_VAR)
    found_token, token_from = pick(token, "--token", env, TOKEN_VAR)
    if not (found_url and found_token) and (dev_file := find_dev_file(cwd)) is not None:
        dev_url, dev_token = read_dev_file(dev_file)
        if not found_url:
            found_url, url_from = dev_url, str(dev_file)
        same_server = normalize_url(found_url, url_from) == normalize_url(dev_url, str(dev_file))
        if not found_token and same_server:
            found_token, token_from = dev_token, str(dev_file)
    if not found_url:
        raise ClientConfigError(
            f"no server: pass --url, set {URL_VAR}, or run next to `exportd dev`"
        )
    if not found_token.strip():
        raise ClientConfigError(f"no token for {found_url}: pass --token or set {TOKEN_VAR}")
    sources = (
        f"server and token from {url_from}"
        if url_from == token_from
        else f"server from {url_from}, token from {token_from}"
    )
    return Target(normalize_url(found_url, url_from), found_token.strip(), sources)
