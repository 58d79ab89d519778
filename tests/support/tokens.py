"""Bearer tokens for the tests and the benchmarks, signed with the suite's HS256 secret."""

from __future__ import annotations

from typing import Any, Final

from exportd.api.auth import issue_token

JWT_SECRET: Final = "test-secret-that-is-long-enough-for-hs256"
AUDIENCE: Final = "exportd-test"


def make_token(
    *,
    tenant: str = "acme",
    sub: str = "user-1",
    email: str = "user-1@acme.example",
    ttl_s: int = 600,
    secret: str = JWT_SECRET,
    audience: str = AUDIENCE,
    scopes: tuple[str, ...] = (),
) -> str:
    return issue_token(
        secret,
        sub=sub,
        tenant=tenant,
        email=email,
        audience=audience,
        ttl_s=ttl_s,
        scopes=scopes,
    )


def auth(**claims: Any) -> dict[str, str]:
    """An Authorization header for a token with these claims (see make_token)."""
    return {"Authorization": f"Bearer {make_token(**claims)}"}
