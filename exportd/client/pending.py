"""The automatic Idempotency-Key of `exportd export`, kept in a small state file until the
command has what it came for.

A rerun of the same command must not create a second export (the first run may have created
it and lost the answer to a network error), yet the same command run again tomorrow, after
it succeeded, wants a fresh export. So the key is not derived from the request alone:

- The command's fingerprint is the sha256 of the server URL, the caller (the token's issuer,
  tenant and subject, read without verifying; the token's hash if it is no JWT, so a renewed
  token is still the same caller), the request body and where the file goes (the absolute
  -o path, or the working folder). --no-wait is not part of it: `exportd export ... --no-wait`
  and the same command without it name the same export.
- The first run writes `<cache>/exportd/pending/<fingerprint>.json` holding a random key
  *before* it sends the POST, and sends that key. A rerun finds the file and sends the same
  key: the server answers with the export it already has (`Idempotent-Replayed`), and the
  export's id is recorded beside the key.
- What the command came for decides when the file goes:
  - Without --no-wait, the file. The state file is removed once the file is downloaded and
    verified, or the export failed, was canceled or expired (rerunning is then a retry, and
    gets a new export). It stays when the command stopped on a network error, a Ctrl-C that
    left the export running, or a file it would not overwrite: a rerun picks the export up
    (and downloads its file if it is done meanwhile).
  - With --no-wait, an export on its way. The state file stays after the create, so a rerun
    (after a network error, or just run again) answers with the same export ("export ID
    already exists (created by an earlier run)") instead of queueing a second one. A rerun
    with --no-wait that finds that export finished (succeeded, failed, canceled or expired)
    drops the key and creates a new export.
- A key is reused for a day at most (KEY_TTL_S; the server forgets keys after its
  EXPORTD_IDEMPOTENCY_TTL_S, 24 h by default, and would create a new export anyway): after
  that the same command gets a new key, and a new export. Older files are swept.
- `--new` ignores (and replaces) the file: always a new export.

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
KEY_TTL_S: Final = 24 * 3600


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
    """One command's key, and the export it created (once known). `fresh`: the key is new,
    no earlier run sent it."""

    path: Path
    key: str
    export_id: str | None = None
    created_at: float = 0.0
    fresh: bool = False

    def remember(self, export_id: str) -> None:
        """Record the export's id beside the key."""
        self.export_id = export_id
        self.save()

    def forget(self) -> None:
        self.path.unlink(missing_ok=True)

    def renew(self) -> None:
        """A fresh key in place of this one (the export it named is done with)."""
        self.key, self.export_id = new_key(), None
        self.created_at, self.fresh = time.time(), True
        self.save()

    def save(self) -> None:
        state: dict[str, Any] = {"key": self.key, "created_at": self.created_at}
        if self.export_id is not None:
            state["export_id"] = self.export_id
        _write(self.path, state)


def new_key() -> str:
    return KEY_PREFIX + secrets.token_hex(16)


def _write(path: Path, state: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_suffix(f".{secrets.token_hex(4)}.tmp")
    temporary.write_text(json.dumps(state))
    os.replace(temporary, path)


def _sweep(folder: Path) -> None:
    cutoff = time.time() - KEY_TTL_S
    for old in folder.glob("*.json"):
        try:
            if old.stat().st_mtime < cutoff:
                old.unlink()
        except OSError:
            continue  # another command's, gone meanwhile


def claim(folder: Path, fingerprint: str, *, new: bool = False) -> Pending:
    """The key for this command: the pending one of an earlier run with the same fingerprint
    (less than a day old), or (with `new`, or none pending) a fresh one, saved before it is
    used."""
    path = folder / f"{fingerprint}.json"
    if folder.is_dir():
        _sweep(folder)
    if not new:
        try:
            state = json.loads(path.read_text())
            key, export_id = state["key"], state.get("export_id")
            created_at = state.get("created_at")
            if not isinstance(created_at, int | float):  # an older client's file
                created_at = path.stat().st_mtime
            recent = time.time() - created_at < KEY_TTL_S
            if isinstance(key, str) and key.startswith(KEY_PREFIX) and recent:
                found = export_id if isinstance(export_id, str) else None
                return Pending(path, key, found, float(created_at))
        except (OSError, ValueError, KeyError, TypeError):
            pass  # none, or unreadable: start afresh
    pending = Pending(path, new_key(), created_at=time.time(), fresh=True)
    pending.save()
    return pending
