"""The web page's serving, in-process: GET / and its assets with strict security headers, a
setting that turns it off, no page on a worker; and what the files may not contain."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final

from aiohttp.test_utils import TestClient

from exportd.web import STATIC

CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)
SCRIPTS: Final = sorted(p.name for p in STATIC.glob("*.js"))
# A module's imports of its siblings: `from './api.js'`.
IMPORT: Final = re.compile(r"""from\s+'\./([\w-]+\.js)'""")


def assert_strict(headers: Any) -> None:
    assert headers["Content-Security-Policy"] == CSP
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["Cache-Control"] == "no-cache"
    assert headers["ETag"]
    assert "Service-Worker-Allowed" not in headers


async def test_the_page_is_served_with_strict_headers(client: TestClient[Any, Any]) -> None:
    response = await client.get("/")

    assert response.status == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert_strict(response.headers)
    html = await response.text()
    assert '<script type="module" src="static/app.js"></script>' in html
    assert '<link rel="stylesheet" href="static/app.css">' in html
    assert '<link rel="icon" href="data:,">' in html  # no favicon request, no 404


async def test_every_asset_is_served_typed_and_revalidated(client: TestClient[Any, Any]) -> None:
    for name, content_type in [("app.css", "text/css")] + [(s, "text/javascript") for s in SCRIPTS]:
        response = await client.get(f"/static/{name}")
        assert response.status == 200, name
        assert response.headers["Content-Type"] == f"{content_type}; charset=utf-8"
        assert_strict(response.headers)
        assert await response.read() == (STATIC / name).read_bytes()

        again = await client.get(
            f"/static/{name}", headers={"If-None-Match": response.headers["ETag"]}
        )
        assert again.status == 304
        assert await again.read() == b""


async def test_only_the_page_files_are_served(client: TestClient[Any, Any]) -> None:
    for path in [
        "/static/nope.js",
        "/static/index.html",  # the page lives at / only
        "/static/__init__.py",
        "/static/..%2F__init__.py",
        "/static/%2e%2e%2fconfig.py",
        "/index.html",
    ]:
        response = await client.get(path)
        assert response.status == 404, path
        assert response.content_type == "application/problem+json"


async def test_the_setting_turns_the_page_off(make_client: Callable[..., Any]) -> None:
    client: TestClient[Any, Any] = await make_client(web_ui=False)

    for path in ["/", "/static/app.js"]:
        assert (await client.get(path)).status == 404, path
    assert (await client.get("/healthz")).status == 200


async def test_a_worker_serves_no_page(make_client: Callable[..., Any]) -> None:
    client: TestClient[Any, Any] = await make_client(role="worker")

    for path in ["/", "/static/app.js"]:
        assert (await client.get(path)).status == 404, path


def test_every_module_the_scripts_import_is_there() -> None:
    for name in SCRIPTS:
        for imported in IMPORT.findall((STATIC / name).read_text()):
            assert (STATIC / imported).is_file(), f"{name} imports {imported}"


def test_the_page_needs_no_service_worker() -> None:
    """A download is the API's presigned URL, fetched with the token and navigated to: no
    worker stands between the page and its requests."""
    for name in SCRIPTS:
        assert "serviceWorker" not in (STATIC / name).read_text(), name


def test_no_inline_code_and_no_html_from_data() -> None:
    """The CSP forbids inline scripts and styles; text from the server goes in as text."""
    html = (STATIC / "index.html").read_text()
    assert re.findall(r"<script(?![^>]*\bsrc=)", html) == []
    assert re.findall(r"<style|\sstyle=|\son[a-z]+=", html) == []
    for name in SCRIPTS:
        source = (STATIC / name).read_text()
        for sink in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("]:
            assert sink not in source, f"{name} uses {sink}"
