"""`exportd dev`: the embedded default. Starts what is not configured, loads a demo, serves."""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Final

from exportd import db
from exportd.auth import issue_token
from exportd.config import Settings, as_env
from exportd.devstack import EmbeddedPostgres, EmbeddedS3, MailSink
from exportd.migrations import migrate

DEMO_DIR: Final = Path(__file__).parent / "demo"
DEMO_TENANTS: Final = ("acme", "globex", "initech")
AUDIENCE: Final = "exportd"
BUCKET: Final = "exportd-dev"
S3_KEY: Final = "exportd-dev"
S3_SECRET: Final = "exportd-dev-secret-key"
TOKEN_TTL_S: Final = 30 * 24 * 3600


def _secret(data_dir: Path) -> str:
    """A dev JWT secret kept in the data dir, so tokens survive restarts."""
    path = data_dir / "jwt-secret"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


async def load_demo(dsn: str) -> None:
    await migrate(dsn)
    conn = await db.connect(dsn)
    try:
        await conn.execute((DEMO_DIR / "schema.sql").read_text())
    finally:
        await conn.close()


def run_dev(env: Mapping[str, str], *, port: int, data_dir: str) -> None:
    from exportd.catalog import Catalog
    from exportd.cli import serve  # cli imports this module lazily; avoid a cycle at import time
    from exportd.logs import configure_logging

    # Until the server installs its own handlers, SIGTERM must unwind through the ExitStack
    # below too, or the servers started so far would outlive us.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    root = Path(data_dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    configure_logging("console", env.get("EXPORTD_LOG_LEVEL", "info"))
    given = {k: v for k, v in env.items() if k.startswith("EXPORTD_") and v}
    config: dict[str, str] = {
        "EXPORTD_CATALOG": str(DEMO_DIR / "catalog.toml"),
        "EXPORTD_JWT_SECRET": _secret(root),
        "EXPORTD_JWT_AUDIENCE": AUDIENCE,
        "EXPORTD_HOST": "127.0.0.1",
        "EXPORTD_PORT": str(port),
        "EXPORTD_LOG_FORMAT": "console",
        "EXPORTD_MAIL_FROM": "exportd@localhost",
    }
    with ExitStack() as stack:
        print("exportd dev: starting embedded servers ...", flush=True)
        if "EXPORTD_DATABASE_URL" not in given:
            pg = EmbeddedPostgres.start(root / "postgres")
            stack.callback(pg.stop)
            config["EXPORTD_DATABASE_URL"] = pg.uri
        if "EXPORTD_S3_BUCKET" not in given:
            s3 = EmbeddedS3.start(
                root / "s3", bucket=BUCKET, access_key=S3_KEY, secret_key=S3_SECRET
            )
            stack.callback(s3.stop)
            config |= {
                "EXPORTD_S3_BUCKET": BUCKET,
                "EXPORTD_S3_ENDPOINT_URL": s3.endpoint_url,
                "EXPORTD_S3_ACCESS_KEY_ID": S3_KEY,
                "EXPORTD_S3_SECRET_ACCESS_KEY": S3_SECRET,
            }
        mail_dir = root / "mail"
        if "EXPORTD_SMTP_HOST" not in given:
            sink = MailSink(mail_dir).start()
            stack.callback(sink.stop)
            config |= {"EXPORTD_SMTP_HOST": sink.host, "EXPORTD_SMTP_PORT": str(sink.port)}
        settings = Settings.from_env(config | given)
        catalog = Catalog.load(settings.catalog_path, settings.hook_modules)
        asyncio.run(load_demo(settings.database_url))
        _announce(root, settings, mail_dir)
        serve(settings, catalog, role="all", host=settings.host, port=port)
        print("exportd dev: stopping embedded servers ...", flush=True)


def _announce(root: Path, settings: Settings, mail_dir: Path) -> None:
    secret = settings.jwt_secret
    tokens = {
        t: issue_token(
            secret,
            sub=f"dev-{t}",
            tenant=t,
            email=f"dev@{t}.example",
            audience=settings.jwt_audience,
            ttl_s=TOKEN_TTL_S,
        )
        for t in DEMO_TENANTS
    }
    api_url = f"http://{settings.host}:{settings.port}"
    facts = {
        "api_url": api_url,
        "token": tokens[DEMO_TENANTS[0]],
        "tokens": tokens,
        "mail_dir": str(mail_dir),
        "s3_endpoint": settings.s3_endpoint_url,
        "database_url": settings.database_url,
    }
    (root / "dev.json").write_text(json.dumps(facts, indent=2) + "\n")
    replica_env = as_env(settings)
    replica_env.pop("EXPORTD_PORT")
    (root / "dev.env").write_text(
        "".join(f"{k}={_shell_quote(v)}\n" for k, v in sorted(replica_env.items()))
    )
    token = tokens[DEMO_TENANTS[0]]
    print(
        f"""
exportd dev is up.

  API        {api_url}
  mail       {mail_dir} (each message as an .eml file)
  S3         {settings.s3_endpoint_url} bucket {settings.s3_bucket}
  facts      {root / "dev.json"}   replica settings: {root / "dev.env"}

  export TOKEN={token}

  curl -s -X POST {api_url}/v1/exports \\
    -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \\
    -d '{{"export": "orders", "params": {{"since": "2025-01-01"}}}}'

  Another replica:  set -a; . {root / "dev.env"}; set +a; exportd serve --port 8081
  Ctrl-C stops everything.
""",
        flush=True,
    )


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _shell_quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"
