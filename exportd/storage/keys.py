"""Where an export's files go in the bucket."""

from __future__ import annotations

import uuid


def export_prefix(prefix: str, tenant: str, export_id: uuid.UUID) -> str:
    """Everything any attempt of one export writes lives under this."""
    return f"{prefix.strip('/')}/{tenant}/{export_id}/"


def object_key(prefix: str, tenant: str, export_id: uuid.UUID, claim: uuid.UUID, name: str) -> str:
    """Per-claim key: a stale attempt can only ever write (and delete) its own object."""
    return f"{export_prefix(prefix, tenant, export_id)}{claim}/{name}"
