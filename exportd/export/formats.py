"""What an export's file is: formats, compressions, their names and media types."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class Kind:
    extension: str
    content_type: str


FORMATS: Final = {
    "csv": Kind(".csv", "text/csv; charset=utf-8"),
    "jsonl": Kind(".jsonl", "application/x-ndjson"),
    "parquet": Kind(".parquet", "application/vnd.apache.parquet"),
}
COMPRESSIONS: Final = {
    "none": Kind("", ""),
    "gzip": Kind(".gz", "application/gzip"),
    "zstd": Kind(".zst", "application/zstd"),
}
# Parquet compresses its pages itself (zstd); wrapping the file would only hide its footer.
SELF_COMPRESSED: Final = frozenset({"parquet"})
UTF8_BOM: Final = b"\xef\xbb\xbf"


def extension(fmt: str, compression: str) -> str:
    return FORMATS[fmt].extension + COMPRESSIONS[compression].extension


def content_type(fmt: str, compression: str) -> str:
    """The object's media type: the compressed file's own type when compressed."""
    return COMPRESSIONS[compression].content_type or FORMATS[fmt].content_type
