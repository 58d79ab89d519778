"""`-p KEY=VALUE` turned into the JSON an export's parameters take: each value typed as the
catalog declares it (int, bool; dates and the rest stay text), `KEY:=JSON` sent as written."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Final

from exportd.client.errors import ClientConfigError

TRUE: Final = frozenset({"true", "yes", "on", "1"})
FALSE: Final = frozenset({"false", "no", "off", "0"})


def declared_types(export_type: Mapping[str, Any] | None) -> dict[str, str]:
    """{parameter: type} from one /v1/export-types item (empty when unknown)."""
    params = (export_type or {}).get("params") or []
    return {str(p.get("name")): str(p.get("type")) for p in params if isinstance(p, dict)}


def typed(name: str, raw: str, declared: str | None) -> Any:
    if declared == "int":
        try:
            return int(raw)
        except ValueError:
            raise ClientConfigError(f"-p {name}: {raw!r} is not a whole number") from None
    if declared == "bool":
        if raw.lower() in TRUE:
            return True
        if raw.lower() in FALSE:
            return False
        raise ClientConfigError(f"-p {name}: {raw!r} is not true or false")
    return raw


def parse_params(pairs: Iterable[str], export_type: Mapping[str, Any] | None) -> dict[str, Any]:
    """The params object for the request; a ClientConfigError for a malformed pair."""
    types = declared_types(export_type)
    params: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name or name == ":":
            raise ClientConfigError(f"-p {pair!r}: expected KEY=VALUE or KEY:=JSON")
        if name.endswith(":"):
            name = name[:-1]
            try:
                params[name] = json.loads(raw)
            except ValueError as exc:
                raise ClientConfigError(f"-p {name}:=: not JSON: {exc}") from None
        else:
            params[name] = typed(name, raw, types.get(name))
    return params
