"""The verifier's memory of verified tokens: a hit answers as a fresh verification would,
an expired token is refused even when remembered, and only tokens that verified in full are
remembered, a bounded number of them."""

from __future__ import annotations

import time

import pytest

from exportd.api.auth import CACHED_TOKENS, Identity, Verifier
from exportd.errors import Unauthorized
from tests.support.tokens import AUDIENCE, JWT_SECRET, make_token


@pytest.fixture
def verifier() -> Verifier:
    return Verifier(JWT_SECRET, "HS256", AUDIENCE, None)


def bearer(token: str) -> str:
    return f"Bearer {token}"


def test_a_remembered_token_gives_the_same_identity(verifier: Verifier) -> None:
    token = make_token(tenant="acme", sub="u-1", scopes=("exportd:webhooks",))

    first = verifier.verify(bearer(token))
    again = verifier.verify(bearer(f" {token} "))

    assert first == again == Identity("u-1", "acme", "user-1@acme.example", first.scopes)
    assert first.scopes == frozenset({"exportd:webhooks"})
    assert list(verifier._verified) == [token]  # the second answer came from memory


def test_a_remembered_token_is_refused_once_it_expires(
    verifier: Verifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Expired 25 s ago: still inside the 30 s leeway, so it verifies and is remembered.
    token = make_token(ttl_s=-25)
    verifier.verify(bearer(token))
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + 10)

    with pytest.raises(Unauthorized, match="token expired"):
        verifier.verify(bearer(token))
    assert token not in verifier._verified  # forgotten: the next try is a full verification


@pytest.mark.parametrize(
    "token",
    [
        make_token(secret="another-secret-that-is-long-enough-for-hs256"),
        make_token(audience="someone-else"),
        make_token(tenant=""),
        make_token(ttl_s=-120),
    ],
    ids=["signature", "audience", "tenant", "expired"],
)
def test_a_token_that_fails_is_refused_every_time(verifier: Verifier, token: str) -> None:
    for _ in range(2):
        with pytest.raises(Unauthorized):
            verifier.verify(bearer(token))
    assert not verifier._verified  # what the cache holds is the behaviour here


def test_the_memory_is_bounded_and_drops_the_oldest(verifier: Verifier) -> None:
    tokens = [make_token(sub=f"u-{i}") for i in range(CACHED_TOKENS + 5)]
    for token in tokens:
        verifier.verify(bearer(token))

    remembered = verifier._verified
    assert len(remembered) == CACHED_TOKENS
    assert tokens[0] not in remembered and tokens[-1] in remembered
    assert verifier.verify(bearer(tokens[0])).sub == "u-0"  # verified again, from scratch
    assert tokens[0] in remembered and tokens[5] not in remembered
