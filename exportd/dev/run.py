"""`exportd dev`: the embedded default. Starts what is not configured, loads a demo, serves."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import secrets
import signal
import socket
import sys
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Final

from exportd.api.auth import WEBHOOKS_SCOPE, issue_token
from exportd.api.serving import listen
from exportd.config import Settings, as_env, env_for
from exportd.dev.demo import CATALOG_PATH, TENANTS, load_demo
from exportd.dev.inbox import WebhookInbox, register
from exportd.dev.stack import running_stack
from exportd.errors import StartupError
from exportd.export.catalog import Catalog
from exportd.logs import configure_logging
from exportd.server import serve

AUDIENCE: Final = "exportd"
BUCKET: Final = "exportd-dev"
TOKEN_TTL_S: Final = 30 * 24 * 3600
DEFAULT_PORT: Final = 8080


def _secret(data_dir: Path) -> str:
    """A dev JWT secret kept in the data dir, so tokens survive restarts."""
    path = data_dir / "jwt-secret"
    if not path.exists():
        _write_private(path, secrets.token_urlsafe(32))
    return path.read_text().strip()


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (it holds secrets or tokens), from its creation."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    path.chmod(0o600)  # an older file may have been created with wider rights


def run_dev(env: Mapping[str, str], *, port: int | None, data_dir: str) -> None:
    """Raises StartupError (one line for the user) when it cannot start."""
    # Until the server installs its own handlers, SIGTERM must unwind through the stack
    # below too, or the servers started so far would outlive us.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    root = Path(data_dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    given = {k: v for k, v in env.items() if k.startswith("EXPORTD_") and v}
    # One source of truth for where it listens: --port, else EXPORTD_PORT, else 8080.
    host = given.pop("EXPORTD_HOST", "127.0.0.1")
    port = port if port is not None else _port(given.pop("EXPORTD_PORT", str(DEFAULT_PORT)))
    with ExitStack() as running:
        running.enter_context(_only_one(root))
        sock = running.enter_context(_listening(host, port))
        configure_logging("console", env.get("EXPORTD_LOG_LEVEL", "info"))
        config: dict[str, str] = {
            "EXPORTD_CATALOG": str(CATALOG_PATH),
            "EXPORTD_JWT_SECRET": _secret(root),
            "EXPORTD_JWT_AUDIENCE": AUDIENCE,
            "EXPORTD_PUBLIC_URL": f"http://{host}:{port}",
            "EXPORTD_HOST": host,
            "EXPORTD_PORT": str(port),
            "EXPORTD_LOG_FORMAT": "console",
            "EXPORTD_MAIL_FROM": "exportd@localhost",
            # The dev inbox listens on loopback.
            "EXPORTD_WEBHOOK_ALLOW_PRIVATE": "true",
        }
        _serve_stack(root, config, given, sock)


def _serve_stack(
    root: Path, config: dict[str, str], given: dict[str, str], sock: socket.socket
) -> None:
    mail_dir = root / "mail"
    print("exportd dev: starting embedded servers ...", flush=True)
    with (
        running_stack(
            root,
            bucket=BUCKET,
            postgres="EXPORTD_DATABASE_URL" not in given,
            s3="EXPORTD_S3_BUCKET" not in given,
            mail="EXPORTD_SMTP_HOST" not in given,
            mail_dir=mail_dir,
        ) as stack,
        WebhookInbox(root / "webhooks") as inbox,
    ):
        config |= env_for(stack.settings())
        settings = Settings.from_env(config | given)
        catalog = Catalog.load(settings.catalog_path, settings.hook_modules)
        asyncio.run(_prepare(settings, inbox))
        _announce(root, settings, mail_dir, inbox)
        serve(settings, catalog, role="all", sock=sock)
        print("exportd dev: stopping embedded servers ...", flush=True)


async def _prepare(settings: Settings, inbox: WebhookInbox) -> None:
    """The demo data, and each demo tenant's events pointed at the inbox."""
    await load_demo(settings.database_url, schema=settings.database_schema)
    await register(inbox, settings.database_url, settings.database_schema, TENANTS)


def _port(raw: str) -> int:
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        raise StartupError(f"EXPORTD_PORT={raw!r} is not a TCP port")
    return int(raw)


@contextmanager
def _only_one(root: Path) -> Iterator[None]:
    """Hold the data dir's lock for as long as this dev stack runs: two stacks on one data
    dir would fight over PostgreSQL's and S3's files."""
    with (root / "dev.lock").open("a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            raise StartupError(
                f"exportd dev is already running with data dir {root} (pid {holder}); stop it "
                "or pass another --data-dir"
            ) from None
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        yield


@contextmanager
def _listening(host: str, port: int) -> Iterator[socket.socket]:
    try:
        sock = listen(host, port)
    except OSError as exc:
        raise StartupError(
            f"cannot listen on {host}:{port}: {exc.strerror}; pick another with --port "
            "(make dev PORT=...)"
        ) from None
    with sock:
        yield sock


def _announce(root: Path, settings: Settings, mail_dir: Path, inbox: WebhookInbox) -> None:
    secret = settings.jwt_secret
    # Dev tokens may manage webhooks too: the dev user is the whole tenant.
    tokens = {
        t: issue_token(
            secret,
            sub=f"dev-{t}",
            tenant=t,
            email=f"dev@{t}.example",
            audience=settings.jwt_audience,
            ttl_s=TOKEN_TTL_S,
            scopes=(WEBHOOKS_SCOPE,),
        )
        for t in TENANTS
    }
    api_url = f"http://{settings.host}:{settings.port}"
    facts = {
        "api_url": api_url,
        "token": tokens[TENANTS[0]],
        "tokens": tokens,
        "mail_dir": str(mail_dir),
        "webhook_dir": str(inbox.folder),
        "s3_endpoint": settings.s3_endpoint_url,
        "database_url": settings.database_url,
    }
    _write_private(root / "dev.json", json.dumps(facts, indent=2) + "\n")
    replica_env = as_env(settings)
    replica_env.pop("EXPORTD_PORT")
    _write_private(
        root / "dev.env",
        "".join(f"{k}={_shell_quote(v)}\n" for k, v in sorted(replica_env.items())),
    )
    token = tokens[TENANTS[0]]
    print(
        f"""
exportd dev is up.

  API        {api_url}
  Page       {api_url}/#token={token}
  mail       {mail_dir} (each message as an .eml file)
  webhooks   {inbox.folder} (each tenant's events, verified; also printed here)
  S3         {settings.s3_endpoint_url} bucket {settings.s3_bucket}
  facts      {root / "dev.json"}   replica settings: {root / "dev.env"}

  export TOKEN={token}

  curl -s -X POST {api_url}/v1/exports \\
    -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \\
    -d '{{"export": "orders", "params": {{"since": "2025-01-01"}}}}'

  Another replica:  set -a; . {root / "dev.env"}; set +a; {_command()} serve --port 8081
  Ctrl-C stops everything.
""",
        flush=True,
    )


def _command() -> str:
    """How to run this exportd from another shell: the script beside this Python (a venv's
    bin/, which that shell may not have on its PATH), else the name."""
    beside = Path(sys.executable).parent / "exportd"
    return str(beside) if beside.exists() else "exportd"


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _shell_quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"
