"""The export catalog: named SQL exports with typed parameters, read from the operator's TOML."""

from __future__ import annotations

import importlib
import re
import tomllib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final, Self

from exportd.errors import CatalogError, InvalidParams, UnknownExport

PARAM_TYPES: Final = ("string", "int", "date", "timestamp", "bool", "enum")
FORMATS: Final = ("csv", "jsonl", "parquet")
TENANT: Final = "tenant"
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
# Quoted text, and a :name placeholder outside it and not part of a ::cast.
_QUOTED_SRC = r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\""  # string literals and quoted names
_QUOTED = re.compile(_QUOTED_SRC)
_PLACEHOLDER = re.compile(_QUOTED_SRC + r"|(?<![:\w]):([a-z_][a-z0-9_]*)")
_INT_RANGE: Final = (-(2**63), 2**63 - 1)


@dataclass(frozen=True, slots=True, kw_only=True)
class Param:
    name: str
    type: str
    required: bool = False
    default: Any = None
    values: tuple[str, ...] = ()
    description: str = ""

    def coerce(self, value: Any) -> Any:
        """Turn a JSON value into the Python value bound for this parameter, or raise ValueError."""
        return _COERCERS[self.type](self, value)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type, "required": self.required}
        if self.default is not None:
            out["default"] = self.default
        if self.values:
            out["values"] = list(self.values)
        if self.description:
            out["description"] = self.description
        return out


@dataclass(frozen=True, slots=True)
class HookContext:
    """What a Python export's row function gets: the caller's tenant, its typed params, and
    the connection holding the export's read-only snapshot (for any queries it makes)."""

    tenant: str
    params: Mapping[str, Any]
    conn: Any


# A Python export: an async generator of rows (sequences in `columns` order).
RowFunction = Callable[[HookContext], AsyncIterator[Sequence[Any]]]


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportType:
    name: str
    title: str
    description: str
    sql: str = ""
    params: tuple[Param, ...]
    formats: tuple[str, ...] = FORMATS
    # CSV bound for spreadsheets: neutralise cells that would run as formulas.
    spreadsheet_safe: bool = False
    # Python exports (registered by a hook module) instead of SQL: rows and their columns
    # as (name, PostgreSQL type name) pairs.
    rows: RowFunction | None = None
    columns: tuple[tuple[str, str], ...] = ()
    # the SQL with :name placeholders rewritten to $n, and the names in $n order
    positional_sql: str = field(init=False)
    arg_names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        sql, names = to_positional(self.sql)
        object.__setattr__(self, "positional_sql", sql)
        object.__setattr__(self, "arg_names", names)

    def bind(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Validate request params into JSON-safe canonical values (stored on the export)."""
        by_name = {p.name: p for p in self.params}
        unknown = sorted(set(raw) - set(by_name))
        if unknown:
            raise InvalidParams(f"unknown parameter(s): {', '.join(unknown)}", params=unknown)
        out: dict[str, Any] = {}
        for param in self.params:
            value = raw.get(param.name)
            if value is None:
                if param.required:
                    raise InvalidParams(f"parameter {param.name!r} is required", param=param.name)
                out[param.name] = param.default
                continue
            try:
                coerced = param.coerce(value)
            except (ValueError, TypeError) as exc:
                raise InvalidParams(f"parameter {param.name!r}: {exc}", param=param.name) from None
            out[param.name] = value if isinstance(coerced, date) else coerced
        return out

    def values(self, params: Mapping[str, Any], tenant: str) -> dict[str, Any]:
        """Stored params coerced to their types, plus the tenant from identity."""
        by_name = {p.name: p for p in self.params}
        values = {
            name: None if params.get(name) is None else by_name[name].coerce(params[name])
            for name in by_name
        }
        values[TENANT] = tenant
        return values

    def args(self, params: Mapping[str, Any], tenant: str) -> list[Any]:
        """Positional query args, in $n order."""
        values = self.values(params, tenant)
        return [values[name] for name in self.arg_names]

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "formats": list(self.formats),
            "spreadsheet_safe": self.spreadsheet_safe,
            "params": [p.describe() for p in self.params],
        }


@dataclass(frozen=True, slots=True)
class Catalog:
    exports: Mapping[str, ExportType]

    def get(self, name: str) -> ExportType:
        try:
            return self.exports[name]
        except KeyError:
            raise UnknownExport(f"no export named {name!r}", export=name) from None

    @classmethod
    def load(cls, path: Path, hooks: Sequence[str] = ()) -> Self:
        """The TOML catalog at `path`, plus the exports that each hook module registers."""
        catalog = cls._load_toml(path)
        exports = dict(catalog.exports)
        for module in hooks:
            for name, export_type in load_hook(module).items():
                if name in exports:
                    raise CatalogError(f"hook {module}: export {name!r} is already defined")
                exports[name] = export_type
        return cls(exports)

    @classmethod
    def _load_toml(cls, path: Path) -> Self:
        try:
            data = tomllib.loads(path.read_bytes().decode("utf-8"))
        except OSError as exc:
            raise CatalogError(f"catalog {path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise CatalogError(f"catalog {path}: not UTF-8 text") from None
        except tomllib.TOMLDecodeError as exc:
            raise CatalogError(f"catalog {path}: {exc}") from None
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "catalog") -> Self:
        exports = data.get("exports")
        if not isinstance(exports, dict) or not exports:
            raise CatalogError(f"{source}: no [exports.<name>] tables")
        return cls({name: _export(source, name, spec) for name, spec in exports.items()})


def load_hook(module_name: str) -> dict[str, ExportType]:
    """Import a hook module and collect what its `register(registry)` adds."""
    from exportd.hooks import Registry  # the hooks API builds on this module

    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise CatalogError(f"hook {module_name}: cannot import: {exc}") from None
    register = getattr(module, "register", None)
    if not callable(register):
        raise CatalogError(f"hook {module_name}: no register(registry) function")
    registry = Registry(source=f"hook {module_name}")
    register(registry)
    return registry.exports


def to_positional(sql: str) -> tuple[str, tuple[str, ...]]:
    """Rewrite :name placeholders to $1..$n; return the SQL and the names in $n order."""
    names: list[str] = []

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return match.group(0)
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    return _PLACEHOLDER.sub(sub, sql), tuple(names)


def _export(source: str, name: str, spec: Any) -> ExportType:
    where = f"{source}: export {name!r}"
    if not _NAME.match(name):
        raise CatalogError(f"{where}: name must match {_NAME.pattern}")
    if not isinstance(spec, dict):
        raise CatalogError(f"{where}: must be a table")
    sql = spec.get("sql")
    if not isinstance(sql, str) or not sql.strip():
        raise CatalogError(f"{where}: 'sql' is required")
    if ";" in _QUOTED.sub("", sql.strip().rstrip(";")):
        raise CatalogError(f"{where}: 'sql' must be a single statement")
    sql = sql.strip().rstrip(";")
    raw_params = spec.get("params", {})
    if not isinstance(raw_params, dict):
        raise CatalogError(f"{where}: 'params' must be a table")
    params = tuple(_param(where, pname, pspec) for pname, pspec in raw_params.items())
    _, used = to_positional(sql)
    declared = {p.name for p in params}
    undeclared = sorted(set(used) - declared - {TENANT})
    if undeclared:
        raise CatalogError(f"{where}: sql uses undeclared parameter(s) {', '.join(undeclared)}")
    if TENANT not in used and spec.get("tenant_scoped", True):
        raise CatalogError(
            f"{where}: sql must filter by :tenant (or set tenant_scoped = false deliberately)"
        )
    formats = tuple(spec.get("formats", FORMATS))
    bad = sorted(set(formats) - set(FORMATS))
    if bad or not formats:
        raise CatalogError(f"{where}: formats must be a non-empty subset of {list(FORMATS)}")
    return ExportType(
        name=name,
        title=str(spec.get("title", name)),
        description=str(spec.get("description", "")),
        sql=sql,
        params=params,
        formats=formats,
        spreadsheet_safe=bool(spec.get("spreadsheet_safe", False)),
    )


def _param(where: str, name: str, spec: Any) -> Param:
    where = f"{where} param {name!r}"
    if name == TENANT:
        raise CatalogError(f"{where}: 'tenant' is reserved; it is bound from the caller's identity")
    if not _NAME.match(name):
        raise CatalogError(f"{where}: name must match {_NAME.pattern}")
    if not isinstance(spec, dict):
        raise CatalogError(f"{where}: must be a table")
    ptype = spec.get("type")
    if ptype not in PARAM_TYPES:
        raise CatalogError(f"{where}: type must be one of {', '.join(PARAM_TYPES)}")
    values = spec.get("values", ())
    if ptype == "enum" and (
        not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values)
    ):
        raise CatalogError(f"{where}: enum needs 'values', a list of strings")
    param = Param(
        name=name,
        type=ptype,
        required=bool(spec.get("required", False)),
        values=tuple(values),
        description=str(spec.get("description", "")),
    )
    default = spec.get("default")
    if isinstance(default, date | datetime):  # TOML dates arrive parsed; store them as text
        default = default.isoformat()
    if default is not None:
        try:
            param.coerce(default)
        except (ValueError, TypeError) as exc:
            raise CatalogError(f"{where}: default {default!r} is invalid: {exc}") from None
    return replace(param, default=default)


def _string(param: Param, value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("expected a string")
    if "\x00" in value:
        raise ValueError("must not contain NUL")
    return value


def _int(param: Param, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("expected an integer")
    if not _INT_RANGE[0] <= value <= _INT_RANGE[1]:
        raise ValueError("out of range for a 64-bit integer")
    return value


def _date(param: Param, value: Any) -> date:
    if not isinstance(value, str):
        raise TypeError("expected a date as YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError("expected a date as YYYY-MM-DD") from None


def _timestamp(param: Param, value: Any) -> datetime:
    if not isinstance(value, str):
        raise TypeError("expected an ISO 8601 timestamp with a time zone")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("expected an ISO 8601 timestamp with a time zone") from None
    if parsed.tzinfo is None:
        raise ValueError("timestamp needs a time zone (e.g. Z or +02:00)")
    return parsed


def _bool(param: Param, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError("expected true or false")
    return value


def _enum(param: Param, value: Any) -> str:
    if not isinstance(value, str) or value not in param.values:
        raise ValueError(f"expected one of {', '.join(param.values)}")
    return value


_COERCERS: Final[dict[str, Callable[[Param, Any], Any]]] = {
    "string": _string,
    "int": _int,
    "date": _date,
    "timestamp": _timestamp,
    "bool": _bool,
    "enum": _enum,
}
