"""What one catalog export is: its SQL (or Python rows), typed parameters and formats."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final

from exportd.errors import InvalidParams
from exportd.export.formats import FORMATS
from exportd.export.params import TENANT, Param

# Every format, in the order the API lists them; an export may offer a subset.
ALL_FORMATS: Final = tuple(FORMATS)
# Quoted text, and a :name placeholder outside it and not part of a ::cast.
QUOTED_SRC: Final = r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\""  # string literals and quoted names
_PLACEHOLDER: Final = re.compile(QUOTED_SRC + r"|(?<![:\w]):([a-z_][a-z0-9_]*)")


@dataclass(frozen=True, slots=True)
class HookContext:
    """What a Python export's row function gets: the caller's tenant, its typed params, and
    the connection holding the export's read-only snapshot (for any queries it makes; the
    transaction is exportd's to end, so no commit, rollback or `conn.transaction()`)."""

    tenant: str
    params: Mapping[str, Any]
    conn: Any


# A Python export: an async generator of rows (sequences in `columns` order).
RowFunction = Callable[[HookContext], AsyncIterator[Sequence[Any]]]


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


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportType:
    name: str
    title: str
    description: str
    sql: str = ""
    params: tuple[Param, ...]
    formats: tuple[str, ...] = ALL_FORMATS
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
