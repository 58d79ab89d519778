"""Settings.from_env: required variables, parsing, cross-field checks, and as_env round trips."""

from __future__ import annotations

from dataclasses import fields
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from exportd.config import MIB, Settings, as_env, env_name
from exportd.errors import ConfigError

MINIMAL: dict[str, str] = {
    "EXPORTD_DATABASE_URL": "postgresql://exportd@db.internal/exportd",
    "EXPORTD_CATALOG": "/etc/exportd/catalog.toml",
    "EXPORTD_JWT_SECRET": "a-shared-secret-of-32-bytes-or-more",
    "EXPORTD_JWT_AUDIENCE": "exportd",
    "EXPORTD_PUBLIC_URL": "https://exports.example.com",
    "EXPORTD_S3_BUCKET": "exports",
}
REQUIRED = (
    "EXPORTD_DATABASE_URL",
    "EXPORTD_CATALOG",
    "EXPORTD_PUBLIC_URL",
    "EXPORTD_JWT_AUDIENCE",
    "EXPORTD_S3_BUCKET",
)


def rsa_public_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def ec_public_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def config_error(env: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    return caught.value.detail


def test_a_minimal_environment_is_enough() -> None:
    settings = Settings.from_env(MINIMAL)

    assert settings.database_url == MINIMAL["EXPORTD_DATABASE_URL"]
    assert settings.source_url == MINIMAL["EXPORTD_DATABASE_URL"]
    assert settings.catalog_path == Path("/etc/exportd/catalog.toml")
    assert settings.jwt_secret == "a-shared-secret-of-32-bytes-or-more"
    assert settings.jwt_algorithm == "HS256"
    assert settings.jwt_audience == "exportd"
    assert settings.s3_bucket == "exports"
    assert settings.port == 8080
    assert settings.workers == 4
    assert settings.part_size == 8 * MIB
    assert settings.lease == timedelta(seconds=30)
    assert settings.link_ttl == timedelta(minutes=5)


def test_variables_outside_the_prefix_are_ignored() -> None:
    env = MINIMAL | {"DATABASE_URL": "postgresql://elsewhere/x"}

    assert Settings.from_env(env) == Settings.from_env(MINIMAL)


def test_an_unknown_exportd_variable_is_refused_with_a_suggestion() -> None:
    env = MINIMAL | {"EXPORTD_NO_SUCH_THING": "1", "EXPORTD_RETRY_MAX": "99"}

    with pytest.raises(ConfigError) as raised:
        Settings.from_env(env)

    assert raised.value.detail.splitlines() == [
        "EXPORTD_NO_SUCH_THING is not an exportd setting",
        "EXPORTD_RETRY_MAX is not an exportd setting; did you mean EXPORTD_RETRY_MAX_S?",
    ]


def test_the_client_s_variables_are_not_taken_for_typos() -> None:
    # `exportd exports ls` reads them; a shell that also runs a replica may have them set.
    env = MINIMAL | {"EXPORTD_URL": "http://127.0.0.1:8080", "EXPORTD_TOKEN": "ey..."}

    assert Settings.from_env(env) == Settings.from_env(MINIMAL)


def test_values_are_parsed_to_their_types() -> None:
    env = MINIMAL | {
        "EXPORTD_PORT": "9000",
        "EXPORTD_WORKERS": "16",
        "EXPORTD_ALLOW_RECIPIENT_OVERRIDE": "yes",
        "EXPORTD_SMTP_TLS": "starttls",
        "EXPORTD_LOG_FORMAT": "console",
        "EXPORTD_SOURCE_DATABASE_URL": "postgresql://replica/exportd",
    }

    settings = Settings.from_env(env)

    assert settings.port == 9000
    assert settings.workers == 16
    assert settings.allow_recipient_override is True
    assert settings.smtp_tls == "starttls"
    assert settings.log_format == "console"
    assert settings.source_url == "postgresql://replica/exportd"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", True), ("TRUE", True), ("on", True), ("0", False), ("no", False), ("Off", False)],
)
def test_booleans_accept_the_usual_spellings(raw: str, expected: bool) -> None:
    settings = Settings.from_env(MINIMAL | {"EXPORTD_ALLOW_RECIPIENT_OVERRIDE": raw})

    assert settings.allow_recipient_override is expected


def test_durations_come_from_the_seconds_variables() -> None:
    env = MINIMAL | {
        "EXPORTD_LEASE_S": "12",
        "EXPORTD_SWEEP_INTERVAL_S": "0.5",
        "EXPORTD_RETRY_BASE_S": "0.25",
        "EXPORTD_MAX_WAIT_S": "0",
        "EXPORTD_LINK_TTL_S": "3600",
        "EXPORTD_RETENTION_S": "1209600",
    }

    settings = Settings.from_env(env)

    assert settings.lease == timedelta(seconds=12)
    assert settings.sweep_interval == timedelta(milliseconds=500)
    assert settings.retry_base == timedelta(milliseconds=250)
    assert settings.max_wait == timedelta(0)
    assert settings.link_ttl == timedelta(hours=1)
    assert settings.retention == timedelta(days=14)
    assert settings.progress_interval == timedelta(seconds=1)
    assert settings.retry_max == timedelta(minutes=5)


def test_every_duration_variable_ends_in_s() -> None:
    for f in fields(Settings):
        if str(f.type) == "timedelta":
            assert env_name(f.name).endswith("_S"), f.name
        else:
            assert not env_name(f.name).endswith("_S"), f.name


@pytest.mark.parametrize("name", REQUIRED)
@pytest.mark.parametrize("how", ["unset", "empty"])
def test_each_missing_required_variable_is_named(name: str, how: str) -> None:
    env = {k: v for k, v in MINIMAL.items() if k != name}
    if how == "empty":
        env[name] = ""

    assert config_error(env) == f"{name} is required"


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("EXPORTD_WORKERS", "abc"),
        ("EXPORTD_WORKERS", "2.5"),
        ("EXPORTD_PORT", "http"),
        ("EXPORTD_PART_SIZE", "8MiB"),
        ("EXPORTD_ALLOW_RECIPIENT_OVERRIDE", "maybe"),
        ("EXPORTD_ALLOW_RECIPIENT_OVERRIDE", "2"),
        ("EXPORTD_SMTP_TLS", "ssl"),
        ("EXPORTD_SMTP_TLS", "TLS"),
        ("EXPORTD_LOG_FORMAT", "xml"),
        ("EXPORTD_LEASE_S", "soon"),
        ("EXPORTD_LEASE_S", "-1"),
        ("EXPORTD_RETENTION_S", "nan"),
    ],
)
def test_a_bad_value_names_its_variable(name: str, raw: str) -> None:
    message = config_error(MINIMAL | {name: raw})

    assert message.startswith(f"{name}={raw!r} is invalid: "), message


@pytest.mark.parametrize(
    ("name", "raw"), [("EXPORTD_RETENTION_S", "inf"), ("EXPORTD_LINK_TTL_S", "1e15")]
)
def test_an_out_of_range_duration_names_its_variable(name: str, raw: str) -> None:
    message = config_error(MINIMAL | {name: raw})

    assert message.startswith(f"{name}={raw!r} is invalid: "), message


@pytest.mark.parametrize(
    ("changes", "variable"),
    [
        ({"EXPORTD_JWT_SECRET": ""}, "EXPORTD_JWT_SECRET"),
        ({"EXPORTD_JWT_ALGORITHM": "HS512", "EXPORTD_JWT_SECRET": ""}, "EXPORTD_JWT_SECRET"),
        ({"EXPORTD_JWT_ALGORITHM": "RS256"}, "EXPORTD_JWT_PUBLIC_KEY"),
        (
            {"EXPORTD_JWT_ALGORITHM": "RS256", "EXPORTD_JWT_PUBLIC_KEY": "not a pem"},
            "EXPORTD_JWT_PUBLIC_KEY",
        ),
        ({"EXPORTD_JWT_ALGORITHM": "ES256"}, "EXPORTD_JWT_PUBLIC_KEY"),
        ({"EXPORTD_JWT_ALGORITHM": "none"}, "EXPORTD_JWT_ALGORITHM"),
        ({"EXPORTD_PART_SIZE": str(5 * MIB - 1)}, "EXPORTD_PART_SIZE"),
        ({"EXPORTD_PART_SIZE": "0"}, "EXPORTD_PART_SIZE"),
        ({"EXPORTD_LINK_TTL_S": str(7 * 86400 + 1)}, "EXPORTD_LINK_TTL_S"),
        ({"EXPORTD_LINK_TTL_S": str(30 * 86400)}, "EXPORTD_LINK_TTL_S"),
        ({"EXPORTD_WORKERS": "0"}, "EXPORTD_WORKERS"),
        ({"EXPORTD_MAX_ATTEMPTS": "0"}, "EXPORTD_MAX_ATTEMPTS"),
        ({"EXPORTD_PORT": "0"}, "EXPORTD_PORT"),
        ({"EXPORTD_PORT": "65536"}, "EXPORTD_PORT"),
        ({"EXPORTD_PARTS_IN_FLIGHT": "0"}, "EXPORTD_PARTS_IN_FLIGHT"),
        ({"EXPORTD_LEASE_S": "1"}, "EXPORTD_LEASE_S"),
        ({"EXPORTD_SWEEP_INTERVAL_S": "0"}, "EXPORTD_SWEEP_INTERVAL_S"),
        ({"EXPORTD_MAIL_FROM": "exportd"}, "EXPORTD_MAIL_FROM"),
        ({"EXPORTD_LOG_LEVEL": "verbose"}, "EXPORTD_LOG_LEVEL"),
        ({"EXPORTD_JWT_SECRET": "abc"}, "EXPORTD_JWT_SECRET"),
        ({"EXPORTD_JWT_ALGORITHM": "HS512", "EXPORTD_JWT_SECRET": "x" * 63}, "EXPORTD_JWT_SECRET"),
        ({"EXPORTD_DATABASE_URL": "postgresql+asyncpg://u@h/db"}, "EXPORTD_DATABASE_URL"),
        ({"EXPORTD_DATABASE_URL": "host=db dbname=exportd user=x"}, "EXPORTD_DATABASE_URL"),
        ({"EXPORTD_DATABASE_URL": "postgresql://u@h:port/db"}, "EXPORTD_DATABASE_URL"),
        ({"EXPORTD_SOURCE_DATABASE_URL": "mysql://u@h/db"}, "EXPORTD_SOURCE_DATABASE_URL"),
        ({"EXPORTD_DATABASE_SCHEMA": "Exportd"}, "EXPORTD_DATABASE_SCHEMA"),
        ({"EXPORTD_DATABASE_SCHEMA": "export; drop"}, "EXPORTD_DATABASE_SCHEMA"),
    ],
)
def test_inconsistent_settings_are_rejected_by_name(changes: dict[str, str], variable: str) -> None:
    message = config_error(MINIMAL | changes)

    assert message.startswith(variable), message


def test_every_problem_is_reported_at_once_one_line_each() -> None:
    env = {
        "EXPORTD_WORKERS": "abc",
        "EXPORTD_PORT": "http",
        "EXPORTD_JWT_ALGORITHM": "hs256",
    }

    lines = config_error(env).splitlines()

    assert set(lines) == {
        *(f"{name} is required" for name in REQUIRED),
        "EXPORTD_WORKERS='abc' is invalid: expected an integer",
        "EXPORTD_PORT='http' is invalid: expected an integer",
        # checked even while others are missing or do not parse
        "EXPORTD_JWT_ALGORITHM must be one of HS256, HS384, HS512, RS256, RS384, RS512, ES256, "
        "ES384",
    }


def test_cross_field_problems_are_reported_together() -> None:
    env = MINIMAL | {"EXPORTD_WORKERS": "0", "EXPORTD_LEASE_S": "1", "EXPORTD_JWT_SECRET": "abc"}

    lines = config_error(env).splitlines()

    assert [line.split()[0] for line in lines] == [
        "EXPORTD_WORKERS",
        "EXPORTD_LEASE_S",
        "EXPORTD_JWT_SECRET",
    ]


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        (
            {"EXPORTD_S3_ACCESS_KEY_ID": "AKIA"},
            "EXPORTD_S3_ACCESS_KEY_ID and EXPORTD_S3_SECRET_ACCESS_KEY go together",
        ),
        (
            {"EXPORTD_S3_ENDPOINT_URL": "127.0.0.1:9000"},
            "EXPORTD_S3_ENDPOINT_URL must be an http:// or https:// URL with a host",
        ),
        (
            {"EXPORTD_PUBLIC_URL": "https://exports.example.com/?x=1"},
            "EXPORTD_PUBLIC_URL must not have a query or a fragment",
        ),
        (
            {"EXPORTD_HISTORY_S": "60", "EXPORTD_RETENTION_S": "120"},
            "EXPORTD_HISTORY_S must be at least EXPORTD_RETENTION_S",
        ),
        (
            {"EXPORTD_MESSAGE_ID_DOMAIN": "bad domain>"},
            "EXPORTD_MESSAGE_ID_DOMAIN must be a domain name (letters, digits, dots, hyphens)",
        ),
        (
            {"EXPORTD_TRUSTED_PROXIES": "10.0.0.0/8, not-an-address"},
            "EXPORTD_TRUSTED_PROXIES must be addresses or CIDRs: "
            "'not-an-address' does not appear to be an IPv4 or IPv6 network",
        ),
    ],
)
def test_a_setting_that_cannot_work_is_refused(env: dict[str, str], problem: str) -> None:
    assert config_error(MINIMAL | env).splitlines() == [problem]


def test_a_private_key_given_as_the_public_one_is_refused() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    env = MINIMAL | {"EXPORTD_JWT_ALGORITHM": "RS256", "EXPORTD_JWT_PUBLIC_KEY": private_pem}

    assert config_error(env) == (
        "EXPORTD_JWT_PUBLIC_KEY holds a private key: give exportd the public one"
    )


def test_an_unknown_algorithm_lists_the_choices() -> None:
    message = config_error(MINIMAL | {"EXPORTD_JWT_ALGORITHM": "hs256"})

    assert message == (
        "EXPORTD_JWT_ALGORITHM must be one of HS256, HS384, HS512, RS256, RS384, RS512, "
        "ES256, ES384"
    )


@pytest.mark.parametrize(("algorithm", "pem"), [("RS256", "ec"), ("ES256", "rsa")])
def test_a_public_key_of_the_wrong_family_is_refused_at_start(algorithm: str, pem: str) -> None:
    key = ec_public_pem() if pem == "ec" else rsa_public_pem()
    env = {k: v for k, v in MINIMAL.items() if k != "EXPORTD_JWT_SECRET"}

    message = config_error(
        env | {"EXPORTD_JWT_ALGORITHM": algorithm, "EXPORTD_JWT_PUBLIC_KEY": key}
    )

    assert message.startswith("EXPORTD_JWT_PUBLIC_KEY must be a PEM"), message
    assert algorithm in message


def test_a_part_size_of_exactly_5_mib_and_a_link_ttl_of_7_days_are_allowed() -> None:
    env = MINIMAL | {"EXPORTD_PART_SIZE": str(5 * MIB), "EXPORTD_LINK_TTL_S": str(7 * 86400)}

    settings = Settings.from_env(env)

    assert settings.part_size == 5 * MIB
    assert settings.link_ttl == timedelta(days=7)


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_asymmetric_algorithms_take_a_pem_public_key(algorithm: str) -> None:
    pem = rsa_public_pem() if algorithm.startswith("RS") else ec_public_pem()
    env = {k: v for k, v in MINIMAL.items() if k != "EXPORTD_JWT_SECRET"}

    settings = Settings.from_env(
        env | {"EXPORTD_JWT_ALGORITHM": algorithm, "EXPORTD_JWT_PUBLIC_KEY": pem}
    )

    assert settings.jwt_algorithm == algorithm
    assert settings.jwt_public_key == pem


def test_secrets_stay_out_of_the_repr() -> None:
    env = MINIMAL | {
        "EXPORTD_S3_ACCESS_KEY_ID": "s3-key-id",
        "EXPORTD_S3_SECRET_ACCESS_KEY": "s3-secret-value",
        "EXPORTD_SMTP_PASSWORD": "smtp-secret-value",
    }

    text = repr(Settings.from_env(env))

    for secret in ("a-shared-secret", "s3-secret-value", "smtp-secret-value"):
        assert secret not in text


def test_as_env_round_trips_the_minimal_settings() -> None:
    settings = Settings.from_env(MINIMAL)

    assert Settings.from_env(as_env(settings)) == settings


def test_as_env_round_trips_customised_settings() -> None:
    pem = rsa_public_pem()
    settings = Settings(
        database_url="postgresql://queue@db/exportd",
        source_database_url="postgresql://reader@replica/exportd",
        catalog_path=Path("/srv/exportd/catalog.toml"),
        host="127.0.0.1",
        port=9090,
        public_url="https://exports.example.com/base/",
        trusted_proxies="10.0.0.0/8, 192.168.1.1",
        jwt_secret="",
        jwt_public_key=pem,
        jwt_algorithm="RS256",
        jwt_audience="exports-api",
        jwt_issuer="https://id.example.com/",
        s3_bucket="bucket-with-exports",
        s3_endpoint_url="http://127.0.0.1:9000",
        s3_region="eu-central-1",
        s3_access_key_id="AKIAEXAMPLE",
        s3_secret_access_key="it's a 'quoted' secret=with=equals",
        s3_prefix="tenant-exports/v2",
        s3_public_endpoint_url="https://files.example.com",
        part_size=16 * MIB,
        parts_in_flight=4,
        smtp_host="smtp.example.com",
        smtp_port=587,
        smtp_username="mailer",
        smtp_password="p@ss word",
        smtp_tls="starttls",
        mail_from="Exports <exports@example.com>",
        allow_recipient_override=True,
        message_id_domain="mail.example.com",
        webhook_allow_private=True,
        webhook_timeout=timedelta(seconds=3),
        webhook_max_attempts=5,
        webhook_retry_base=timedelta(seconds=1),
        webhook_retry_max=timedelta(minutes=2),
        workers=8,
        lease=timedelta(seconds=45),
        sweep_interval=timedelta(milliseconds=1500),
        max_attempts=3,
        retry_base=timedelta(milliseconds=100),
        retry_max=timedelta(minutes=10),
        progress_interval=timedelta(milliseconds=200),
        max_wait=timedelta(seconds=25),
        max_body_bytes=128 * 1024,
        page_size_max=50,
        retention=timedelta(days=30),
        history=timedelta(days=365),
        link_ttl=timedelta(minutes=15),
        log_format="console",
        log_level="debug",
    )
    settings.validate()

    assert Settings.from_env(as_env(settings)) == settings


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("retention", timedelta(seconds=1_209_601)),
        ("progress_interval", timedelta(microseconds=1_234_567)),
    ],
)
def test_as_env_keeps_durations_exact(field: str, value: timedelta) -> None:
    env = as_env(Settings.from_env(MINIMAL))
    env[env_name(field)] = str(value.total_seconds())
    settings = Settings.from_env(env)
    assert getattr(settings, field) == value

    assert Settings.from_env(as_env(settings)) == settings
