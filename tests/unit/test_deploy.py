"""The deployment files, checked without a Docker engine: compose.yaml, deploy/nginx.conf, the
Dockerfile, .dockerignore and requirements.lock agree with each other and with the settings."""

from __future__ import annotations

import json
import re
import tomllib
import urllib.request
from dataclasses import fields
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml  # PyYAML ships no stubs; types-PyYAML is not installed
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from exportd.config import Settings, env_name

ROOT = Path(__file__).resolve().parents[2]
REPLICAS = ("exportd-1", "exportd-2", "exportd-3")
SERVICES = ("postgres", "s3", "mailpit", "migrate", *REPLICAS, "nginx")
# ${NAME}, ${NAME:-default} or ${NAME-default}: Compose interpolation, resolved to its default.
INTERPOLATION = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")
DEFAULTS = {f.name: f.default for f in fields(Settings)}


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def services() -> dict[str, dict[str, Any]]:
    found = compose()["services"]
    assert isinstance(found, dict)
    return found


def environment(service: str) -> dict[str, str]:
    """The service's environment as the container gets it with no shell overrides."""
    env = services()[service].get("environment", {})
    assert isinstance(env, dict), f"{service}: write environment as a mapping"
    return {k: INTERPOLATION.sub(lambda m: m.group(2) or "", str(v)) for k, v in env.items()}


def nginx_conf() -> str:
    return re.sub(r"#.*", "", (ROOT / "deploy" / "nginx.conf").read_text())


def dockerfile() -> str:
    """The Dockerfile without comments, continuation lines joined."""
    text = re.sub(r"(?m)^\s*#.*\n", "", (ROOT / "Dockerfile").read_text())
    return text.replace("\\\n", " ")


def test_compose_parses_and_has_every_service() -> None:
    assert set(SERVICES) <= set(services())
    assert "x-exportd" in compose()


def test_every_exportd_variable_in_compose_is_a_setting() -> None:
    settings = {env_name(f.name) for f in fields(Settings)}
    named = set(re.findall(r"EXPORTD_[A-Z0-9_]+", (ROOT / "compose.yaml").read_text()))
    assert named, "compose.yaml configures exportd through EXPORTD_* variables"
    assert named <= settings, f"not settings: {sorted(named - settings)}"


def test_replicas_share_one_valid_configuration_and_serve_every_role() -> None:
    shared = compose()["x-exportd"]
    for name in REPLICAS:
        replica = services()[name]
        assert replica["environment"] == shared["environment"], name
        assert replica["image"] == shared["image"], name
        assert replica["command"] == ["exportd", "serve"], name  # no --role: all of them
        assert set(environment(name)) == {k for k in environment(name) if k.startswith("EXPORTD_")}
    settings = Settings.from_env(environment(REPLICAS[0]))  # raises ConfigError naming a problem
    assert settings.jwt_algorithm == "HS256"


def test_migrate_runs_exportd_migrate_and_replicas_wait_for_it() -> None:
    migrate = services()["migrate"]
    assert migrate["command"] == ["exportd", "migrate"]
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert migrate["restart"] == "no"
    for name in REPLICAS:
        waits_for = services()[name]["depends_on"]
        assert waits_for["migrate"]["condition"] == "service_completed_successfully", name
    assert set(services()["nginx"]["depends_on"]) == set(REPLICAS)


def test_services_waited_on_as_healthy_have_a_healthcheck() -> None:
    for name, service in services().items():
        for target, rule in service.get("depends_on", {}).items():
            assert target in services(), f"{name} depends on unknown {target}"
            if rule["condition"] == "service_healthy" and target not in REPLICAS:
                assert "test" in services()[target]["healthcheck"], f"{target} has no healthcheck"
    assert "HEALTHCHECK" in dockerfile()  # the replicas' own, from the image


def test_files_compose_mounts_exist_in_the_repo() -> None:
    mounted = []
    for service in services().values():
        for volume in service.get("volumes", []):
            source, target, *mode = str(volume).split(":")
            if source.startswith("."):
                assert (ROOT / source).is_file(), source
                assert mode == ["ro"], f"{source} is mounted read-only"
                mounted.append((source, target))
    assert ("./exportd/dev/data/catalog.toml", environment("exportd-1")["EXPORTD_CATALOG"]) in (
        mounted
    )
    schema = [t for s, t in mounted if s == "./exportd/dev/data/schema.sql"]
    assert schema and schema[0].startswith("/docker-entrypoint-initdb.d/")
    assert ("./deploy/nginx.conf", "/etc/nginx/nginx.conf") in mounted


def test_nginx_balances_the_three_replicas_longer_than_the_long_poll() -> None:
    conf = nginx_conf()
    upstream = re.search(r"upstream\s+(\w+)\s*\{([^}]*)\}", conf)
    assert upstream, "deploy/nginx.conf has an upstream block"
    servers = re.findall(r"^\s*server\s+([\w.-]+):(\d+)", upstream.group(2), re.MULTILINE)
    port = environment("exportd-1")["EXPORTD_PORT"]
    assert sorted(servers) == [(name, port) for name in REPLICAS]
    assert f"proxy_pass http://{upstream.group(1)};" in conf

    timeout = re.search(r"proxy_read_timeout\s+(\d+)s;", conf)
    assert timeout, "proxy_read_timeout is set, in seconds"
    max_wait = Settings.from_env(environment("exportd-1")).max_wait  # as the replicas see it
    assert timedelta(seconds=int(timeout.group(1))) > max_wait


def test_nginx_retries_connect_errors_but_never_resends_a_post() -> None:
    conf = nginx_conf()
    assert re.search(r"proxy_next_upstream\s+error timeout http_502 http_503;", conf)
    assert "non_idempotent" not in conf
    assert re.search(r"proxy_set_header\s+X-Forwarded-For\s+\$proxy_add_x_forwarded_for;", conf)


def test_dockerfile_installs_from_the_lock_and_not_editable() -> None:
    text = dockerfile()
    assert re.search(r"^COPY requirements\.lock ", text, re.MULTILINE)
    installs = re.findall(r"pip install ([^&\n]*)", text)
    assert any("--require-hashes" in i and "-r requirements.lock" in i for i in installs)
    assert any(re.fullmatch(r"(--\S+ )*--no-deps \.\s*", i) for i in installs), installs
    assert not any(re.search(r"(^|\s)(-e|--editable)\b", i) for i in installs)
    assert "FROM python:3.11.15-slim-bookworm" in text
    assert re.search(r"^USER (?!root|0\b)", text, re.MULTILINE)


def test_dockerfile_healthcheck_follows_the_configured_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    check = re.search(r"^HEALTHCHECK .* CMD (\[.*\])$", dockerfile(), re.MULTILINE)
    assert check, "HEALTHCHECK ... CMD [exec form]"
    python, flag, code = json.loads(check.group(1))
    assert (python, flag) == ("python", "-c")
    asked: list[str] = []
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: asked.append(url))
    for port in ("9000", "", None):  # set, empty and unset: the last two mean the default
        if port is None:
            monkeypatch.delenv("EXPORTD_PORT", raising=False)
        else:
            monkeypatch.setenv("EXPORTD_PORT", port)
        exec(code, {})
    default = DEFAULTS["port"]
    assert asked == [f"http://127.0.0.1:{p}/healthz" for p in (9000, default, default)]


def test_dockerignore_lets_in_what_the_dockerfile_copies() -> None:
    allowed = {
        line[1:].strip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    copied = re.findall(r"^COPY (?!--from)(.+) \S+$", dockerfile(), re.MULTILINE)
    sources = {source.strip("/") for line in copied for source in line.split()}
    assert sources == allowed


def test_lock_pins_every_runtime_dependency_with_hashes() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {canonicalize_name(Requirement(dep).name) for dep in project["dependencies"]}
    lock = (ROOT / "requirements.lock").read_text()
    assert re.search(r"^#\s+uv pip compile pyproject\.toml .*--generate-hashes", lock, re.M)
    entries = re.findall(r"^[^#\s].*(?:\n[ \t]+.*)*", lock, re.MULTILINE)  # a line + its indented
    pinned = {}
    for entry in entries:
        pin = re.match(r"([A-Za-z0-9][\w.-]*)(\[[^\]]*\])?==(\S+)", entry)
        assert pin, f"not pinned: {entry.splitlines()[0]}"
        assert "--hash=sha256:" in entry, f"no hash: {pin.group(1)}"
        pinned[canonicalize_name(pin.group(1))] = pin.group(3)
    assert wanted <= set(pinned), f"not in requirements.lock: {sorted(wanted - set(pinned))}"
    for dep in project["dependencies"]:
        requirement = Requirement(dep)
        version = pinned[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(version), f"{version} breaks {dep}"
