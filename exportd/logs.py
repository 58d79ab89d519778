"""structlog set-up: JSON lines in production, readable lines in a terminal. Libraries that
log through the standard library (asyncio, aiohttp, botocore) come out through the same
renderer, so a JSON log stays JSON."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections.abc import MutableMapping
from typing import Any, Final, TypeAlias

import msgspec
import structlog

from exportd.config import LogFormat

# What jobs and subsystems log through: a structlog logger with bound context.
Log: TypeAlias = structlog.typing.FilteringBoundLogger

log = structlog.get_logger(__name__)

# Tracebacks as data, without each frame's local variables: a library's frames hold DSNs with
# passwords and connection parameters (asyncpg's connect), which must never reach a log.
TRACEBACKS: Final = structlog.processors.ExceptionRenderer(
    structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
)


EventDict: TypeAlias = MutableMapping[str, Any]


class UtcTimestamp:
    """`timestamp` as ISO 8601 UTC with six digits of microseconds (truncated), at a quarter
    of structlog's TimeStamper's cost: the date and time of day are formatted once per
    second. Every request logs a line, so this is on the request path."""

    __slots__ = ("_second",)

    def __init__(self) -> None:
        self._second = (-1, "")  # one tuple: a thread never sees a second with another's text

    def __call__(self, _logger: object, _name: str, event: EventDict) -> EventDict:
        now = time.time()
        second, prefix = self._second
        if int(now) != second:
            second = int(now)
            prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = (second, prefix)
        event["timestamp"] = f"{prefix}.{int((now - second) * 1e6):06d}Z"
        return event


_ENCODER: Final = msgspec.json.Encoder()
_PLAIN: Final = frozenset({str, int, float, bool, type(None)})


def render_json(_logger: object, _name: str, event: EventDict) -> bytes:
    """One compact JSON line. A line of plain values (an access line, most lines) is encoded
    by msgspec, at a quarter of `json.dumps`' cost with the check. Anything else (a
    traceback, an object, a string msgspec refuses, such as a lone surrogate) goes through
    `json.dumps` with `repr` for what it cannot encode: no object is written field by field,
    so a dataclass shows only what its repr shows (Settings hides its secrets there)."""
    if all(type(value) in _PLAIN for value in event.values()):
        try:
            return _ENCODER.encode(event)
        except (msgspec.EncodeError, UnicodeEncodeError):
            pass
    return json.dumps(event, default=repr, separators=(",", ":")).encode()


def _render_json_text(logger: object, name: str, event: EventDict) -> str:
    return render_json(logger, name, event).decode()


def configure_logging(fmt: LogFormat, level: str) -> None:
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        UtcTimestamp(),
    ]
    console = structlog.dev.ConsoleRenderer(
        colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
    )
    # structlog's own lines are written as bytes; the standard library's formatter wants text.
    tail, foreign_tail, factory = (
        (
            [TRACEBACKS, render_json],
            [TRACEBACKS, _render_json_text],
            structlog.BytesLoggerFactory(sys.stderr.buffer),
        )
        if fmt == "json"
        else ([console], [console], structlog.PrintLoggerFactory(sys.stderr))
    )
    structlog.configure(
        processors=[*shared, *tail],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
    # The standard library's records (warnings and up: libraries stay quiet) go through the
    # same processors and renderer.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *foreign_tail],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(logging.WARNING)


def log_loop_exceptions(loop: asyncio.AbstractEventLoop) -> None:
    """What asyncio would print itself (a task's unretrieved error, a failed callback) is
    logged as an event instead."""

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        log.error(
            "asyncio.exception",
            message=context.get("message"),
            exc_info=context.get("exception"),
        )

    loop.set_exception_handler(handle)
