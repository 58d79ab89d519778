"""structlog set-up: JSON lines in production, readable lines in a terminal. Libraries that
log through the standard library (asyncio, aiohttp, botocore) come out through the same
renderer, so a JSON log stays JSON."""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any, Final, TypeAlias

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


def configure_logging(fmt: LogFormat, level: str) -> None:
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    tail: list[structlog.typing.Processor] = (
        [TRACEBACKS, structlog.processors.JSONRenderer()]
        if fmt == "json"
        else [
            structlog.dev.ConsoleRenderer(
                colors=sys.stderr.isatty(),
                exception_formatter=structlog.dev.plain_traceback,
            )
        ]
    )
    structlog.configure(
        processors=[*shared, *tail],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    # The standard library's records (warnings and up: libraries stay quiet) go through the
    # same processors and renderer.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail],
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
