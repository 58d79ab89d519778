"""The browser the page's tests drive: Debian's headless Chromium (Playwright cannot download
its own browsers here)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Final

import pytest
from playwright.async_api import Browser, async_playwright

CHROMIUM: Final = Path("/usr/bin/chromium")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    assert CHROMIUM.exists(), "the browser tests need Debian's chromium: make chromium"
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        await launched.close()
