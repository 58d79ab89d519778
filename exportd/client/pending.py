"""The automatic Idempotency-Key of `exportd export`, kept in a small state file until the
command has what it came for.

A rerun of the same command must not create a second export (the first run may have created
it and lost the answer to a network error), yet the same command run again tomorrow, after
it succeeded, wants a fresh export. So the key is not derived from the request alone:

- The command's fingerprint is the sha256 of the server URL, the caller (the token's issuer,
  tenant and subject, read without verifying; the token's hash if it is no JWT, so a renewed
  token is still the same caller), the request body and where the file goes (the absolute
  -o path, or the working folder).
- The first run writes `<cache>/exportd/pending/<fingerprint>.json` holding a random key
  *before* it sends the POST, and sends that key. A rerun finds the file and sends the same
  key: the server answers with the export it already has (`Idempotent-Replayed`).
- The file is removed once the command is finished with the export: the file downloaded
  and verified, the export failed, was canceled or expired (rerunning is then a retry, and
  gets a new export), or created with --no-wait. It stays when the command stopped on a
  network error or a Ctrl-C that left the export running.
- `--new` ignores (and replaces) the file. Files older than a week are swept; the server
  forgets keys after its EXPORTD_IDEMPOTENCY_TTL_S anyway (24 h by default), after which a
  rerun creates a new export.

`<cache>` is $XDG_CACHE_HOME, else ~/.cache."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

KEY_PREFIX: Final = "exportd-cli-"
KEEP_S: Final = 7 * 24 * 3600


def state_dir(env: Mapping[str, str]) -> Path:
    cache = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".cache")
    return Path(cache) / "exportd" / "pending"


def caller(token: str) -> dict[str, Any]:
    """Who the token speaks for, from its JWT claims (unverified: this only names a file)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        if not isinstance(claims, dict):
            raise TypeError("claims are not an object")
        return {k: claims.get(k) for k in ("iss", "tenant", "sub")}
    except (IndexError, ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        return {"token_sha256": hashlib.sha256(token.encode()).hexdigest()}


def fingerprint(*, url: str, token: str, request: Mapping[str, Any], output: str) -> str:
    canonical = json.dumps(
        {"url": url, "caller": caller(token), "request": request, "output": output},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(slots=True)
class Pending:
    """One command's key, and the export it created (once known)."""

    path: Path
    key: str
    export_id: str | None = None

    def remember(self, export_id: str) -> None:
        """Record the export's id beside the key."""
        self.export_id = export_id
        _write(self.path, {"key": self.key, "export_id": export_id})

    def forget(self) -> None:
        self.path.unlink(missing_ok=True)


def _write(path: Path, state: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_suffix(f".{secrets.token_hex(4)}.tmp")
    temporary.write_text(json.dumps(state))
    os.replace(temporary, path)


def _sweep(folder: Path) -> None:
    cutoff = time.time() - KEEP_S
    for old in folder.glob("*.json"):
        try:
            if old.stat().st_mtime < cutoff:
                old.unlink()
        except OSError:
            continue  # another command's, gone meanwhile


def claim(folder: Path, fingerprint: str, *, new: bool = False) -> Pending:
    """The key for this command: the pending one of an earlier run with the same fingerprint,
    or (with `new`, or none pending) a fresh one, saved before it is used."""
    path = folder / f"{fingerprint}.json"
    if folder.is_dir():
        _sweep(folder)
    if not new:
        try:
            state = json.loads(path.read_text())
            key, export_id = state["key"], state.get("export_id")
            if isinstance(key, str) and key.startswith(KEY_PREFIX):
                return Pending(path, key, export_id if isinstance(export_id, str) else None)
        except (OSError, ValueError, KeyError, TypeError):
            pass  # none, or unreadable: start afresh
    key = KEY_PREFIX + secrets.token_hex(16)
    _write(path, {"key": key})
    return Pending(path, key)
