"""The server's commands: serve, migrate, dev, token."""

from __future__ import annotations

import argparse
import asyncio
import socket
from collections.abc import Mapping

import asyncpg

from exportd.api.auth import issue_token
from exportd.api.keys import Role
from exportd.api.serving import listen
from exportd.cli.common import fail
from exportd.config import SCHEMA_NAME, Settings, env_name
from exportd.db.migrate import migrate
from exportd.envvars import JWT_ALGORITHMS, dsn_problems, min_secret_bytes
from exportd.errors import ConfigError, StartupError
from exportd.export.catalog import Catalog
from exportd.logs import configure_logging
from exportd.preflight import preflight
from exportd.server import serve
from exportd.text import is_address

ROLES: dict[str, Role] = {"all": "all", "api": "api", "worker": "worker"}


def run(args: argparse.Namespace, env: Mapping[str, str]) -> None:
    """Run the server-side command `args` names."""
    if args.command == "dev":
        run_dev(env, port=args.port, data_dir=args.data_dir)
    elif args.command == "migrate":
        run_migrate(env)
    elif args.command == "token":
        print(mint(env, args))
    else:
        run_serve(env, role=args.role, host=args.host, port=args.port)


def load_settings(env: Mapping[str, str]) -> tuple[Settings, Catalog]:
    try:
        settings = Settings.from_env(env)
    except ConfigError as exc:
        fail(exc.detail)
    try:
        catalog = Catalog.load(settings.catalog_path, settings.hook_modules)
    except ConfigError as exc:
        fail(f"EXPORTD_CATALOG: {exc.detail}")
    return settings, catalog


def run_serve(env: Mapping[str, str], *, role: str, host: str | None, port: int | None) -> None:
    settings, catalog = load_settings(env)
    configure_logging(settings.log_format, settings.log_level)
    sock = bind(host or settings.host, settings.port if port is None else port)
    problems = asyncio.run(preflight(settings, catalog, builds=role != "api"))
    if problems:
        fail("\n".join(problems), 1)
    serve(settings, catalog, role=ROLES[role], sock=sock)


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything else starts: a port in use is one line."""
    try:
        return listen(host, port)
    except OSError as exc:
        fail(f"cannot listen on {host}:{port} (EXPORTD_HOST, EXPORTD_PORT): {exc.strerror}", 1)


def run_migrate(env: Mapping[str, str]) -> None:
    try:
        dsn, schema = database_settings(env)
    except ConfigError as exc:
        fail(exc.detail)
    configure_logging("json", "info")
    try:
        applied = asyncio.run(migrate(dsn, schema=schema))
    # ValueError and InterfaceError: an option in the URL asyncpg refuses (sslmode=bogus).
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
        fail(f"cannot migrate EXPORTD_DATABASE_URL: {exc}", 1)
    names = ", ".join(m.name for m in applied) or "none needed"
    print(f"exportd: applied {len(applied)} migration(s): {names}")


def mint(env: Mapping[str, str], args: argparse.Namespace) -> str:
    """A token `serve` accepts: the same secret rules, and claims it will not refuse."""
    problems = []
    try:
        secret, algorithm, audience, issuer = signing_settings(env)
    except ConfigError as exc:
        problems.append(exc.detail)
    if not args.sub.strip() or not args.tenant.strip():
        problems.append("--sub and --tenant must not be empty")
    if args.email is not None and not is_address(args.email):
        problems.append(f"--email {args.email!r} is not a plain mail address")
    if problems:
        fail("\n".join(problems))
    return issue_token(
        secret,
        sub=args.sub,
        tenant=args.tenant,
        email=args.email,
        audience=audience,
        ttl_s=args.ttl,
        algorithm=algorithm,
        issuer=issuer or None,
        scopes=tuple(args.scope),
    )


def database_settings(env: Mapping[str, str]) -> tuple[str, str]:
    """(database URL, schema) alone, for `exportd migrate`; ConfigError when either is bad."""
    dsn = env.get(env_name("database_url"), "")
    schema = env.get(env_name("database_schema")) or "exportd"
    problems = (
        dsn_problems("EXPORTD_DATABASE_URL", dsn) if dsn else ["EXPORTD_DATABASE_URL is required"]
    )
    if not SCHEMA_NAME.fullmatch(schema):
        problems.append("EXPORTD_DATABASE_SCHEMA must be a lower-case SQL name (a-z, 0-9, _)")
    if problems:
        raise ConfigError("\n".join(problems))
    return dsn, schema


def signing_settings(env: Mapping[str, str]) -> tuple[str, str, str, str]:
    """(HS* secret, algorithm, audience, issuer) alone, for `exportd token`; ConfigError
    listing what is missing or wrong."""
    secret = env.get(env_name("jwt_secret"), "")
    algorithm = env.get(env_name("jwt_algorithm")) or "HS256"
    audience = env.get(env_name("jwt_audience"), "")
    problems = []
    if not algorithm.startswith("HS") or algorithm not in JWT_ALGORITHMS:
        problems.append("EXPORTD_JWT_ALGORITHM must be HS256, HS384 or HS512 to mint tokens")
    if not secret:
        problems.append("EXPORTD_JWT_SECRET is required to mint tokens")
    elif algorithm in JWT_ALGORITHMS and len(secret.encode()) < min_secret_bytes(algorithm):
        needed = min_secret_bytes(algorithm)
        problems.append(f"EXPORTD_JWT_SECRET must be at least {needed} bytes for {algorithm}")
    if not audience:
        problems.append("EXPORTD_JWT_AUDIENCE is required")
    if problems:
        raise ConfigError("\n".join(problems))
    return secret, algorithm, audience, env.get(env_name("jwt_issuer"), "")


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
