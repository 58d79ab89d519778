"""The HTTP API's contract: auth, tenancy, request validation, listing, catalog and health."""

from __future__ import annotations

import base64
import json
import time
import unicodedata
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeAlias

import aiohttp
import asyncpg
import jwt
import pytest
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from exportd.config import Settings
from exportd.export.catalog import Catalog
from tests.support.client import create, eventually
from tests.support.contract import conforms, problem
from tests.support.tokens import AUDIENCE, JWT_SECRET, auth, make_token

Client: TypeAlias = "TestClient[Any, Any]"
MakeClient: TypeAlias = Callable[..., Any]
Conn: TypeAlias = "asyncpg.Connection[asyncpg.Record]"

PROBLEM_JSON = "application/problem+json"
ORDERS: dict[str, Any] = {"export": "orders", "params": {"since": "2025-01-01"}}


@pytest.fixture
async def api(make_client: MakeClient) -> Client:
    """exportd without workers: exports stay queued."""
    client: Client = await make_client(role="api")
    return client


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


async def client_error(response: aiohttp.ClientResponse) -> None:
    """Assert a 4xx problem+json with the RFC 9457 members (any code): bad input, never a 500."""
    assert 400 <= response.status < 500, await response.text()
    assert response.content_type == PROBLEM_JSON
    conforms("Problem", await response.json(content_type=PROBLEM_JSON))


async def assert_nothing_written(conn: Conn) -> None:
    assert await conn.fetchval("SELECT count(*) FROM exports") == 0
    assert await conn.fetchval("SELECT count(*) FROM jobs") == 0


async def post_raw(
    client: Client, data: bytes | str, content_type: str = "application/json"
) -> aiohttp.ClientResponse:
    headers = auth() | {"Content-Type": content_type}
    response: aiohttp.ClientResponse = await client.post("/v1/exports", data=data, headers=headers)
    return response


async def post_json(client: Client, body: Any) -> aiohttp.ClientResponse:
    return await post_raw(client, json.dumps(body))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "sub": "user-1",
        "tenant": "acme",
        "email": "user-1@acme.example",
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 600,
    }
    return base | overrides


# --- 1. authentication --------------------------------------------------------------------


async def test_valid_token_is_accepted(api: Client) -> None:
    response = await api.get("/v1/export-types", headers=auth())

    assert response.status == 200


async def test_missing_authorization_is_401(api: Client) -> None:
    response = await api.get("/v1/export-types")

    await problem(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_non_bearer_scheme_is_401(api: Client) -> None:
    response = await api.get("/v1/export-types", headers={"Authorization": "Basic dXNlcjpwYXNz"})

    await problem(response, 401, "unauthorized")


async def test_expired_token_is_401(api: Client) -> None:
    # Expired 120 s ago: well past the verifier's 30 s leeway.
    response = await api.get("/v1/export-types", headers=bearer(make_token(ttl_s=-120)))

    await problem(response, 401, "unauthorized")


async def test_token_signed_with_another_secret_is_401(api: Client) -> None:
    token = make_token(secret="other-secret-that-is-also-long-enough-for-hs256")

    response = await api.get("/v1/export-types", headers=bearer(token))

    await problem(response, 401, "unauthorized")


async def test_token_for_another_audience_is_401(api: Client) -> None:
    response = await api.get(
        "/v1/export-types", headers=bearer(make_token(audience="someone-else"))
    )

    await problem(response, 401, "unauthorized")


async def test_token_without_tenant_claim_is_401(api: Client) -> None:
    payload = claims()
    del payload["tenant"]
    token = jwt.encode(payload, JWT_SECRET, algorithm="HS256")

    response = await api.get("/v1/export-types", headers=bearer(token))

    await problem(response, 401, "unauthorized")


async def rs256_client(make_client: MakeClient, key: rsa.RSAPrivateKey) -> Client:
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    client: Client = await make_client(
        role="api", jwt_algorithm="RS256", jwt_public_key=public_pem, jwt_secret=""
    )
    return client


async def test_rs256_token_is_accepted_by_an_rs256_app(
    make_client: MakeClient, rsa_key: rsa.RSAPrivateKey
) -> None:
    client = await rs256_client(make_client, rsa_key)
    token = jwt.encode(claims(), rsa_key, algorithm="RS256")

    response = await client.get("/v1/export-types", headers=bearer(token))

    assert response.status == 200, await response.text()


async def test_hs256_token_is_401_in_an_rs256_app(
    make_client: MakeClient, rsa_key: rsa.RSAPrivateKey
) -> None:
    client = await rs256_client(make_client, rsa_key)

    response = await client.get("/v1/export-types", headers=auth())

    await problem(response, 401, "unauthorized")


# --- 2. tenancy: another caller's export reads like a missing one -----------------------


async def test_export_of_acme_is_404_for_globex(api: Client) -> None:
    created = await create(api, ORDERS)

    response = await api.get(f"/v1/exports/{created['id']}", headers=auth(tenant="globex"))

    await problem(response, 404, "export_not_found")


async def test_export_of_one_acme_user_is_404_for_another(api: Client) -> None:
    created = await create(api, ORDERS)

    response = await api.get(f"/v1/exports/{created['id']}", headers=auth(sub="user-2"))

    await problem(response, 404, "export_not_found")


async def test_foreign_random_and_malformed_ids_give_the_same_404(api: Client) -> None:
    created = await create(api, ORDERS)
    bodies = []
    for export_id in (created["id"], str(uuid.uuid4()), "not-a-uuid"):
        response = await api.get(f"/v1/exports/{export_id}", headers=auth(tenant="globex"))
        body = await problem(response, 404, "export_not_found")
        assert body.pop("instance") == f"/v1/exports/{export_id}"
        bodies.append(body)

    assert bodies[0] == bodies[1] == bodies[2]


async def test_foreign_export_is_absent_from_the_other_tenants_list(api: Client) -> None:
    await create(api, ORDERS)
    own = await create(api, ORDERS, tenant="globex")

    response = await api.get("/v1/exports", headers=auth(tenant="globex"))

    assert response.status == 200
    assert [item["id"] for item in (await response.json())["items"]] == [own["id"]]


# --- 3. bad input on POST /v1/exports: a 4xx problem and nothing written -----------------


async def test_create_rejects_malformed_json(api: Client, conn: Conn) -> None:
    response = await post_raw(api, b'{"export": "orders",')

    await problem(response, 400, "malformed_json")
    await assert_nothing_written(conn)


async def test_create_rejects_a_json_array_body(api: Client, conn: Conn) -> None:
    response = await post_json(api, [ORDERS])

    await problem(response, 422, "invalid_request")
    await assert_nothing_written(conn)


async def test_create_rejects_an_unknown_export(api: Client, conn: Conn) -> None:
    response = await post_json(api, {"export": "payroll"})

    await problem(response, 422, "unknown_export")
    await assert_nothing_written(conn)


async def test_create_rejects_an_unknown_format(api: Client, conn: Conn) -> None:
    response = await post_json(api, ORDERS | {"format": "xlsx"})

    await problem(response, 422, "unknown_format")
    await assert_nothing_written(conn)


async def test_create_rejects_an_unknown_compression(api: Client, conn: Conn) -> None:
    response = await post_json(api, ORDERS | {"compression": "rar"})

    await problem(response, 422, "unknown_format")
    await assert_nothing_written(conn)


async def test_create_rejects_a_missing_required_param(api: Client, conn: Conn) -> None:
    response = await post_json(api, {"export": "orders", "params": {}})

    body = await problem(response, 422, "invalid_params")
    assert body["param"] == "since"
    await assert_nothing_written(conn)


async def test_create_rejects_an_int_param_given_as_a_string(api: Client, conn: Conn) -> None:
    response = await post_json(api, {"export": "numbers", "params": {"rows": "12"}})

    body = await problem(response, 422, "invalid_params")
    assert body["param"] == "rows"
    await assert_nothing_written(conn)


async def test_create_rejects_an_impossible_date(api: Client, conn: Conn) -> None:
    response = await post_json(api, {"export": "orders", "params": {"since": "2025-13-45"}})

    body = await problem(response, 422, "invalid_params")
    assert body["param"] == "since"
    await assert_nothing_written(conn)


async def test_create_rejects_an_enum_value_not_in_the_list(api: Client, conn: Conn) -> None:
    params = {"since": "2025-01-01", "status": "lost"}

    response = await post_json(api, {"export": "orders", "params": params})

    body = await problem(response, 422, "invalid_params")
    assert body["param"] == "status"
    await assert_nothing_written(conn)


async def test_create_rejects_a_timestamp_without_a_zone(api: Client, conn: Conn) -> None:
    params = {"rows": 12, "at": "2025-06-01T12:00:00"}

    response = await post_json(api, {"export": "numbers", "params": params})

    body = await problem(response, 422, "invalid_params")
    assert body["param"] == "at"
    await assert_nothing_written(conn)


async def test_create_rejects_an_unknown_param(api: Client, conn: Conn) -> None:
    params = {"since": "2025-01-01", "colour": "red"}

    response = await post_json(api, {"export": "orders", "params": params})

    body = await problem(response, 422, "invalid_params")
    assert body["params"] == ["colour"]
    await assert_nothing_written(conn)


async def test_create_rejects_an_unknown_top_level_field(api: Client, conn: Conn) -> None:
    response = await post_json(api, ORDERS | {"priority": "high"})

    body = await problem(response, 422, "invalid_request")
    assert body["fields"] == ["priority"]
    await assert_nothing_written(conn)


async def test_create_rejects_a_body_over_max_body_bytes(
    api: Client, conn: Conn, settings: Settings
) -> None:
    data = json.dumps(ORDERS | {"file_name": "x" * settings.max_body_bytes})
    assert len(data) > settings.max_body_bytes

    response = await post_raw(api, data)

    await problem(response, 413, "payload_too_large")
    await assert_nothing_written(conn)


async def test_create_rejects_a_text_plain_body(api: Client, conn: Conn) -> None:
    response = await post_raw(api, json.dumps(ORDERS), content_type="text/plain")

    await problem(response, 415, "unsupported_media_type")
    await assert_nothing_written(conn)


async def test_create_rejects_a_recipient_other_than_the_caller(api: Client, conn: Conn) -> None:
    response = await post_json(api, ORDERS | {"recipient": "someone@elsewhere.example"})

    await problem(response, 422, "recipient_not_allowed")
    await assert_nothing_written(conn)


async def test_create_rejects_a_lone_surrogate_in_a_string_param(api: Client, conn: Conn) -> None:
    # json.dumps sends the lone surrogate as the escape \ud800: valid JSON, not valid Unicode.
    response = await post_json(api, {"export": "numbers", "params": {"rows": 1, "fill": "\ud800"}})

    await client_error(response)
    await assert_nothing_written(conn)


async def test_create_rejects_deeply_nested_json(api: Client, conn: Conn) -> None:
    response = await post_raw(api, "[" * 50_000)

    await client_error(response)
    await assert_nothing_written(conn)


async def test_create_rejects_a_nul_in_an_allowed_recipient(
    make_client: MakeClient, conn: Conn
) -> None:
    client: Client = await make_client(role="api", allow_recipient_override=True)

    response = await post_json(client, ORDERS | {"recipient": "a\u0000b@elsewhere.example"})

    await client_error(response)
    await assert_nothing_written(conn)


async def test_create_sanitises_path_separators_and_control_chars_in_file_name(
    api: Client,
) -> None:
    # (A NUL is refused outright for every string: see the recipient test.)
    response = await post_json(api, ORDERS | {"file_name": "../..\\etc/pass\x07wd\r\n\x1b.txt"})

    assert response.status == 202, await response.text()
    name: str = (await response.json())["file_name"]
    assert "/" not in name and "\\" not in name
    assert not [ch for ch in name if unicodedata.category(ch).startswith("C")]
    assert name.endswith(".csv")


# --- 4. GET /v1/exports ------------------------------------------------------------------


async def list_page(client: Client, query: str) -> dict[str, Any]:
    response = await client.get(f"/v1/exports?{query}", headers=auth())
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    conforms("ExportPage", body)
    return body


async def test_list_pages_newest_first_with_a_cursor(api: Client) -> None:
    created = [(await create(api, ORDERS))["id"] for _ in range(5)]
    first = await list_page(api, "limit=2")
    second = await list_page(api, f"limit=2&cursor={first['next_cursor']}")
    third = await list_page(api, f"limit=2&cursor={second['next_cursor']}")

    pages = [first, second, third]
    assert [len(page["items"]) for page in pages] == [2, 2, 1]
    assert first["next_cursor"] and second["next_cursor"]
    assert third["next_cursor"] is None
    items = [item for page in pages for item in page["items"]]
    assert [item["id"] for item in items] == created[::-1]
    stamps = [datetime.fromisoformat(item["created_at"]) for item in items]
    assert stamps == sorted(stamps, reverse=True)


async def test_list_filters_by_status(api: Client) -> None:
    created = {(await create(api, ORDERS))["id"] for _ in range(2)}

    queued = await list_page(api, "status=queued")
    succeeded = await list_page(api, "status=succeeded")

    assert {item["id"] for item in queued["items"]} == created
    assert succeeded["items"] == []


async def test_list_rejects_an_invalid_cursor(api: Client) -> None:
    response = await api.get("/v1/exports?cursor=not-a-cursor", headers=auth())

    await problem(response, 400, "invalid_cursor")


async def test_list_rejects_a_cursor_with_an_out_of_range_timestamp(api: Client) -> None:
    raw = json.dumps(["0001-01-01T00:00:00+14:00", str(uuid.uuid4())]).encode()
    cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")

    response = await api.get(f"/v1/exports?cursor={cursor}", headers=auth())

    await problem(response, 400, "invalid_cursor")


async def test_list_rejects_limit_0_and_limit_1000(api: Client) -> None:
    for limit in (0, 1000):
        response = await api.get(f"/v1/exports?limit={limit}", headers=auth())

        await problem(response, 400, "bad_request")


# --- 5. GET /v1/export-types -------------------------------------------------------------


async def export_types(client: Client) -> dict[str, dict[str, Any]]:
    response = await client.get("/v1/export-types", headers=auth())
    assert response.status == 200, await response.text()
    body = await response.json()
    conforms("ExportTypes", body)
    return {item["name"]: item for item in body["items"]}


async def test_export_types_lists_the_catalog(api: Client, catalog: Catalog) -> None:
    types = await export_types(api)

    assert sorted(types) == sorted(catalog.exports)
    assert {"broken", "numbers", "orders"} <= types.keys()
    assert types["orders"]["title"] == "Orders"
    assert types["orders"]["formats"] == ["csv", "jsonl", "parquet"]


async def test_export_types_describe_orders_params_with_types_required_and_values(
    api: Client,
) -> None:
    orders = (await export_types(api))["orders"]

    assert orders["params"] == [
        {"name": "since", "type": "date", "required": True},
        {"name": "until", "type": "date", "required": False},
        {
            "name": "status",
            "type": "enum",
            "required": False,
            "values": ["placed", "paid", "shipped", "refunded"],
        },
    ]


# --- 6. health, unknown routes and methods -----------------------------------------------


async def test_healthz_is_200(api: Client) -> None:
    response = await api.get("/healthz")

    assert response.status == 200


async def test_readyz_is_200_and_ready_once_the_listener_is_up(api: Client) -> None:
    async def ready() -> bool:
        return (await api.get("/readyz")).status == 200

    await eventually(ready, within=10)
    body = await (await api.get("/readyz")).json()

    assert body == {
        "status": "ready",
        "checks": {"database": "ok", "listener": "ok"},
        "role": "api",
    }


async def test_unknown_route_is_a_404_problem(api: Client) -> None:
    response = await api.get("/v1/nothing-here", headers=auth())

    await problem(response, 404, "not_found")


async def test_wrong_method_is_a_405_problem(api: Client) -> None:
    response = await api.delete("/v1/exports", headers=auth())

    await problem(response, 405, "method_not_allowed")


async def test_wrong_method_405_names_the_allowed_methods(api: Client) -> None:
    response = await api.delete("/v1/exports", headers=auth())

    assert {"GET", "POST"} <= {m.strip() for m in response.headers["Allow"].split(",")}


# --- 7 and 8. GET ?wait, and the 202's headers -------------------------------------------


async def test_non_numeric_wait_is_a_400_problem(api: Client) -> None:
    created = await create(api, ORDERS)

    response = await api.get(f"/v1/exports/{created['id']}?wait=abc", headers=auth())

    await problem(response, 400, "bad_request")


async def test_202_has_location_of_the_export_and_an_etag(api: Client) -> None:
    response = await post_json(api, ORDERS)

    assert response.status == 202, await response.text()
    body = await response.json()
    assert response.headers["Location"] == f"/v1/exports/{body['id']}"
    assert response.headers["ETag"] == f'"{body["version"]}"'


async def test_openapi_describes_the_routes_and_the_catalog(api: Client) -> None:
    response = await api.get("/openapi.json", headers=auth())

    assert response.status == 200
    spec = await response.json()
    assert spec["openapi"].startswith("3.1")
    assert {"/v1/exports", "/v1/exports/{export_id}", "/v1/exports/{export_id}/cancel"} <= set(
        spec["paths"]
    )
    variants = {v["title"]: v for v in spec["components"]["schemas"]["ExportRequest"]["oneOf"]}
    assert {"orders (csv)", "orders (jsonl)", "orders (parquet)"} <= set(variants)
    assert variants["orders (parquet)"]["properties"]["compression"]["const"] == "none"
    orders = variants["orders (csv)"]["properties"]["params"]
    assert orders["required"] == ["since"]
    assert orders["properties"]["since"]["format"] == "date"
    # An optional parameter may be null (its default).
    assert orders["properties"]["status"]["enum"] == ["placed", "paid", "shipped", "refunded", None]


async def test_the_openapi_document_needs_a_token_like_the_catalog(api: Client) -> None:
    response = await api.get("/openapi.json")

    await problem(response, 401, "unauthorized")


async def test_a_worker_answers_only_health_readiness_and_metrics(make_client: MakeClient) -> None:
    worker: Client = await make_client(role="worker")

    assert (await worker.get("/healthz")).status == 200
    assert (await worker.get("/metrics")).status == 200
    assert (await worker.get("/readyz")).status in (200, 503)
    for method, path in (("POST", "/v1/exports"), ("GET", "/v1/exports"), ("GET", "/openapi.json")):
        response = await worker.request(method, path, json=ORDERS, headers=auth())
        await problem(response, 404, "not_found")
