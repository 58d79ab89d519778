"""The Python side of the catalog: operators register exports that are not plain SQL.

A hook module (named in EXPORTD_CATALOG_HOOKS) defines `register(registry)`:

    from exportd.export.hooks import HookContext, Param, Registry

    def register(registry: Registry) -> None:
        @registry.export("fx_rates", columns=[("day", "date"), ("rate", "numeric")],
                         params=[Param(name="currency", type="string", required=True)])
        async def fx_rates(ctx: HookContext) -> AsyncIterator[tuple[date, Decimal]]:
            async for row in ctx.conn.cursor("SELECT ... WHERE tenant = $1", ctx.tenant):
                yield (row["day"], convert(row["amount"], ctx.params["currency"]))
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence

from exportd.errors import CatalogError
from exportd.export.definition import ALL_FORMATS, ExportType, HookContext, RowFunction
from exportd.export.params import NAME, Param, parse_param

__all__ = ["HookContext", "Param", "Registry", "load_hook"]


class Registry:
    """Collects a hook module's exports; validated like the TOML catalog's."""

    def __init__(self, *, source: str) -> None:
        self.source = source
        self.exports: dict[str, ExportType] = {}

    def export(
        self,
        name: str,
        *,
        columns: Sequence[tuple[str, str]],
        params: Sequence[Param] = (),
        title: str = "",
        description: str = "",
        formats: Sequence[str] = ALL_FORMATS,
        spreadsheet_safe: bool = False,
    ) -> Callable[[RowFunction], RowFunction]:
        where = f"{self.source}: export {name!r}"
        if not NAME.fullmatch(name):
            raise CatalogError(f"{where}: name must match {NAME.pattern}")
        if name in self.exports:
            raise CatalogError(f"{where}: registered twice")
        if not columns:
            raise CatalogError(f"{where}: declare its columns")
        if set(formats) - set(ALL_FORMATS) or not formats:
            raise CatalogError(
                f"{where}: formats must be a non-empty subset of {list(ALL_FORMATS)}"
            )
        checked = tuple(
            parse_param(where, p.name, {**p.describe(), "values": list(p.values)}) for p in params
        )

        def add(rows: RowFunction) -> RowFunction:
            self.exports[name] = ExportType(
                name=name,
                title=title or name,
                description=description,
                params=checked,
                formats=tuple(formats),
                spreadsheet_safe=spreadsheet_safe,
                rows=rows,
                columns=tuple(columns),
            )
            return rows

        return add


def load_hook(module_name: str) -> dict[str, ExportType]:
    """Import a hook module and collect what its `register(registry)` adds."""
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
