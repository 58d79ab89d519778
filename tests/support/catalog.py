"""The catalog the tests serve: the demo's orders plus exports that exercise edge cases, and a
Python hook export."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from exportd.export.catalog import Catalog

CATALOG_PATH: Final = Path(__file__).parent / "catalog.toml"
# Types the catalog's queries name (an enum), loaded into every test database.
TEST_SCHEMA: Final = Path(__file__).parent / "schema.sql"
# Importable as a module wherever the project root is on the path (see processes.ROOT).
HOOKS: Final = ("tests.support.hook_exports",)


def load_test_catalog() -> Catalog:
    return Catalog.load(CATALOG_PATH, HOOKS)
