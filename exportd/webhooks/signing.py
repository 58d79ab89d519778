"""Standard Webhooks signatures: the secret a tenant is shown once, and the headers that prove
a delivery came from us."""

from __future__ import annotations

import base64
import math
import secrets
from datetime import UTC, datetime
from typing import Final

from standardwebhooks import Webhook

SECRET_PREFIX: Final = "whsec_"


def new_secret() -> str:
    """A fresh signing secret: `whsec_` + base64 of 32 random bytes, shown to the caller once."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def signed_headers(
    secret: str, *, message_id: str, timestamp: datetime, body: bytes
) -> dict[str, str]:
    """webhook-id, webhook-timestamp (integer seconds) and webhook-signature (`v1,<base64>`)."""
    if timestamp.tzinfo is None:
        raise ValueError("timestamp must be timezone-aware")
    # Webhook.sign replaces (not converts) the zone with UTC, so hand it UTC already.
    utc = timestamp.astimezone(UTC)
    signature = Webhook(secret).sign(message_id, utc, body.decode("utf-8"))
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(math.floor(utc.timestamp())),
        "webhook-signature": signature,
    }
