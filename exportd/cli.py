"""The `exportd` command: serve, migrate, dev. The only module that reads the environment."""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
from collections.abc import Mapping, Sequence
from typing import NoReturn

import asyncpg

from exportd.api.serving import listen
from exportd.config import Settings, database_settings
from exportd.db.migrate import migrate
from exportd.errors import ConfigError, StartupError
from exportd.export.catalog import Catalog
from exportd.logs import configure_logging
from exportd.preflight import preflight
from exportd.server import serve


def fail(message: str, code: int = 2) -> NoReturn:
    """Stop with `message`, one `exportd: ` line per line of it."""
    for line in message.splitlines():
        print(f"exportd: {line}", file=sys.stderr)
    raise SystemExit(code)


def load_settings(env: Mapping[str, str]) -> tuple[Settings, Catalog]:
    try:
        settings = Settings.from_env(env)
        catalog = Catalog.load(settings.catalog_path, settings.hook_modules)
    except ConfigError as exc:
        fail(exc.detail)
    return settings, catalog


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="exportd", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_serve = sub.add_parser("serve", help="run the API and/or the workers")
    p_serve.add_argument("--role", choices=("all", "api", "worker"), default="all")
    p_serve.add_argument("--host", help="listen address (default: EXPORTD_HOST)")
    p_serve.add_argument("--port", type=int, help="listen port (default: EXPORTD_PORT)")
    sub.add_parser("migrate", help="apply missing database migrations")
    p_dev = sub.add_parser("dev", help="run everything locally on embedded servers")
    p_dev.add_argument("--port", type=int, help="listen port (default: EXPORTD_PORT or 8080)")
    p_dev.add_argument("--data-dir", default=".exportd-dev")
    args = parser.parse_args(argv)

    if args.command == "dev":
        run_dev(os.environ, port=args.port, data_dir=args.data_dir)
        return
    if args.command == "migrate":
        try:
            dsn, schema = database_settings(os.environ)
        except ConfigError as exc:
            fail(exc.detail)
        configure_logging("json", "info")
        try:
            applied = asyncio.run(migrate(dsn, schema=schema))
        except (OSError, asyncpg.PostgresError) as exc:
            fail(f"cannot migrate EXPORTD_DATABASE_URL: {exc}", 1)
        print(
            f"exportd: applied {len(applied)} migration(s): "
            f"{', '.join(m.name for m in applied) or 'none needed'}"
        )
        return
    settings, catalog = load_settings(os.environ)
    configure_logging(settings.log_format, settings.log_level)
    sock = bind(args.host or settings.host, args.port or settings.port)
    problems = asyncio.run(preflight(settings, catalog, builds=args.role != "api"))
    if problems:
        fail("\n".join(problems), 1)
    serve(settings, catalog, role=args.role, sock=sock)


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything else starts: a port in use is one line."""
    try:
        return listen(host, port)
    except OSError as exc:
        fail(f"cannot listen on {host}:{port} (EXPORTD_HOST, EXPORTD_PORT): {exc.strerror}", 1)


def run_dev(env: Mapping[str, str], *, port: int | None, data_dir: str) -> None:
    """`exportd dev`: its servers (PostgreSQL, S3, an SMTP sink) come with the dev extra, so
    the dev stack is imported only when asked for."""
    try:
        from exportd.dev.run import run_dev as run_dev_stack
    except ImportError as exc:
        fail(f"`exportd dev` needs the dev extra (pip install 'exportd[dev]'): {exc}")
    try:
        run_dev_stack(env, port=port, data_dir=data_dir)
    except StartupError as exc:
        fail(str(exc), 1)
