"""The log's shape where it matters for safety: a traceback never carries a frame's locals
(a library's frames hold DSNs with passwords)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import structlog

from exportd.config import LogFormat
from exportd.logs import configure_logging

SECRET = "s3cretPW-in-a-local"


@pytest.fixture(autouse=True)
def default_logging() -> Iterator[None]:
    """configure_logging binds the captured stderr, closed after the test: undo it."""
    yield
    structlog.reset_defaults()
    logging.getLogger().handlers = []


def connect(dsn: str) -> None:
    password = SECRET  # noqa: F841 - a local, as asyncpg's connect() has them
    raise ConnectionRefusedError("the database system is shutting down")


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_a_logged_traceback_holds_no_local_variable(
    fmt: LogFormat, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(fmt, "info")
    try:
        connect(f"postgresql://app:{SECRET}@db/app")
    except ConnectionRefusedError:
        structlog.get_logger("t").exception("ours.failed")
        logging.getLogger("asyncpg.pool").warning("theirs failed", exc_info=True)

    err = capsys.readouterr().err
    assert "the database system is shutting down" in err  # the traceback is there
    assert SECRET not in err
    if fmt == "json":
        lines = [json.loads(line) for line in err.splitlines() if line.strip()]
        assert [line["event"] for line in lines] == ["ours.failed", "theirs failed"]


def test_a_json_line_survives_what_the_fast_encoder_refuses(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("json", "info")
    structlog.get_logger("t").info("odd.text", name="caf\u00e9 \udc80")

    (line,) = capsys.readouterr().err.splitlines()
    assert json.loads(line)["name"] == "caf\u00e9 \udc80"  # a lone surrogate, escaped


@dataclass
class Credentials:
    user: str
    password: str = field(repr=False)


def test_an_object_is_logged_as_its_repr_never_field_by_field(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("json", "info")
    structlog.get_logger("t").info("with.object", who=Credentials("app", SECRET))

    err = capsys.readouterr().err
    assert json.loads(err)["who"] == "Credentials(user='app')"
    assert SECRET not in err
