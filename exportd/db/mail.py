"""The mail's bookkeeping: each send recorded before it starts and its outcome right after,
fenced by the notify job's lease."""

from __future__ import annotations

from typing import Final

from exportd.db.downloads import drop_link, link_digest
from exportd.db.pool import Conn
from exportd.db.rows import JobRow

# Fenced, before the send: stamps the attempt and stores the mail's link ($3, a token's
# hash; NULL for a mail without one), both or neither. No row when the lease is lost or the
# mail went out already.
BEGIN_MAIL: Final = """
WITH begun AS (
    UPDATE exports SET mail_attempted_at = now()
    FROM jobs
    WHERE jobs.id = $1 AND jobs.lease_token = $2 AND exports.id = jobs.export_id
      AND exports.notified_at IS NULL
    RETURNING exports.id
),
link AS (
    INSERT INTO download_links (token_sha256, export_id)
    SELECT $3, id FROM begun WHERE $3::bytea IS NOT NULL
)
SELECT id FROM begun"""


async def begin_mail(conn: Conn, job: JobRow, *, link_token: str | None) -> bool:
    """Record that a send begins and store the download link the mail carries, if any. False
    when the lease is gone or the mail was recorded as sent meanwhile."""
    digest = None if link_token is None else link_digest(link_token)
    return await conn.fetchval(BEGIN_MAIL, job.id, job.lease_token, digest) is not None


# The SMTP server refused the mail (nothing was delivered): a later attempt is a first send.
MAIL_REFUSED: Final = """
UPDATE exports SET mail_attempted_at = NULL
FROM jobs
WHERE jobs.id = $1 AND jobs.lease_token = $2 AND exports.id = jobs.export_id"""


async def mail_refused(conn: Conn, job: JobRow, *, link_token: str | None) -> None:
    """Undo what the attempt recorded: the send, and the link nobody received."""
    async with conn.transaction():
        await conn.execute(MAIL_REFUSED, job.id, job.lease_token)
        if link_token is not None:
            await drop_link(conn, link_token)
