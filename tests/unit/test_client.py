"""The client's parts that need no server: where the server and token come from, the
automatic Idempotency-Key's state, -p typing, and exports read from partial JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from exportd.cli.params import parse_params
from exportd.client.config import resolve
from exportd.client.errors import ClientConfigError
from exportd.client.pending import KEY_PREFIX, caller, claim, fingerprint
from exportd.client.views import View
from tests.support.tokens import make_token

DEV_URL = "http://0.0.0.0:8080"


def dev_folder(tmp_path: Path) -> Path:
    (tmp_path / ".exportd-dev").mkdir()
    (tmp_path / ".exportd-dev" / "dev.json").write_text(
        json.dumps({"api_url": DEV_URL, "token": "dev-token"})
    )
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    return work


def test_flags_beat_variables_beat_dev_json(tmp_path: Path) -> None:
    work = dev_folder(tmp_path)
    env = {"EXPORTD_URL": "https://exports.example/", "EXPORTD_TOKEN": "env-token"}

    from_dev = resolve(url=None, token=None, env={}, cwd=work)
    from_env = resolve(url=None, token=None, env=env, cwd=work)
    from_flags = resolve(url="http://127.0.0.1:9000", token="flag-token", env=env, cwd=work)

    assert (from_dev.url, from_dev.token) == ("http://127.0.0.1:8080", "dev-token")
    assert (from_env.url, from_env.token) == ("https://exports.example", "env-token")
    assert (from_flags.url, from_flags.token) == ("http://127.0.0.1:9000", "flag-token")
    assert from_env.source == "server from EXPORTD_URL, token from EXPORTD_TOKEN"


def test_the_dev_token_goes_only_to_the_dev_server(tmp_path: Path) -> None:
    work = dev_folder(tmp_path)

    with pytest.raises(ClientConfigError, match=r"no token for https://exports\.example"):
        resolve(url="https://exports.example", token=None, env={}, cwd=work)
    assert resolve(url="http://127.0.0.1:8080", token=None, env={}, cwd=work).token == "dev-token"
    with pytest.raises(ClientConfigError, match="no server"):
        resolve(url=None, token=None, env={}, cwd=tmp_path.parent)


def test_a_pending_key_is_reused_until_forgotten(tmp_path: Path) -> None:
    request = {"export": "orders", "params": {"since": "2025-01-01"}}
    made = fingerprint(url="http://x", token=make_token(), request=request, output="/o.csv")

    first = claim(tmp_path, made)
    first.remember("export-1")
    again = claim(tmp_path, made)
    forced = claim(tmp_path, made, new=True)
    forced.forget()
    after = claim(tmp_path, made)

    assert first.key.startswith(KEY_PREFIX)
    assert (again.key, again.export_id) == (first.key, "export-1")
    assert forced.key != first.key
    assert after.key not in (first.key, forced.key)


def test_the_fingerprint_names_the_caller_not_the_token(tmp_path: Path) -> None:
    request = {"export": "orders", "params": {}}
    same = [make_token(ttl_s=ttl) for ttl in (60, 120)]  # renewed: the same user

    prints = {fingerprint(url="u", token=t, request=request, output="o") for t in same}
    other = fingerprint(url="u", token=make_token(sub="user-2"), request=request, output="o")
    elsewhere = fingerprint(url="u", token=same[0], request=request, output="p")

    assert len(prints) == 1
    assert other not in prints and elsewhere not in prints
    assert set(caller("not-a-jwt")) == {"token_sha256"}


def test_params_are_typed_as_the_catalog_declares() -> None:
    export_type = {"params": [{"name": "rows", "type": "int"}, {"name": "flag", "type": "bool"}]}

    params = parse_params(["rows=5", "flag=off", "since=2025-01-01", "raw:=[1, 2]"], export_type)

    assert params == {"rows": 5, "flag": False, "since": "2025-01-01", "raw": [1, 2]}
    with pytest.raises(ClientConfigError, match="not a whole number"):
        parse_params(["rows=five"], export_type)


def test_an_export_without_queue_or_full_progress_still_reads() -> None:
    older = View.of({"id": "e", "export": "orders", "status": "running", "progress": {"rows": 7}})
    queued = View.of(
        {"id": "e", "status": "queued", "queue": {"position": 2, "ahead": 1, "waiting_for": None}}
    )

    assert older.summary() == "7 rows"
    assert older.percent is None and older.stage == "running"
    assert queued.summary() == "#2 in line · 1 ahead · waiting for a free worker"
    assert View.of({}).status == "unknown"
