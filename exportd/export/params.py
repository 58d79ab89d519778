"""Typed export parameters: declared by the operator, coerced from a caller's JSON."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any, Final

from exportd.errors import CatalogError

PARAM_TYPES: Final = ("string", "int", "date", "timestamp", "bool", "enum")
# Bound from the caller's identity, never from a request.
TENANT: Final = "tenant"
# Export and parameter names: what a catalog may call things.
NAME: Final = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
INT_RANGE: Final = (-(2**63), 2**63 - 1)  # bigint
_SAMPLES: Final[dict[str, Any]] = {
    "string": "example",
    "int": 10,
    "date": "2025-01-01",
    "timestamp": "2025-01-01T00:00:00Z",
    "bool": True,
}


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

    def sample(self) -> Any:
        """A JSON value valid for this parameter: its default, else a plain one of its type
        (the API document's examples; the start-up check of the catalog's SQL)."""
        if self.default is not None:
            return self.default
        return self.values[0] if self.values else _SAMPLES[self.type]

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type, "required": self.required}
        if self.default is not None:
            out["default"] = self.default
        if self.values:
            out["values"] = list(self.values)
        if self.description:
            out["description"] = self.description
        return out


def parse_param(where: str, name: str, spec: Any) -> Param:
    """A parameter from its catalog spec (a TOML table, or a hook's Param described),
    checked: the name, the type, enum values, and that the default is valid."""
    where = f"{where} param {name!r}"
    if name == TENANT:
        raise CatalogError(f"{where}: 'tenant' is reserved; it is bound from the caller's identity")
    if not NAME.fullmatch(name):
        raise CatalogError(f"{where}: name must match {NAME.pattern}")
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
    # JSON has one number type: 3.0 is an integer too (as JSON Schema says).
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("expected an integer")
    if not INT_RANGE[0] <= value <= INT_RANGE[1]:
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


_COERCERS: Final[Mapping[str, Callable[[Param, Any], Any]]] = {
    "string": _string,
    "int": _int,
    "date": _date,
    "timestamp": _timestamp,
    "bool": _bool,
    "enum": _enum,
}
