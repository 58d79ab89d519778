"""The client's parts that need no server: where the server and token come from, the
automatic Idempotency-Key's state, -p typing, exports read from partial JSON and fitted to
the room there is, the arguments, connection errors, and a Ctrl-C while it starts."""

from __future__ import annotations

import errno
import importlib.abc
import io
import json
import os
import socket
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from exportd.cli import main
from exportd.cli.params import parse_params
from exportd.cli.parser import STATUS_NAMES, build
from exportd.cli.render import export_facts
from exportd.client.api import Client
from exportd.client.config import Target, resolve
from exportd.client.errors import ClientConfigError, Unreachable
from exportd.client.network import Backoff
from exportd.client.pending import KEY_PREFIX, KEY_TTL_S, caller, claim, fingerprint
from exportd.client.progress import Plain
from exportd.client.views import View, fit
from exportd.model import Status
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


def test_a_pending_key_lasts_a_day_and_can_be_renewed(tmp_path: Path) -> None:
    made = fingerprint(url="http://x", token="t", request={"export": "orders"}, output="o")
    first = claim(tmp_path, made)
    first.remember("export-1")

    first.renew()  # the export it named is finished: a new key, no export yet
    renewed = claim(tmp_path, made)
    state = json.loads(first.path.read_text())
    first.path.write_text(json.dumps(state | {"created_at": time.time() - KEY_TTL_S - 1}))
    stale = claim(tmp_path, made)

    assert first.fresh and not renewed.fresh
    assert (renewed.key, renewed.export_id) == (first.key, None)
    assert stale.fresh and stale.key != first.key


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
    assert queued.summary() == "#2 in line · 1 ahead"  # no reason given: none claimed
    assert View.of({}).status == "unknown"


def queued(queue: dict[str, Any] | None) -> dict[str, Any]:
    return {"id": "e1", "export": "orders", "status": "queued", "queue": queue}


def test_a_just_created_export_is_just_queued() -> None:
    # The answer to a create has "queue": null: nothing counted yet, nothing claimed.
    stream = io.StringIO()
    plain = Plain(stream)

    plain.export(queued(None))
    plain.export(queued({"position": 3, "ahead": 2, "waiting_for": "worker"}))  # at once
    plain.export(queued({"position": 3, "ahead": 2, "waiting_for": "tenant_limit"}))  # < 2 s

    assert View.of(queued(None)).summary() == ""
    assert View.of({"id": "e1", "status": "queued"}).summary() == ""
    assert stream.getvalue().splitlines() == [
        "export e1 queued",
        "export e1 queued: #3 in line · 2 ahead · waiting for a worker",
    ]
    limited = View.of(queued({"position": 3, "ahead": 2, "waiting_for": "tenant_limit"}))
    assert limited.summary() == "#3 in line · 2 ahead · waiting for your tenant's earlier exports"
    assert ("queue", "#3 in line · 2 ahead · waiting for your tenant's earlier exports") in (
        export_facts(queued({"position": 3, "ahead": 2, "waiting_for": "tenant_limit"}))
    )
    assert "queue" not in dict(export_facts(queued(None)))


def test_a_line_loses_its_least_important_parts_first() -> None:
    counted = {"position": 20, "ahead": 19, "waiting_for": "tenant_limit"}
    view = replace(View.of(queued(counted)), starts_in=7.0)  # "estimated_start_at": in 7 s
    building = View.of(
        {
            "status": "running",
            "progress": {
                "phase": "building",
                "rows": 2197,
                "rows_estimate": 10000,
                "bytes": 2_300_000,
                "percent": 21.97,
                "rate_rows_s": 1234.4,
                "eta_s": 6.3,
            },
        }
    )

    shown = {width: fit(view.summary_variants(), width) for width in (90, 80, 70, 50, 40, 10)}
    rows = {width: fit(building.summary_variants(), width) for width in (70, 50, 30, 20, 3)}

    assert shown == {
        90: "#20 in line · 19 ahead · waiting for your tenant's earlier exports · starts in ~0:07",
        80: "#20 in line · waiting for your tenant's earlier exports · starts in ~0:07",
        70: "#20 in line · waiting for your tenant's earlier exports · ~0:07",
        50: "#20 in line · tenant limit · ~0:07",
        40: "#20 in line · tenant limit · ~0:07",
        10: "#20 in line",  # too long even so: the bar cuts it with an ellipsis
    }
    assert rows == {
        70: "21% · 2,197 of ~10,000 rows · 1,234 rows/s · ETA 0:06 · 2.3 MB",
        50: "21% · 2,197 of ~10,000 rows · ETA 0:06 · 2.3 MB",
        30: "21% · 2,197 rows · ETA 0:06",
        20: "21% · ETA 0:06",
        3: "21%",
    }


def test_a_finished_export_says_why_once() -> None:
    stream = io.StringIO()
    canceled = {"id": "e1", "export": "orders", "status": "canceled"}

    Plain(stream).export(canceled)

    assert stream.getvalue() == ""  # the command's error line says it: "export e1 canceled: ..."
    assert View.of(canceled).summary() == ""
    assert View.of(canceled).error_text() == "the export was canceled"


def test_show_names_format_and_compression_and_status_before_phase() -> None:
    running = {
        "id": "e1",
        "export": "orders",
        "status": "running",
        "format": "parquet",
        "compression": None,
        "progress": {"phase": "uploading", "rows": 5},
    }

    facts = dict(export_facts(running))

    assert (facts["format"], facts["compression"]) == ("parquet", "none")
    assert facts["status"] == "running (uploading)"
    assert View.of(running | {"compression": "zstd"}).status_text == "running (uploading)"
    assert View.of({"status": "queued", "progress": {"phase": "queued"}}).status_text == "queued"
    assert dict(export_facts(running | {"compression": "zstd"}))["compression"] == "zstd"


def test_ls_filters_on_the_apis_statuses_only(capsys: pytest.CaptureFixture[str]) -> None:
    assert tuple(Status) == STATUS_NAMES
    assert build().parse_args(["exports", "ls", "--status", "running"]).status == "running"

    with pytest.raises(SystemExit) as refused:
        build().parse_args(["exports", "ls", "--status", "building"])

    assert refused.value.code == 2
    error = capsys.readouterr().err
    assert "invalid choice: 'building'" in error
    assert all(f"'{status}'" in error for status in STATUS_NAMES)


async def test_a_refused_connection_is_named_without_aiohttps_words() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    target = Target(f"http://127.0.0.1:{port}", "token", "test")

    async with Client(target, backoff=Backoff(retries=0)) as api:
        with pytest.raises(Unreachable) as failed:
            await api.types()

    assert str(failed.value) == (
        f"cannot reach http://127.0.0.1:{port}: {os.strerror(errno.ECONNREFUSED)}"
    )


class InterruptedImport(importlib.abc.MetaPathFinder):
    """Ctrl-C while the client's modules load: their import raises KeyboardInterrupt."""

    def find_spec(self, name: str, *_: object) -> None:
        if name == "exportd.cli.remote":
            raise KeyboardInterrupt


def test_ctrl_c_while_starting_is_one_line_and_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delitem(sys.modules, "exportd.cli.remote", raising=False)
    monkeypatch.delattr("exportd.cli.remote", raising=False)
    monkeypatch.setattr(sys, "meta_path", [InterruptedImport(), *sys.meta_path])

    with pytest.raises(SystemExit) as stopped:
        main(["types", "--url", "http://127.0.0.1:9", "--token", "t"])

    assert stopped.value.code == 130
    assert capsys.readouterr().err == "exportd: interrupted\n"
