"""Settings: one typed, validated object built from EXPORTD_* environment variables."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from datetime import timedelta
from pathlib import Path
from typing import Any, Final, Literal, Self

from exportd.envvars import (
    dsn_problems,
    jwt_problems,
    mentions,
    networks,
    parse,
    text_of,
    unknown_variables,
    url_problems,
)
from exportd.errors import ConfigError
from exportd.text import is_domain, parse_mailbox

PREFIX = "EXPORTD_"
MIB = 1024 * 1024
S3_MIN_PART = 5 * MIB

SmtpTls = Literal["none", "starttls", "tls"]
LogFormat = Literal["json", "console"]
SCHEMA_NAME: Final = re.compile(r"[a-z_][a-z0-9_]{0,62}")


# Settings that count something and must be at least 1.
COUNTS: Final = [
    "workers",
    "max_attempts",
    "tenant_max_running",
    "tenant_max_queued",
    "max_waiters",
    "tenant_max_waiters",
    "parts_in_flight",
    "webhook_max_attempts",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Everything exportd can be told; built once by `Settings.from_env(os.environ)`."""

    database_url: str
    # exportd's tables live in this schema of that database, beside the application's own.
    database_schema: str = "exportd"
    source_database_url: str = ""
    catalog_path: Path
    # Python modules whose register(registry) adds exports that are not plain SQL.
    catalog_hooks: str = ""
    host: str = "0.0.0.0"
    port: int = 8080
    # Where people reach this service: the links in mails are built on it.
    public_url: str
    # Proxies whose X-Forwarded-For is believed (addresses or CIDRs, comma-separated).
    trusted_proxies: str = ""
    # Auth: either a shared HS* secret or a PEM public key for RS*/ES*.
    jwt_secret: str = field(default="", repr=False)
    jwt_public_key: str = field(default="", repr=False)
    jwt_algorithm: str = "HS256"
    jwt_audience: str
    jwt_issuer: str = ""
    # S3
    s3_bucket: str
    s3_endpoint_url: str = ""
    s3_region: str = "us-east-1"
    s3_access_key_id: str = ""
    s3_secret_access_key: str = field(default="", repr=False)
    s3_prefix: str = "exports"
    # The S3 address browsers reach, when it is not the one exportd uploads to.
    s3_public_endpoint_url: str = ""
    part_size: int = 8 * MIB
    parts_in_flight: int = 2
    # SMTP
    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_username: str = ""
    smtp_password: str = field(default="", repr=False)
    smtp_tls: SmtpTls = "none"
    mail_from: str = "exportd@localhost"
    allow_recipient_override: bool = False
    # A folder of templates that replace the built-in mails (see notify/templates).
    mail_templates: str = ""
    # The domain of the mails' Message-IDs (default: the sender's).
    message_id_domain: str = ""
    # Webhooks: endpoints on private networks only when allowed (dev, tests).
    webhook_allow_private: bool = False
    webhook_timeout: timedelta = timedelta(seconds=10)
    # Attempts per event, spaced by backoff from the base up to the cap (about 2.5 h in all).
    webhook_max_attempts: int = 12
    webhook_retry_base: timedelta = timedelta(seconds=30)
    webhook_retry_max: timedelta = timedelta(hours=1)
    # Queue
    workers: int = 4
    lease: timedelta = timedelta(seconds=30)
    sweep_interval: timedelta = timedelta(seconds=5)
    max_attempts: int = 5
    retry_base: timedelta = timedelta(seconds=2)
    retry_max: timedelta = timedelta(minutes=5)
    progress_interval: timedelta = timedelta(seconds=1)
    # How often the dependencies are checked (for /readyz, and before claiming jobs).
    readiness_interval: timedelta = timedelta(seconds=5)
    # Fairness: running builds per tenant (fleet-wide), and queued exports before 429.
    tenant_max_running: int = 2
    tenant_max_queued: int = 500
    # Long-polls waiting at once on this replica, and per tenant; more are answered 429.
    max_waiters: int = 20_000
    tenant_max_waiters: int = 2_000
    idempotency_ttl: timedelta = timedelta(hours=24)
    # API
    max_wait: timedelta = timedelta(seconds=60)
    max_body_bytes: int = 64 * 1024
    # A request body that has not fully arrived by then is answered 408 (slow clients).
    body_timeout: timedelta = timedelta(seconds=10)
    page_size_max: int = 100
    # The web page at / (static files that use this API with a bearer token).
    web_ui: bool = True
    # Files: offered for `retention`, then deleted; rows purged after `history`.
    retention: timedelta = timedelta(days=7)
    history: timedelta = timedelta(days=90)
    # A presigned S3 URL's life: each download (API or mailed link) gets a fresh one.
    link_ttl: timedelta = timedelta(minutes=5)
    # Logs
    log_format: LogFormat = "json"
    log_level: str = "info"

    @property
    def source_url(self) -> str:
        """The database exports read from (a replica, usually); the queue's by default."""
        return self.source_database_url or self.database_url

    @property
    def base_url(self) -> str:
        """The public URL without a trailing slash: exportd's links are built on it."""
        return self.public_url.rstrip("/")

    @property
    def message_domain(self) -> str:
        """The domain of the mails' Message-IDs."""
        return self.message_id_domain or self.mail_from.rpartition("@")[2].rstrip(">") or "exportd"

    @property
    def hook_modules(self) -> tuple[str, ...]:
        return tuple(m.strip() for m in self.catalog_hooks.split(",") if m.strip())

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Self:
        """Read EXPORTD_<FIELD> for each field; raise ConfigError listing every problem at
        once, one line each, each naming its variable."""
        values: dict[str, Any] = {}
        known = {env_name(f.name) for f in fields(cls)}
        problems = unknown_variables(env, PREFIX, known)
        reported: set[str] = set()
        for f in fields(cls):
            name = env_name(f.name)
            raw = env.get(name)
            required = f.default is MISSING and f.default_factory is MISSING
            try:
                if raw is None or raw == "":
                    if required:
                        raise ConfigError(f"{name} is required")
                    continue
                values[f.name] = parse(name, str(f.type), raw)
            except ConfigError as exc:
                problems.append(exc.detail)
                reported.add(name)
                if required:  # a stand-in, so the checks below still run
                    values[f.name] = _STAND_INS[str(f.type)]
        # The cross-field checks run too; their lines about a variable already reported
        # would only repeat it.
        settings = cls(**values)
        problems += [p for p in settings.problems() if not mentions(p, reported)]
        if problems:
            raise ConfigError("\n".join(problems))
        return settings

    def validate(self) -> None:
        """Raise ConfigError listing every cross-field problem, one line each."""
        problems = self.problems()
        if problems:
            raise ConfigError("\n".join(problems))

    def problems(self) -> list[str]:
        """What is wrong with these settings; each line names the variable to fix."""
        checks = [(getattr(self, n) >= 1, f"{env_name(n)} must be at least 1") for n in COUNTS]
        checks += [
            (1 <= self.port <= 65535, "EXPORTD_PORT must be a TCP port"),
            (self.part_size >= S3_MIN_PART, f"EXPORTD_PART_SIZE must be at least {S3_MIN_PART}"),
            (self.lease >= timedelta(seconds=2), "EXPORTD_LEASE_S must be at least 2"),
            (self.sweep_interval > timedelta(0), "EXPORTD_SWEEP_INTERVAL_S must be positive"),
            (
                self.readiness_interval > timedelta(0),
                "EXPORTD_READINESS_INTERVAL_S must be positive",
            ),
            (self.link_ttl <= timedelta(days=7), "EXPORTD_LINK_TTL_S must be at most 7 days"),
            (self.max_wait >= timedelta(0), "EXPORTD_MAX_WAIT_S must not be negative"),
            (self.body_timeout > timedelta(0), "EXPORTD_BODY_TIMEOUT_S must be positive"),
            (
                self.history >= self.retention,
                "EXPORTD_HISTORY_S must be at least EXPORTD_RETENTION_S",
            ),
            (self.link_ttl >= timedelta(seconds=1), "EXPORTD_LINK_TTL_S must be at least 1"),
            (self.webhook_timeout > timedelta(0), "EXPORTD_WEBHOOK_TIMEOUT_S must be positive"),
            (
                bool(self.s3_access_key_id) == bool(self.s3_secret_access_key),
                "EXPORTD_S3_ACCESS_KEY_ID and EXPORTD_S3_SECRET_ACCESS_KEY go together",
            ),
            (
                self.webhook_retry_base <= self.webhook_retry_max,
                "EXPORTD_WEBHOOK_RETRY_BASE_S must not exceed EXPORTD_WEBHOOK_RETRY_MAX_S",
            ),
            (
                is_domain(self.message_domain),
                "EXPORTD_MESSAGE_ID_DOMAIN must be a domain name (letters, digits, dots, hyphens)",
            ),
            (
                SCHEMA_NAME.fullmatch(self.database_schema) is not None,
                "EXPORTD_DATABASE_SCHEMA must be a lower-case SQL name (a-z, 0-9, _)",
            ),
            (
                parse_mailbox(self.mail_from) is not None,
                "EXPORTD_MAIL_FROM must be name@host or Display Name <name@host> (ASCII address)",
            ),
            (
                self.log_level.upper() in ("DEBUG", "INFO", "WARNING", "ERROR"),
                "EXPORTD_LOG_LEVEL must be debug, info, warning or error",
            ),
        ]
        problems = [message for ok, message in checks if not ok]
        problems += dsn_problems("EXPORTD_DATABASE_URL", self.database_url)
        problems += url_problems("EXPORTD_PUBLIC_URL", self.public_url)
        for name, url in (
            ("EXPORTD_S3_ENDPOINT_URL", self.s3_endpoint_url),
            ("EXPORTD_S3_PUBLIC_ENDPOINT_URL", self.s3_public_endpoint_url),
        ):
            problems += url_problems(name, url) if url else []
        try:
            networks(self.trusted_proxies)
        except ValueError as exc:
            problems.append(f"EXPORTD_TRUSTED_PROXIES must be addresses or CIDRs: {exc}")
        if self.mail_templates and not Path(self.mail_templates).is_dir():
            problems.append("EXPORTD_MAIL_TEMPLATES must be a folder")
        if self.source_database_url:
            problems += dsn_problems("EXPORTD_SOURCE_DATABASE_URL", self.source_database_url)
        return problems + jwt_problems(self.jwt_algorithm, self.jwt_secret, self.jwt_public_key)


# What a required field holds while its own problem is reported (only ever str and Path).
_STAND_INS: Final[dict[str, Any]] = {"str": "", "Path": Path()}


def env_name(field_name: str) -> str:
    """The environment variable that sets a Settings field."""
    if field_name == "catalog_path":
        return PREFIX + "CATALOG"
    typ = {f.name: str(f.type) for f in fields(Settings)}[field_name]
    return PREFIX + field_name.upper() + ("_S" if typ == "timedelta" else "")


def as_env(settings: Settings) -> dict[str, str]:
    """The EXPORTD_* variables that rebuild `settings` (how dev hands itself to a replica)."""
    return env_for({f.name: getattr(settings, f.name) for f in fields(Settings)})


def env_for(values: Mapping[str, Any]) -> dict[str, str]:
    """The EXPORTD_* variables that set these Settings fields to these values."""
    return {env_name(name): text_of(value) for name, value in values.items()}
