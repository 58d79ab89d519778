"""Validation of a create-export request: from untrusted JSON to a NewExport, or a 4xx error."""

from __future__ import annotations

import re
import unicodedata
import uuid
from datetime import UTC, datetime
from typing import Any, Final

from exportd.api.auth import Identity
from exportd.db.rows import NewExport
from exportd.errors import InvalidRequest, UnknownFormat
from exportd.export.catalog import Catalog
from exportd.export.formats import COMPRESSIONS, SELF_COMPRESSED, extension

FIELDS: Final = frozenset(
    {"export", "params", "format", "compression", "file_name", "recipient", "csv"}
)
CSV_OPTIONS: Final = frozenset({"header", "delimiter", "bom"})
MAX_FILE_NAME: Final = 150
_EMAIL = re.compile(r"^[^@\s<>\"]+@[^@\s<>\"]+\.[^@\s<>\"]+$")


class RecipientNotAllowed(InvalidRequest):
    code, title = "recipient_not_allowed", "Exports are mailed to the caller only"


def parse_create(
    body: Any, identity: Identity, catalog: Catalog, *, allow_recipient: bool
) -> NewExport:
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise InvalidRequest(f"unknown field(s): {', '.join(unknown)}", fields=unknown)
    name = body.get("export")
    if not isinstance(name, str) or not name:
        raise InvalidRequest("'export' (the catalog export's name) is required")
    export_type = catalog.get(name)
    fmt = body.get("format", "csv")
    if fmt not in export_type.formats:
        raise UnknownFormat(
            f"format {fmt!r} is not offered for {name!r}; choose one of "
            f"{', '.join(export_type.formats)}",
            formats=list(export_type.formats),
        )
    compression = body.get("compression", "none")
    if not isinstance(compression, str) or compression not in COMPRESSIONS:
        raise UnknownFormat(
            f"compression {compression!r} is not supported; choose one of "
            f"{', '.join(COMPRESSIONS)}",
            compressions=list(COMPRESSIONS),
        )
    if fmt in SELF_COMPRESSED and compression != "none":
        raise UnknownFormat(f"{fmt} compresses internally; leave 'compression' out")
    options = _csv_options(body.get("csv")) if fmt == "csv" else {}
    if fmt != "csv" and "csv" in body:
        raise InvalidRequest("'csv' options apply to the csv format only")
    params = body.get("params", {})
    if not isinstance(params, dict):
        raise InvalidRequest("'params' must be a JSON object")
    bound = export_type.bind(params)
    return NewExport(
        id=uuid.uuid4(),
        tenant=identity.tenant,
        owner_sub=identity.sub,
        recipient=_recipient(body.get("recipient"), identity, allow_recipient),
        export_name=name,
        params=bound,
        format=fmt,
        compression=compression,
        file_name=file_name(body.get("file_name"), name, extension(fmt, compression)),
        options=options,
    )


def _csv_options(raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidRequest("'csv' must be an object: {header, delimiter, bom}")
    unknown = sorted(set(raw) - CSV_OPTIONS)
    if unknown:
        raise InvalidRequest(f"unknown csv option(s): {', '.join(unknown)}")
    for flag in ("header", "bom"):
        if flag in raw and not isinstance(raw[flag], bool):
            raise InvalidRequest(f"csv.{flag} must be true or false")
    delimiter = raw.get("delimiter", ",")
    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in '"\r\n':
        raise InvalidRequest("csv.delimiter must be one character, not a quote or newline")
    return dict(raw)


def _recipient(requested: Any, identity: Identity, allowed: bool) -> str | None:
    if requested is None:
        return identity.email
    if not isinstance(requested, str) or not _EMAIL.match(requested):
        raise InvalidRequest("'recipient' must be an email address")
    if requested != identity.email and not allowed:
        raise RecipientNotAllowed("this service mails exports only to the caller's own address")
    return requested


def file_name(requested: Any, export_name: str, extension: str) -> str:
    """A safe download name: no path parts, control characters or quotes; right extension."""
    if requested is None:
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        return f"{export_name}-{stamp}{extension}"
    if not isinstance(requested, str):
        raise InvalidRequest("'file_name' must be a string")
    cleaned = "".join(
        "_" if ch in '/\\"' or unicodedata.category(ch)[0] == "C" else ch
        for ch in unicodedata.normalize("NFC", requested)
    ).strip(" .")
    if not cleaned:
        raise InvalidRequest("'file_name' has no usable characters")
    if not cleaned.lower().endswith(extension):
        cleaned += extension
    if len(cleaned) > MAX_FILE_NAME:
        raise InvalidRequest(f"'file_name' must be at most {MAX_FILE_NAME} characters")
    return cleaned
