"""Where the tests' screenshots go. Every run takes them, so the code that makes them stays
tested, but into the test's own tmp folder: the committed pictures (docs/screenshots/) change
only when asked, with EXPORTD_SCREENSHOTS naming the folder (`make screenshots` does)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

VARIABLE: Final = "EXPORTD_SCREENSHOTS"


def screenshots_folder(tmp_path: Path) -> Path:
    """The folder EXPORTD_SCREENSHOTS names (relative to the current folder), or one in
    `tmp_path` (pytest's, for this test); made if missing."""
    named = os.environ.get(VARIABLE, "").strip()
    folder = Path(named).resolve() if named else tmp_path / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
