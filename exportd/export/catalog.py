"""The export catalog: named SQL exports with typed parameters, read from the operator's TOML,
plus the exports that hook modules register."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Self

from exportd.errors import CatalogError, UnknownExport
from exportd.export.definition import ALL_FORMATS, QUOTED_SRC, ExportType, to_positional
from exportd.export.hooks import load_hook
from exportd.export.params import NAME, TENANT, parse_param

_QUOTED: Final = re.compile(QUOTED_SRC)


@dataclass(frozen=True, slots=True)
class Catalog:
    exports: Mapping[str, ExportType]

    def get(self, name: str) -> ExportType:
        try:
            return self.exports[name]
        except KeyError:
            raise UnknownExport(f"no export named {name!r}", export=name) from None

    def title_of(self, name: str) -> str:
        """An export's human title; its name once the catalog no longer lists it."""
        found = self.exports.get(name)
        return found.title if found is not None else name

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


def _export(source: str, name: str, spec: Any) -> ExportType:
    where = f"{source}: export {name!r}"
    if not NAME.fullmatch(name):
        raise CatalogError(f"{where}: name must match {NAME.pattern}")
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
    params = tuple(parse_param(where, pname, pspec) for pname, pspec in raw_params.items())
    _, used = to_positional(sql)
    declared = {p.name for p in params}
    undeclared = sorted(set(used) - declared - {TENANT})
    if undeclared:
        raise CatalogError(f"{where}: sql uses undeclared parameter(s) {', '.join(undeclared)}")
    if TENANT not in used and spec.get("tenant_scoped", True):
        raise CatalogError(
            f"{where}: sql must filter by :tenant (or set tenant_scoped = false deliberately)"
        )
    formats = tuple(spec.get("formats", ALL_FORMATS))
    bad = sorted(set(formats) - set(ALL_FORMATS))
    if bad or not formats:
        raise CatalogError(f"{where}: formats must be a non-empty subset of {list(ALL_FORMATS)}")
    return ExportType(
        name=name,
        title=str(spec.get("title", name)),
        description=str(spec.get("description", "")),
        sql=sql,
        params=params,
        formats=formats,
        spreadsheet_safe=bool(spec.get("spreadsheet_safe", False)),
    )
