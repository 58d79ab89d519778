"""The create request's JSON Schema: one variant per catalog export and format family, each
parameter typed. Limits come from the modules that enforce them, so the document and the
intake cannot disagree."""

from __future__ import annotations

from typing import Any, Final

from exportd.api.intake import CSV_DELIMITERS, FILE_NAME_ROOM, MAX_EXPORT_NAME
from exportd.export.catalog import Catalog
from exportd.export.definition import ExportType
from exportd.export.formats import COMPRESSIONS, FORMATS, SELF_COMPRESSED
from exportd.export.params import INT_RANGE, Param
from exportd.text import MAX_ADDRESS

Schema = dict[str, Any]

# Strings exportd stores: any text but NUL, which PostgreSQL cannot hold.
NO_NUL: Final = "^[^\\u0000]*$"

_PARAM_SCHEMAS: Final[dict[str, Schema]] = {
    "string": {"type": "string", "pattern": NO_NUL},
    "int": {"type": "integer", "minimum": INT_RANGE[0], "maximum": INT_RANGE[1]},
    "date": {"type": "string", "format": "date"},
    "timestamp": {"type": "string", "format": "date-time"},
    "bool": {"type": "boolean"},
    "enum": {"type": "string"},
}


def param_schema(param: Param) -> Schema:
    """A parameter's schema; an optional one may also be null, which means its default."""
    schema = dict(_PARAM_SCHEMAS[param.type])
    if not param.required:
        schema["type"] = [schema["type"], "null"]
    if param.values:
        schema["enum"] = [*param.values, *([] if param.required else [None])]
    if param.description:
        schema["description"] = param.description
    if param.default is not None:
        schema["default"] = param.default
    return schema


def _params(export: ExportType) -> Schema:
    return {
        "type": "object",
        "properties": {p.name: param_schema(p) for p in export.params},
        "required": [p.name for p in export.params if p.required],
        "additionalProperties": False,
    }


CSV_OPTIONS: Final[Schema] = {
    "type": "object",
    "properties": {
        "header": {"type": "boolean", "default": True},
        "delimiter": {"enum": list(CSV_DELIMITERS), "default": ","},
        "bom": {"type": "boolean", "default": False},
    },
    "additionalProperties": False,
}


def _variant(export: ExportType, formats: list[str]) -> Schema:
    """One shape of a create request: an export and a family of formats that share options
    (CSV with its options; JSON Lines; Parquet, which takes no outer compression)."""
    fmt: Schema
    properties: Schema = {
        "export": {"const": export.name, "description": export.title},
        "params": _params(export),
        "file_name": {
            "type": ["string", "null"],
            "maxLength": FILE_NAME_ROOM,
            "pattern": "^[^\\u0000]*[^ .\\u0000][^\\u0000]*$",
            "description": "The name the file downloads as; cleaned (no path parts, control "
            "characters or quotes) and given the format's extension.",
        },
        "recipient": {
            "type": ["string", "null"],
            "format": "email",
            "maxLength": MAX_ADDRESS,
            "description": "Whom to mail the link; the caller's own address unless the "
            "operator allows others (otherwise 422 recipient_not_allowed).",
        },
    }
    required = ["export"]
    if any(p.required for p in export.params):
        required.append("params")
    if formats == ["csv"]:
        fmt = {"const": "csv", "default": "csv"}
        properties["csv"] = {**CSV_OPTIONS, "type": ["object", "null"]}
    else:
        (name,) = formats
        fmt = {"const": name}
        required.append("format")
    properties["format"] = fmt
    self_compressed = formats[0] in SELF_COMPRESSED
    properties["compression"] = (
        {"const": "none", "default": "none"}
        if self_compressed
        else {"enum": list(COMPRESSIONS), "default": "none"}
    )
    example: Schema = {"export": export.name, "params": {p.name: p.sample() for p in export.params}}
    if "format" in required:
        example["format"] = formats[0]
    return {
        "title": f"{export.name} ({formats[0]})",
        "type": "object",
        "required": required,
        "properties": properties,
        "additionalProperties": False,
        "examples": [example],
    }


def export_request(catalog: Catalog) -> Schema:
    variants = [
        _variant(export, [fmt])
        for export in catalog.exports.values()
        for fmt in FORMATS
        if fmt in export.formats
    ]
    return {
        "description": f"An export from the catalog (names up to {MAX_EXPORT_NAME} chars), its "
        "parameters, and how to encode it.",
        "oneOf": variants,
    }
