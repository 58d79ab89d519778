"""House rules the import contracts cannot see: who imports aiohttp.web, where SQL text
lives, and how big a module may grow."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import exportd

PACKAGE: Final = Path(exportd.__file__).resolve().parent
MAX_LINES: Final = 300
# A statement's opening words as they start a SQL string literal (in capitals, as exportd
# writes SQL: prose that begins "Create ..." is not a statement).
SQL: Final = re.compile(
    r"^\s*(--.*\n\s*)*(SELECT|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|WITH\s+\w+\s+AS|"
    r"CREATE\s|ALTER\s|DROP\s|SET\s+LOCAL|EXPLAIN)\b"  # SQL here is written in capitals
)


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path.relative_to(PACKAGE.parent).with_suffix("").as_posix().replace("/", "."), path


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_only_the_api_package_imports_aiohttp_web() -> None:
    importers = {name for name, path in modules() if "aiohttp.web" in imports_of(path)}

    assert importers, "the API imports aiohttp.web somewhere"
    # The API's, and the dev stack's webhook inbox (a stand-in for a tenant's receiver, like
    # its SMTP sink stands in for a relay).
    allowed = ("exportd.api.", "exportd.dev.inbox")
    assert {name for name in importers if not name.startswith(allowed)} == set()


def test_sql_text_lives_only_in_the_db_layer() -> None:
    outside = []
    for name, path in modules():
        if name.startswith("exportd.db."):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            text = node.value if isinstance(node, ast.Constant) else None
            if isinstance(text, str) and SQL.match(text):
                outside.append(f"{name}:{getattr(node, 'lineno', 0)}: {text.strip()[:40]!r}")

    assert outside == []


def test_the_db_layer_does_hold_the_statements() -> None:
    """The check above would pass vacuously if the pattern matched nothing."""
    from exportd.db import jobs

    assert SQL.match(jobs.CLAIM_JOBS)
    assert SQL.match(jobs.HEARTBEAT)


def test_no_module_grows_past_the_split_point() -> None:
    sizes = {name: len(path.read_text().splitlines()) for name, path in modules()}

    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}
