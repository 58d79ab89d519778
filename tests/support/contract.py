"""The OpenAPI document as a contract the tests hold responses to: a body that leaves its
schema fails the test that received it; and the problem+json every error must be."""

from __future__ import annotations

from functools import cache
from typing import Any

import aiohttp
from jsonschema import Draft202012Validator, FormatChecker

from exportd.api.openapi.document import spec
from exportd.config import Settings
from tests.support.catalog import CATALOG_PATH, load_test_catalog
from tests.support.tokens import AUDIENCE, JWT_SECRET


@cache
def document() -> dict[str, Any]:
    """The document exportd serves for the test catalog (limits at their defaults)."""
    settings = Settings(
        database_url="postgresql://contract/exportd",
        catalog_path=CATALOG_PATH,
        jwt_secret=JWT_SECRET,
        jwt_audience=AUDIENCE,
        public_url="http://exports.test",
        s3_bucket="contract",
    )
    return spec(load_test_catalog(), settings)


@cache
def _validator(component: str) -> Draft202012Validator:
    schema = {"$ref": f"#/components/schemas/{component}", "components": document()["components"]}
    return Draft202012Validator(schema, format_checker=FormatChecker())


def conforms(component: str, body: Any) -> None:
    """Assert `body` is a valid `component` (Export, ExportPage, Problem, ...)."""
    errors = sorted(_validator(component).iter_errors(body), key=lambda e: list(e.path))
    assert not errors, f"{component} leaves the API contract: " + "; ".join(
        f"{'/'.join(map(str, e.path)) or '(root)'}: {e.message}" for e in errors[:5]
    )


async def problem(response: aiohttp.ClientResponse, status: int, code: str) -> dict[str, Any]:
    """Assert a problem+json response with this status and code; return its body."""
    assert response.status == status, await response.text()
    assert response.content_type == "application/problem+json"
    body: dict[str, Any] = await response.json(content_type="application/problem+json")
    conforms("Problem", body)
    assert body["status"] == status
    assert body["code"] == code, body
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    return body
