"""Validation of a create-export request: defaults, types, formats, CSV options, recipients,
file names, and params bound through the catalog."""

from __future__ import annotations

import re
from typing import Any

import pytest

from exportd.api.auth import Identity
from exportd.api.intake import (
    MAX_FILE_NAME,
    InvalidRecipient,
    RecipientNotAllowed,
    file_name,
    parse_create,
)
from exportd.db.rows import NewExport
from exportd.errors import InvalidParams, InvalidRequest, UnknownExport, UnknownFormat
from exportd.export.catalog import Catalog
from tests.support.catalog import load_test_catalog

CALLER = Identity(sub="user-1", tenant="t1", email="alice@example.com")

# Two small exports: one offering every format, one offering CSV only.
CATALOG = Catalog.from_dict(
    {
        "exports": {
            "orders": {
                "sql": "SELECT id FROM demo.orders WHERE tenant = :tenant AND day >= :since",
                "params": {"since": {"type": "date", "required": True}},
            },
            "csv_only": {
                "sql": "SELECT 1 AS one",
                "tenant_scoped": False,
                "formats": ["csv"],
            },
        }
    }
)


def parse(allow_recipient: bool = False, identity: Identity = CALLER, **body: Any) -> NewExport:
    """parse_create on a valid orders request, with `body` replacing or adding fields."""
    request = {"export": "orders", "params": {"since": "2025-01-01"}} | body
    return parse_create(request, identity, CATALOG, allow_recipient=allow_recipient)


# --- defaults ---------------------------------------------------------------------


def test_defaults_are_csv_uncompressed_to_the_caller() -> None:
    new = parse()
    assert (new.format, new.compression, new.options) == ("csv", "none", {})
    assert (new.tenant, new.owner_sub, new.recipient) == ("t1", "user-1", "alice@example.com")
    assert new.export_name == "orders"


@pytest.mark.parametrize(
    ("fmt", "compression", "suffix"),
    [
        ("csv", "none", ".csv"),
        ("csv", "gzip", ".csv.gz"),
        ("jsonl", "zstd", ".jsonl.zst"),
        ("parquet", "none", ".parquet"),
    ],
)
def test_generated_file_name_has_export_stamp_and_extension(
    fmt: str, compression: str, suffix: str
) -> None:
    new = parse(format=fmt, compression=compression)
    assert re.fullmatch(rf"orders-\d{{8}}-\d{{6}}{re.escape(suffix)}", new.file_name)


def test_each_export_gets_its_own_id() -> None:
    assert parse().id != parse().id


# --- shape and JSON types ---------------------------------------------------------


@pytest.mark.parametrize("body", [[], "orders", None, 3])
def test_body_that_is_not_an_object_is_invalid(body: Any) -> None:
    with pytest.raises(InvalidRequest, match="JSON object"):
        parse_create(body, CALLER, CATALOG, allow_recipient=False)


def test_unknown_fields_are_named_in_the_error() -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse(zeta=1, alpha=2)
    assert caught.value.extra == {"fields": ["alpha", "zeta"]}


@pytest.mark.parametrize(
    ("field", "value", "path"),
    [
        ("export", None, "$.export"),
        ("export", 7, "$.export"),
        ("export", ["orders"], "$.export"),
        ("format", 5, "$.format"),
        ("format", None, "$.format"),
        ("format", ["csv"], "$.format"),
        ("compression", 5, "$.compression"),
        ("compression", ["gzip"], "$.compression"),
        ("compression", {"gzip": True}, "$.compression"),
        ("params", [], "$.params"),
        ("params", "since=2025-01-01", "$.params"),
        ("file_name", 1, "$.file_name"),
        ("file_name", ["a.csv"], "$.file_name"),
        ("file_name", True, "$.file_name"),
        ("recipient", 1, "$.recipient"),
        ("csv", [], "$.csv"),
        ("csv", ";", "$.csv"),
        ("csv", {"header": "yes"}, "$.csv.header"),
        ("csv", {"delimiter": 1}, "$.csv.delimiter"),
    ],
)
def test_a_field_of_the_wrong_json_type_is_invalid_and_named(
    field: str, value: Any, path: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse(**{field: value})
    assert type(caught.value) is InvalidRequest
    assert caught.value.detail.endswith(f"at `{path}`")


@pytest.mark.parametrize("name", ["", "Orders", "1orders", "or ders", "x" * 64])
def test_export_name_must_look_like_a_catalog_name(name: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse(export=name)
    assert type(caught.value) is InvalidRequest


def test_export_not_in_catalog_is_unknown() -> None:
    with pytest.raises(UnknownExport):
        parse(export="nope")


@pytest.mark.parametrize("fmt", ["CSV", "xlsx", ""])
def test_format_of_another_value_is_unknown_format(fmt: str) -> None:
    with pytest.raises(UnknownFormat) as caught:
        parse(format=fmt)
    assert caught.value.extra == {"formats": ["csv", "jsonl", "parquet"]}


@pytest.mark.parametrize("compression", ["GZIP", "brotli", ""])
def test_compression_of_another_value_is_unknown_format(compression: str) -> None:
    with pytest.raises(UnknownFormat, match="compression"):
        parse(compression=compression)


@pytest.mark.parametrize(
    "recipient", ["bob", "a b@example.com", "", "bob@", "a@b@example.com", "é@example.com", "a@1.2"]
)
def test_recipient_must_be_a_plain_mail_address(recipient: str) -> None:
    with pytest.raises(InvalidRecipient, match="'recipient'"):
        parse(allow_recipient=True, recipient=recipient)


# --- formats ----------------------------------------------------------------------


def test_format_not_offered_by_the_export_is_refused() -> None:
    with pytest.raises(UnknownFormat) as caught:
        parse(export="csv_only", params={}, format="jsonl")
    assert caught.value.extra == {"formats": ["csv"]}


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_parquet_refuses_outer_compression(compression: str) -> None:
    with pytest.raises(UnknownFormat, match="compresses internally"):
        parse(format="parquet", compression=compression)


# --- CSV options ------------------------------------------------------------------


def test_csv_options_are_kept_as_given() -> None:
    options = {"header": False, "delimiter": ";", "bom": True}
    assert parse(csv=options).options == options


def test_csv_null_means_no_options() -> None:
    assert parse(csv=None).options == {}


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_csv_options_apply_to_csv_only(fmt: str) -> None:
    with pytest.raises(InvalidRequest, match="csv format only"):
        parse(format=fmt, csv={"header": False})


def test_unknown_csv_option_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="quote"):
        parse(csv={"quote": "'"})


@pytest.mark.parametrize("flag", ["header", "bom"])
@pytest.mark.parametrize("value", [1, "true", None])
def test_csv_flags_must_be_booleans(flag: str, value: Any) -> None:
    with pytest.raises(InvalidRequest, match=rf"csv\.{flag}"):
        parse(csv={flag: value})


# Multi-byte (é, €, NBSP) or alphanumeric: COPY cannot take them, or a reader could not tell
# them from the data; refused at intake instead of failing the build.
@pytest.mark.parametrize(
    "delimiter", ["", ";;", '"', "\n", "\r", 9, None, "é", "€", "\u00a0", "a", "7"]
)
def test_bad_delimiter_is_refused(delimiter: Any) -> None:
    with pytest.raises(InvalidRequest, match=r"csv\.delimiter"):
        parse(csv={"delimiter": delimiter})


@pytest.mark.parametrize("delimiter", [";", "\t", "|", " ", ":"])
def test_single_character_delimiter_is_accepted(delimiter: str) -> None:
    assert parse(csv={"delimiter": delimiter}).options == {"delimiter": delimiter}


# --- recipient --------------------------------------------------------------------


def test_recipient_override_allowed_when_configured() -> None:
    assert parse(allow_recipient=True, recipient="bob@example.com").recipient == "bob@example.com"


def test_recipient_override_refused_when_not_configured() -> None:
    with pytest.raises(RecipientNotAllowed):
        parse(recipient="bob@example.com")


def test_recipient_equal_to_caller_is_always_allowed() -> None:
    assert parse(recipient="alice@example.com").recipient == "alice@example.com"


def test_caller_without_email_gets_no_recipient() -> None:
    assert parse(identity=Identity(sub="svc", tenant="t1", email=None)).recipient is None


def test_caller_without_email_cannot_name_a_recipient_when_not_allowed() -> None:
    anonymous = Identity(sub="svc", tenant="t1", email=None)
    with pytest.raises(RecipientNotAllowed):
        parse(identity=anonymous, recipient="bob@example.com")


# --- file_name sanitising ---------------------------------------------------------


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        ("report", "report.csv"),
        ("report.csv", "report.csv"),
        ("REPORT.CSV", "REPORT.CSV"),
        ("../../etc/passwd", "_.._etc_passwd.csv"),
        ("a\\b/c", "a_b_c.csv"),
        ("a\nb\tc\x00d", "a_b_c_d.csv"),
        ("evil\u202egpj.csv", "evil_gpj.csv"),  # right-to-left override (a format char)
        ('say "hi"', "say _hi_.csv"),
        (".bashrc", "bashrc.csv"),
        ("  . report . ", "report.csv"),
        ("cafe\u0301", "caf\u00e9.csv"),  # NFC: one code point, as every client shows it
        ("Bericht Übersicht ✓", "Bericht Übersicht ✓.csv"),
    ],
)
def test_file_name_is_sanitised(requested: str, expected: str) -> None:
    assert file_name(requested, "orders", "csv", "none") == expected


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        ("report", "report.csv.gz"),
        ("report.csv", "report.csv.gz"),  # the format's extension is not doubled
        ("report.CSV.GZ", "report.CSV.GZ"),
        ("report.txt", "report.txt.csv.gz"),
    ],
)
def test_file_name_gets_the_compressed_extension(requested: str, expected: str) -> None:
    assert file_name(requested, "orders", "csv", "gzip") == expected


@pytest.mark.parametrize("requested", ["", "   ", "...", " . . "])
def test_file_name_with_nothing_usable_is_refused(requested: str) -> None:
    with pytest.raises(InvalidRequest, match="no usable characters"):
        file_name(requested, "orders", "csv", "none")


def test_file_name_at_the_limit_is_accepted() -> None:
    name = "x" * (MAX_FILE_NAME - len(".csv")) + ".csv"
    assert file_name(name, "orders", "csv", "none") == name


def test_file_name_over_the_limit_once_extended_is_refused() -> None:
    with pytest.raises(InvalidRequest, match=f"at most {MAX_FILE_NAME}"):
        file_name("x" * (MAX_FILE_NAME - len(".csv") + 1), "orders", "csv", "none")


def test_requested_file_name_flows_through_parse_create() -> None:
    assert parse(file_name="q3/orders", compression="zstd").file_name == "q3_orders.csv.zst"


# --- params through the catalog ---------------------------------------------------


def test_params_are_bound_with_defaults_from_the_test_catalog() -> None:
    catalog = load_test_catalog()
    new = parse_create(
        {"export": "numbers", "params": {"rows": 5}}, CALLER, catalog, allow_recipient=False
    )
    assert new.params == {"rows": 5, "fill": "x", "flag": True, "at": "2025-06-01T12:00:00Z"}


def test_optional_params_left_out_are_bound_as_null() -> None:
    catalog = load_test_catalog()
    body = {"export": "orders", "params": {"since": "2025-01-01", "status": "paid"}}
    new = parse_create(body, CALLER, catalog, allow_recipient=False)
    assert new.params == {"since": "2025-01-01", "until": None, "status": "paid"}


def test_params_left_out_still_require_the_required_ones() -> None:
    with pytest.raises(InvalidParams, match="'since' is required"):
        parse_create({"export": "orders"}, CALLER, CATALOG, allow_recipient=False)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"since": "2025-01-01", "extra": 1}, "unknown parameter"),
        ({"since": "yesterday"}, "'since'"),
        ({"since": 20250101}, "'since'"),
    ],
)
def test_invalid_params_are_refused(params: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidParams, match=match):
        parse(params=params)


# --- hostile text -------------------------------------------------------------------


@pytest.mark.parametrize(
    "separator", ["\u2028", "\u2029", "\x85", "\x1c", "\x1d", "\x1e", "\x0b", "\x0c", "\r", "\n"]
)
def test_every_line_break_str_splitlines_knows_is_replaced_in_file_names(separator: str) -> None:
    name = parse(file_name=f"q3{separator}report").file_name

    assert name == "q3_report.csv"
    assert len(name.splitlines()) == 1


def test_an_encoded_word_in_a_file_name_is_kept_as_plain_text() -> None:
    # Harmless here: the mail encodes every header that carries user text (see notify).
    requested = "=?utf-8?q?x=0D=0ABcc:_victim@evil.example?= report"

    assert parse(file_name=requested).file_name == requested + ".csv"


@pytest.mark.parametrize(
    "email", ["user@acme.example\r\nBcc: victim@evil.example", "user@acme.example\n", "a b@c.de"]
)
def test_a_token_email_that_is_not_a_plain_address_is_refused(email: str) -> None:
    caller = Identity(sub="user-1", tenant="t1", email=email)

    with pytest.raises(InvalidRecipient, match="email claim"):
        parse(identity=caller)
