"""Downloads: the mailed links (random tokens, stored only as their SHA-256) and the record of
every download, through the API or a link."""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from exportd.db.pool import Executor
from exportd.db.rows import DownloadRow

# 32 random bytes: unguessable, and short enough for a mail.
TOKEN_BYTES: Final = 32


def link_digest(token: str) -> bytes:
    """What a link is stored as: only its hash, so the table cannot be turned into downloads."""
    return hashlib.sha256(token.encode()).digest()


def new_link_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


DROP_LINK: Final = "DELETE FROM download_links WHERE token_sha256 = $1"


async def drop_link(conn: Executor, token: str) -> None:
    await conn.execute(DROP_LINK, link_digest(token))


# Owner-scoped: None when the export is not the caller's; else how many links were revoked.
REVOKE_LINKS: Final = """
WITH owned AS (SELECT id FROM exports WHERE id = $1 AND tenant = $2 AND owner_sub = $3),
revoked AS (
    UPDATE download_links SET revoked_at = now()
    WHERE export_id = (SELECT id FROM owned) AND revoked_at IS NULL
    RETURNING 1
)
SELECT (SELECT count(*) FROM revoked) FROM owned"""


async def revoke_links(conn: Executor, export_id: uuid.UUID, tenant: str, sub: str) -> int | None:
    revoked: int | None = await conn.fetchval(REVOKE_LINKS, export_id, tenant, sub)
    return revoked


@dataclass(frozen=True, slots=True)
class Granted:
    """A download allowed and recorded: the object to presign, and when it goes away."""

    object_key: str
    file_name: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Client:
    """Who downloads: the address behind the trusted proxies, and what it said it is."""

    address: ipaddress.IPv4Address | ipaddress.IPv6Address | None
    user_agent: str | None


# One statement: the check (a succeeded export whose file is still offered) and the record
# commit together, and the export's version moves, so its ETag and long-polls see it.
_RECORD: Final = """
WITH hit AS (
    UPDATE exports SET download_count = download_count + 1, last_download_at = now(),
                       version = version + 1
    WHERE {which} AND status = 'succeeded' AND expires_at > now() AND object_key IS NOT NULL
    RETURNING id, object_key, file_name, expires_at
),
logged AS (
    INSERT INTO downloads (export_id, route, client_ip, user_agent)
    SELECT id, '{route}', {client} FROM hit
)
SELECT object_key, file_name, expires_at FROM hit"""

RECORD_API_DOWNLOAD: Final = _RECORD.format(
    which="id = $1 AND tenant = $2 AND owner_sub = $3", route="api", client="$4, $5"
)
RECORD_LINK_DOWNLOAD: Final = _RECORD.format(
    which="""id = (SELECT export_id FROM download_links
                   WHERE token_sha256 = $1 AND revoked_at IS NULL)""",
    route="link",
    client="$2, $3",
)


async def record_api_download(
    conn: Executor, export_id: uuid.UUID, tenant: str, sub: str, client: Client
) -> Granted | None:
    """Record the owner's download; None when the export is not theirs or has no file now."""
    record = await conn.fetchrow(
        RECORD_API_DOWNLOAD, export_id, tenant, sub, client.address, client.user_agent
    )
    return Granted(*record.values()) if record else None


async def record_link_download(conn: Executor, token: str, client: Client) -> Granted | None:
    """Record a download through a mailed link; None when the link is unknown or revoked, or
    its export has no file now."""
    record = await conn.fetchrow(
        RECORD_LINK_DOWNLOAD, link_digest(token), client.address, client.user_agent
    )
    return Granted(*record.values()) if record else None


@dataclass(frozen=True, slots=True)
class LinkState:
    """Why a link did not download: revoked, or its export's state."""

    revoked: bool
    status: str
    expires_at: datetime | None


FIND_LINK: Final = """
SELECT download_links.revoked_at IS NOT NULL, exports.status, exports.expires_at
FROM download_links JOIN exports ON exports.id = download_links.export_id
WHERE download_links.token_sha256 = $1"""


async def find_link(conn: Executor, token: str) -> LinkState | None:
    record = await conn.fetchrow(FIND_LINK, link_digest(token))
    return LinkState(*record.values()) if record else None


# Keyset page, newest first; $2/$3 is the last row of the previous page.
LIST_DOWNLOADS: Final = """
SELECT id, at, route, client_ip, user_agent FROM downloads
WHERE export_id = $1 AND ($2::timestamptz IS NULL OR (at, id) < ($2, $3::bigint))
ORDER BY at DESC, id DESC
LIMIT $4"""


async def list_downloads(
    conn: Executor, export_id: uuid.UUID, *, after: tuple[datetime, int] | None, limit: int
) -> list[DownloadRow]:
    at, last_id = after if after else (None, None)
    records = await conn.fetch(LIST_DOWNLOADS, export_id, at, last_id, limit)
    return [DownloadRow.from_record(r) for r in records]
