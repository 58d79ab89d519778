"""The export catalog: placeholders, validation of the operator's TOML, binding parameters."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from exportd.dev.demo import CATALOG_PATH as DEMO_CATALOG
from exportd.errors import CatalogError, InvalidParams, UnknownExport
from exportd.export.catalog import Catalog
from exportd.export.definition import ExportType, to_positional
from tests.support.catalog import CATALOG_PATH, HOOKS


def catalog_data(name: str = "orders", **spec: Any) -> dict[str, Any]:
    """A one-export catalog; `spec` replaces keys of a valid export (None removes the key)."""
    base: dict[str, Any] = {
        "sql": "SELECT id FROM demo.orders WHERE tenant = :tenant AND created_at >= :since",
        "params": {"since": {"type": "date", "required": True}},
    }
    merged = {k: v for k, v in (base | spec).items() if v is not None}
    return {"exports": {name: merged}}


def with_param(**param: Any) -> dict[str, Any]:
    """A catalog whose export uses one parameter :p, declared as `param`."""
    return catalog_data(
        sql="SELECT id FROM demo.orders WHERE tenant = :tenant AND x = :p", params={"p": param}
    )


# A tenant-scoped export with one parameter of every type (and a required one).
TYPED: dict[str, Any] = {
    "exports": {
        "typed": {
            "sql": (
                "SELECT :s AS s, :i AS i, :d AS d, :t AS t, :b AS b, :e AS e, :r AS r\n"
                "FROM demo.orders WHERE tenant = :tenant AND tenant = :tenant"
            ),
            "params": {
                "s": {"type": "string"},
                "i": {"type": "int", "default": 10},
                "d": {"type": "date"},
                "t": {"type": "timestamp", "default": "2025-06-01T12:00:00Z"},
                "b": {"type": "bool", "default": False},
                "e": {"type": "enum", "values": ["red", "green"]},
                "r": {"type": "int", "required": True},
            },
        }
    }
}


@pytest.fixture
def typed() -> ExportType:
    return Catalog.from_dict(TYPED).get("typed")


# --- placeholders -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "positional", "names"),
    [
        ("SELECT :a, :b", "SELECT $1, $2", ("a", "b")),
        ("WHERE x = :b OR y = :a OR z = :b", "WHERE x = $1 OR y = $2 OR z = $1", ("b", "a")),
        (":first", "$1", ("first",)),
        ("f(:a,:b)", "f($1,$2)", ("a", "b")),
        ("x >= :since::date AND y::text = z", "x >= $1::date AND y::text = z", ("since",)),
        (
            "coalesce(:until::date, 'infinity'::date)",
            "coalesce($1::date, 'infinity'::date)",
            ("until",),
        ),
        ("note = ':x' AND n = :y", "note = ':x' AND n = $1", ("y",)),
        ("note = 'it''s :x' AND n = :y", "note = 'it''s :x' AND n = $1", ("y",)),
        ('"col:x" = :y', '"col:x" = $1', ("y",)),
        ("arr[1:2] AND arr[lo:hi]", "arr[1:2] AND arr[lo:hi]", ()),
        ("SELECT 1", "SELECT 1", ()),
    ],
)
def test_placeholders_become_numbered(sql: str, positional: str, names: tuple[str, ...]) -> None:
    assert to_positional(sql) == (positional, names)


def test_export_type_keeps_positional_sql_and_argument_order(typed: ExportType) -> None:
    assert typed.arg_names == ("s", "i", "d", "t", "b", "e", "r", "tenant")
    assert ":" not in typed.positional_sql.replace("::", "")
    assert "tenant = $8 AND tenant = $8" in typed.positional_sql


# --- validation of the catalog ----------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "no [exports.<name>] tables"),
        ({"exports": {}}, "no [exports.<name>] tables"),
        ({"exports": "orders"}, "no [exports.<name>] tables"),
        (catalog_data("Orders"), "export 'Orders': name must match"),
        (catalog_data("1st"), "export '1st': name must match"),
        (catalog_data("with-dash"), "export 'with-dash': name must match"),
        ({"exports": {"orders": "SELECT 1"}}, "export 'orders': must be a table"),
        (catalog_data(sql=None), "export 'orders': 'sql' is required"),
        (catalog_data(sql="   "), "export 'orders': 'sql' is required"),
        (catalog_data(sql=42), "export 'orders': 'sql' is required"),
        (
            catalog_data(sql="SELECT 1 WHERE :tenant = 'a'; DROP TABLE demo.orders"),
            "export 'orders': 'sql' must be a single statement",
        ),
        (
            catalog_data(sql="SELECT 1 WHERE :tenant = 'a' AND x < :until AND y = :zz"),
            "export 'orders': sql uses undeclared parameter(s) until, zz",
        ),
        (
            catalog_data(params={"since": {"type": "date"}, "tenant": {"type": "string"}}),
            "param 'tenant': 'tenant' is reserved",
        ),
        (catalog_data(params=[]), "export 'orders': 'params' must be a table"),
        (with_param(type="float"), "param 'p': type must be one of"),
        (with_param(), "param 'p': type must be one of"),
        (with_param(type="enum"), "param 'p': enum needs 'values'"),
        (with_param(type="enum", values=[]), "param 'p': enum needs 'values'"),
        (with_param(type="enum", values=[1, 2]), "param 'p': enum needs 'values'"),
        (with_param(type="enum", values="red"), "param 'p': enum needs 'values'"),
        (with_param(type="int", default="ten"), "param 'p': default 'ten' is invalid"),
        (with_param(type="int", default=True), "param 'p': default True is invalid"),
        (with_param(type="date", default="tomorrow"), "param 'p': default 'tomorrow' is invalid"),
        (
            with_param(type="enum", values=["red"], default="blue"),
            "param 'p': default 'blue' is invalid",
        ),
        (
            catalog_data(sql="SELECT id FROM demo.orders WHERE created_at >= :since"),
            "export 'orders': sql must filter by :tenant",
        ),
        (
            catalog_data(sql="SELECT id FROM demo.orders WHERE note = ':tenant' AND x = :since"),
            "export 'orders': sql must filter by :tenant",
        ),
        (catalog_data(formats=["xlsx"]), "export 'orders': formats must be"),
        (catalog_data(formats=[]), "export 'orders': formats must be"),
    ],
)
def test_invalid_catalogs_are_rejected_with_a_clear_message(
    data: dict[str, Any], message: str
) -> None:
    with pytest.raises(CatalogError) as caught:
        Catalog.from_dict(data, source="ops.toml")
    assert caught.value.detail.startswith("ops.toml: "), caught.value.detail
    assert message in caught.value.detail


def test_an_export_may_opt_out_of_tenant_scoping_deliberately() -> None:
    data = catalog_data(
        sql="SELECT g FROM generate_series(1, :n::int) AS g",
        params={"n": {"type": "int", "required": True}},
        tenant_scoped=False,
    )

    export = Catalog.from_dict(data).get("orders")

    assert export.arg_names == ("n",)
    assert export.args(export.bind({"n": 3}), "acme") == [3]


def test_a_trailing_semicolon_is_not_a_second_statement() -> None:
    data = catalog_data(sql="SELECT id FROM demo.orders WHERE tenant = :tenant AND a = :since;\n")

    export = Catalog.from_dict(data).get("orders")

    assert not export.sql.endswith(";")


def test_metadata_and_defaults_of_a_valid_export() -> None:
    data = catalog_data(title="All orders", description="Every order.")

    export = Catalog.from_dict(data).get("orders")

    assert (export.name, export.title, export.description) == (
        "orders",
        "All orders",
        "Every order.",
    )
    assert export.formats == ("csv", "jsonl", "parquet")
    [since] = export.params
    assert (since.name, since.type, since.required, since.default) == ("since", "date", True, None)


def test_an_unknown_export_name_is_reported() -> None:
    catalog = Catalog.from_dict(catalog_data())

    with pytest.raises(UnknownExport) as caught:
        catalog.get("invoices")

    assert "invoices" in caught.value.detail
    assert caught.value.extra == {"export": "invoices"}


# --- bind() and args() ------------------------------------------------------------


def test_a_missing_required_parameter_is_rejected(typed: ExportType) -> None:
    for params in ({}, {"r": None}):
        with pytest.raises(InvalidParams) as caught:
            typed.bind(params)
        assert caught.value.detail == "parameter 'r' is required"
        assert caught.value.extra == {"param": "r"}


def test_unknown_parameters_are_rejected_by_name(typed: ExportType) -> None:
    with pytest.raises(InvalidParams) as caught:
        typed.bind({"r": 1, "zeta": 1, "alpha": 2})

    assert caught.value.detail == "unknown parameter(s): alpha, zeta"
    assert caught.value.extra == {"params": ["alpha", "zeta"]}


def test_tenant_cannot_be_passed_as_a_parameter(typed: ExportType) -> None:
    with pytest.raises(InvalidParams) as caught:
        typed.bind({"r": 1, "tenant": "globex"})

    assert caught.value.extra == {"params": ["tenant"]}


def test_defaults_are_applied_and_absent_optionals_are_null(typed: ExportType) -> None:
    assert typed.bind({"r": 7}) == {
        "s": None,
        "i": 10,
        "d": None,
        "t": "2025-06-01T12:00:00Z",
        "b": False,
        "e": None,
        "r": 7,
    }


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("s", "hello, 'world'"),
        ("s", ""),
        ("i", 0),
        ("i", -(2**63)),
        ("i", 2**63 - 1),
        ("i", 5.0),  # JSON has one number type: an integral 5.0 is the integer 5
        ("d", "2025-01-31"),
        ("d", "2024-02-29"),
        ("t", "2025-06-01T12:00:00Z"),
        ("t", "2025-06-01T12:00:00.250+02:00"),
        ("b", True),
        ("b", False),
        ("e", "green"),
    ],
)
def test_each_type_accepts_its_values(typed: ExportType, name: str, value: Any) -> None:
    bound = typed.bind({"r": 1, name: value})

    assert bound[name] == value


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("s", 5),
        ("s", ["a"]),
        ("s", "nul\x00byte"),
        ("i", True),
        ("i", False),
        ("i", "5"),
        ("i", 5.5),
        ("i", 2.0**63),
        ("i", 2**63),
        ("i", -(2**63) - 1),
        ("d", "2025-02-30"),
        ("d", "yesterday"),
        ("d", 20250101),
        ("t", "2025-06-01T12:00:00"),
        ("t", "2025-06-01"),
        ("t", "soon"),
        ("t", 1_700_000_000),
        ("b", "true"),
        ("b", 1),
        ("e", "blue"),
        ("e", "RED"),
        ("e", 1),
        ("r", "1"),
    ],
)
def test_each_type_rejects_other_values(typed: ExportType, name: str, value: Any) -> None:
    params = {"r": 1} | {name: value}

    with pytest.raises(InvalidParams) as caught:
        typed.bind(params)

    assert caught.value.detail.startswith(f"parameter {name!r}: "), caught.value.detail
    assert caught.value.extra == {"param": name}


def test_a_timestamp_without_a_zone_names_the_problem(typed: ExportType) -> None:
    with pytest.raises(InvalidParams, match="time zone"):
        typed.bind({"r": 1, "t": "2025-06-01T12:00:00"})


def test_an_enum_outside_its_values_lists_them(typed: ExportType) -> None:
    with pytest.raises(InvalidParams, match="expected one of red, green"):
        typed.bind({"r": 1, "e": "blue"})


def test_args_are_typed_and_in_placeholder_order(typed: ExportType) -> None:
    bound = typed.bind(
        {"r": 3, "s": "x", "d": "2025-01-31", "t": "2025-06-01T12:00:00+02:00", "e": "red"}
    )

    args = typed.args(bound, "acme")

    assert args == [
        "x",
        10,
        date(2025, 1, 31),
        datetime(2025, 6, 1, 12, tzinfo=timezone(timedelta(hours=2))),
        False,
        "red",
        3,
        "acme",
    ]


def test_args_take_the_tenant_from_the_identity_never_from_params(typed: ExportType) -> None:
    stored = typed.bind({"r": 1}) | {"tenant": "globex"}  # as if smuggled into the stored row

    args = typed.args(stored, "acme")

    assert args[typed.arg_names.index("tenant")] == "acme"
    assert "globex" not in args


def test_args_turn_missing_and_null_params_into_null(typed: ExportType) -> None:
    args = typed.args({"r": 1, "s": None}, "acme")

    assert dict(zip(typed.arg_names, args, strict=True)) == {
        "s": None,
        "i": None,
        "d": None,
        "t": None,
        "b": None,
        "e": None,
        "r": 1,
        "tenant": "acme",
    }


# --- loading files ----------------------------------------------------------------


def test_the_demo_catalog_loads() -> None:
    catalog = Catalog.load(DEMO_CATALOG)

    assert set(catalog.exports) == {"orders", "customer_totals", "activity"}
    orders = catalog.get("orders")
    assert orders.arg_names == ("tenant", "since", "until", "status")
    assert orders.bind({"since": "2025-01-01"}) == {
        "since": "2025-01-01",
        "until": None,
        "status": None,
    }
    totals = catalog.get("customer_totals")
    assert totals.bind({}) == {"paid_only": False, "min_total": 0}


def test_the_test_catalog_loads() -> None:
    catalog = Catalog.load(CATALOG_PATH)

    assert {"orders", "numbers", "broken"} <= set(catalog.exports)
    assert catalog.get("numbers").bind({"rows": 5}) == {
        "rows": 5,
        "fill": "x",
        "flag": True,
        "at": "2025-06-01T12:00:00Z",
    }


def test_toml_dates_as_defaults_are_kept_as_text(tmp_path: Path) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text(
        "[exports.orders]\n"
        "sql = 'SELECT 1 FROM demo.orders WHERE tenant = :tenant AND created_at >= :since'\n"
        "[exports.orders.params.since]\n"
        "type = 'date'\n"
        "default = 2025-01-01\n"
    )

    export = Catalog.load(path).get("orders")

    assert export.bind({}) == {"since": "2025-01-01"}
    assert export.args(export.bind({}), "acme") == ["acme", date(2025, 1, 1)]


def test_a_toml_syntax_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[exports.orders\nsql = 'SELECT 1'\n")

    with pytest.raises(CatalogError) as caught:
        Catalog.load(path)

    assert caught.value.detail.startswith(f"catalog {path}: ")


def test_a_missing_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"

    with pytest.raises(CatalogError) as caught:
        Catalog.load(path)

    assert caught.value.detail == f"catalog {path}: No such file or directory"


def test_a_file_that_is_not_utf8_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes("# Grüße\n[exports.orders]\n".encode("latin-1"))

    with pytest.raises(CatalogError) as caught:
        Catalog.load(path)

    assert caught.value.detail.startswith(f"catalog {path}: ")


def test_errors_in_a_loaded_file_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text("[exports.orders]\nsql = 'SELECT 1'\n")

    with pytest.raises(CatalogError) as caught:
        Catalog.load(path)

    assert caught.value.detail.startswith(f"{path}: export 'orders': ")


def test_hook_exports_join_the_toml_catalog() -> None:
    catalog = Catalog.load(CATALOG_PATH, HOOKS)

    squares = catalog.get("squares")
    assert squares.rows is not None
    assert squares.columns[0] == ("n", "int8")
    assert squares.describe()["params"] == [{"name": "count", "type": "int", "required": True}]
    assert "orders" in catalog.exports


def test_a_hook_module_that_cannot_be_imported_is_named() -> None:
    with pytest.raises(CatalogError, match="no_such_hook_module"):
        Catalog.load(CATALOG_PATH, ("no_such_hook_module",))


def test_a_hook_export_may_not_shadow_a_toml_export(tmp_path: Path) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text('[exports.squares]\nsql = "SELECT 1 WHERE :tenant IS NOT NULL"\n')

    with pytest.raises(CatalogError, match="'squares' is already defined"):
        Catalog.load(path, HOOKS)
