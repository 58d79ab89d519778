"""The web page's files: plain HTML, CSS and JavaScript (no build step), served by api/page.py.
The page uses only the public API, with the bearer token its user pastes or is handed."""

from __future__ import annotations

from pathlib import Path
from typing import Final

STATIC: Final = Path(__file__).resolve().parent / "static"
