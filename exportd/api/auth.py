"""Bearer JWT verification: signature, expiry and audience; identity is sub, tenant, email and
the OAuth scopes the token grants."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Final, Self

import jwt

from exportd.config import Settings
from exportd.errors import Unauthorized

REQUIRED_CLAIMS = ("exp", "aud", "sub", "tenant")
LEEWAY_S: Final = 30

# A client polling its export sends the same token every time: verifying its signature again
# is a seventh of a request's CPU. Verified tokens are remembered (bounded) with their expiry.
CACHED_TOKENS: Final = 4096


# Managing the tenant's webhooks: they see every export of the tenant, so not every user may.
WEBHOOKS_SCOPE = "exportd:webhooks"


@dataclass(frozen=True, slots=True)
class Identity:
    sub: str
    tenant: str
    email: str | None
    scopes: frozenset[str] = frozenset()


def _scopes(claims: dict[str, Any]) -> frozenset[str]:
    """RFC 8693's `scope` (space-separated), or the `scp` list some issuers send instead."""
    raw = claims.get("scope", claims.get("scp"))
    if isinstance(raw, str):
        return frozenset(raw.split())
    if isinstance(raw, list):
        return frozenset(s for s in raw if isinstance(s, str))
    return frozenset()


@dataclass(frozen=True, slots=True)
class Verifier:
    key: str
    algorithm: str
    audience: str
    issuer: str | None
    # token -> (identity, exp); only tokens that verified in full, oldest dropped first.
    _verified: dict[str, tuple[Identity, int]] = field(
        default_factory=dict, compare=False, repr=False
    )

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        key = (
            settings.jwt_secret
            if settings.jwt_algorithm.startswith("HS")
            else (settings.jwt_public_key)
        )
        return cls(key, settings.jwt_algorithm, settings.jwt_audience, settings.jwt_issuer or None)

    def verify(self, authorization: str | None) -> Identity:
        """Parse an Authorization header into an Identity, or raise Unauthorized."""
        if not authorization:
            raise Unauthorized("missing Authorization: Bearer token")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Authorization must be 'Bearer <token>'")
        token = token.strip()
        cached = self._verified.get(token)
        if cached is not None:
            identity, exp = cached
            if exp <= time.time() - LEEWAY_S:  # PyJWT's own test, so a hit ends as a miss would
                del self._verified[token]
                raise Unauthorized("token expired")
            return identity
        identity, exp = self._decode(token)
        if len(self._verified) >= CACHED_TOKENS:
            del self._verified[next(iter(self._verified))]
        self._verified[token] = (identity, exp)
        return identity

    def _decode(self, token: str) -> tuple[Identity, int]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self.key,
                algorithms=[self.algorithm],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": list(REQUIRED_CLAIMS)},
                leeway=LEEWAY_S,
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("token expired") from None
        except jwt.InvalidAudienceError:
            raise Unauthorized("token audience not accepted") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(f"invalid token: {exc}") from None
        sub, tenant, email = claims.get("sub"), claims.get("tenant"), claims.get("email")
        if not isinstance(sub, str) or not sub or not isinstance(tenant, str) or not tenant:
            raise Unauthorized("token needs string 'sub' and 'tenant' claims")
        identity = Identity(
            sub=sub,
            tenant=tenant,
            email=email if isinstance(email, str) else None,
            scopes=_scopes(claims),
        )
        return identity, int(claims["exp"])


def issue_token(
    secret: str,
    *,
    sub: str,
    tenant: str,
    email: str | None,
    audience: str,
    ttl_s: int,
    algorithm: str = "HS256",
    issuer: str | None = None,
    scopes: tuple[str, ...] = (),
) -> str:
    """A token signed with a shared HS* secret, for the dev stack, tests and `exportd token`
    (production tokens come from the gateway)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": sub,
        "tenant": tenant,
        "aud": audience,
        "iat": now,
        "exp": now + ttl_s,
    }
    if email is not None:
        claims["email"] = email
    if issuer:
        claims["iss"] = issuer
    if scopes:
        claims["scope"] = " ".join(scopes)
    return jwt.encode(claims, secret, algorithm=algorithm)
