"""Validation of a create-export request: from untrusted JSON, parsed by type, to a NewExport
or a 4xx error. Everything that could make the export fail later is checked here."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Final

import msgspec

from exportd.api.auth import Identity
from exportd.db.rows import NewExport
from exportd.errors import InvalidRequest, UnknownFormat
from exportd.export.catalog import Catalog
from exportd.export.formats import COMPRESSIONS, FORMATS, SELF_COMPRESSED
from exportd.export.params import NAME
from exportd.text import MAX_ADDRESS, is_address, one_line

MAX_FILE_NAME: Final = 150
# A requested name this long always fits once the longest extension (.jsonl.zst) is added.
FILE_NAME_ROOM: Final = MAX_FILE_NAME - max(
    len(f.extension + c.extension) for f in FORMATS.values() for c in COMPRESSIONS.values()
)
MAX_EXPORT_NAME: Final = 63
# One ASCII byte that PostgreSQL's COPY accepts and a reader can tell from data: a tab, a
# space or punctuation other than the quote (COPY refuses newline, CR and the quote itself).
CSV_DELIMITERS: Final = "\t !#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
_FILE_NAME_FORBIDDEN: Final = frozenset('/\\"')


class RecipientNotAllowed(InvalidRequest):
    code, title = "recipient_not_allowed", "Exports are mailed to the caller only"


class InvalidRecipient(InvalidRequest):
    code, title = "invalid_recipient", "Not a usable mail address"


class CsvOptions(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    header: bool = True
    delimiter: str = ","
    bom: bool = False


class CreateRequest(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """The body of POST /v1/exports, each field with its JSON type."""

    export: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_EXPORT_NAME)]
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    format: str = "csv"
    compression: str = "none"
    file_name: Annotated[str, msgspec.Meta(max_length=FILE_NAME_ROOM)] | None = None
    recipient: Annotated[str, msgspec.Meta(max_length=MAX_ADDRESS)] | None = None
    csv: CsvOptions | None = None


FIELDS: Final = frozenset(CreateRequest.__struct_fields__)


def parse_create(
    body: Any, identity: Identity, catalog: Catalog, *, allow_recipient: bool
) -> NewExport:
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise InvalidRequest(f"unknown field(s): {', '.join(unknown)}", fields=unknown)
    try:
        request = msgspec.convert(body, CreateRequest)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(str(exc)) from None
    if not NAME.fullmatch(request.export):
        raise InvalidRequest(f"'export' must match {NAME.pattern}")
    export_type = catalog.get(request.export)
    fmt, compression = request.format, request.compression
    if fmt not in export_type.formats:
        raise UnknownFormat(
            f"format {fmt!r} is not offered for {request.export!r}; choose one of "
            f"{', '.join(export_type.formats)}",
            formats=list(export_type.formats),
        )
    if compression not in COMPRESSIONS:
        raise UnknownFormat(
            f"compression {compression!r} is not supported; choose one of "
            f"{', '.join(COMPRESSIONS)}",
            compressions=list(COMPRESSIONS),
        )
    if fmt in SELF_COMPRESSED and compression != "none":
        raise UnknownFormat(f"{fmt} compresses internally; leave 'compression' out")
    if request.csv is not None and fmt != "csv":
        raise InvalidRequest("'csv' options apply to the csv format only")
    return NewExport(
        id=uuid.uuid4(),
        tenant=identity.tenant,
        owner_sub=identity.sub,
        recipient=_recipient(request.recipient, identity, allow_recipient),
        export_name=request.export,
        params=export_type.bind(request.params),
        format=fmt,
        compression=compression,
        file_name=file_name(request.file_name, request.export, fmt, compression),
        options=_csv_options(request.csv, given=body.get("csv") or {}),
    )


def _csv_options(options: CsvOptions | None, *, given: dict[str, Any]) -> dict[str, Any]:
    """The CSV options the caller set (stored as given; the rest keep their defaults)."""
    if options is None:
        return {}
    if len(options.delimiter) != 1 or options.delimiter not in CSV_DELIMITERS:
        raise InvalidRequest(
            "csv.delimiter must be one ASCII character: a tab, a space or punctuation other "
            'than the quote (")'
        )
    return {name: getattr(options, name) for name in given}


def _recipient(requested: str | None, identity: Identity, allowed: bool) -> str | None:
    if requested is None:
        if identity.email is not None and not is_address(identity.email):
            raise InvalidRecipient(
                "the token's email claim is not a plain mail address; ask for a recipient or "
                "fix the claim"
            )
        return identity.email
    if not is_address(requested):
        raise InvalidRecipient("'recipient' must be a plain mail address (name@example.com)")
    mine = identity.email is not None and requested.lower() == identity.email.lower()
    if not (mine or allowed):
        raise RecipientNotAllowed("this service mails exports only to the caller's own address")
    return requested


def file_name(requested: str | None, export_name: str, fmt: str, compression: str) -> str:
    """A safe download name: one line of visible text, no path parts or quotes, the right
    extension (a name already ending in the format's gets only the compression's)."""
    fmt_ext = FORMATS[fmt].extension
    full_ext = fmt_ext + COMPRESSIONS[compression].extension
    if requested is None:
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        return f"{export_name}-{stamp}{full_ext}"
    cleaned = "".join(
        "_" if ch in _FILE_NAME_FORBIDDEN else ch for ch in one_line(requested)
    ).strip(" .")
    if not cleaned.strip("_"):
        raise InvalidRequest("'file_name' has no usable characters")
    lowered = cleaned.lower()
    if not lowered.endswith(full_ext):
        cleaned += full_ext.removeprefix(fmt_ext) if lowered.endswith(fmt_ext) else full_ext
    if len(cleaned) > MAX_FILE_NAME:
        raise InvalidRequest(f"'file_name' must be at most {MAX_FILE_NAME} characters")
    return cleaned
