"""The web page in a real browser: Debian's headless Chromium driven by Playwright (which
cannot download its own browsers here) against a real `exportd serve`. Sign in with a token,
create an export from the generated form, watch it reach done, download the file, cancel
another; a screenshot of each step (in the test's tmp folder, or where EXPORTD_SCREENSHOTS
says: `make screenshots`). In the happy path the page's own requests never see a 4xx or 5xx,
and the console shows no error (a CSP violation is one). The list's older pages come a page at
a time (a stand-in for a long list: the page's own requests, with a page of one)."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from playwright.async_api import (
    Browser,
    Dialog,
    Locator,
    Page,
    Route,
    ViewportSize,
    expect,
)

from tests.support.client import eventually
from tests.support.processes import ExportdProcess
from tests.support.screenshots import screenshots_folder
from tests.support.tokens import make_token

DESKTOP: Final = ViewportSize(width=1100, height=760)
PHONE: Final = ViewportSize(width=360, height=760)
MARKUP: Final = "<img src=x onerror=alert(1)>"  # a file name: shown as text, never run
# The tab hidden or shown, as far as the page can tell.
SET_HIDDEN: Final = """hidden => {
    Object.defineProperty(document, 'hidden', {configurable: true, get: () => hidden});
    document.dispatchEvent(new Event('visibilitychange'));
}"""
# The page's Watcher against a stand-in API whose every poll answers 304 after 100 ms.
TAKE_TURNS: Final = """async () => {
    const { Watcher } = await import(new URL('static/watch.js', document.baseURI).href);
    let open = 0, peak = 0, asked = 0;
    const polled = new Set();
    const api = { request: (path, { signal }) => new Promise((resolve, reject) => {
        open += 1; asked += 1; peak = Math.max(peak, open);
        polled.add(path.split('?')[0]);
        const done = setTimeout(() => { open -= 1; resolve({ status: 304 }); }, 100);
        signal.addEventListener('abort', () => {
            clearTimeout(done); open -= 1; reject(new DOMException('stopped', 'AbortError'));
        });
    }) };
    const watcher = new Watcher(api, { onExport() {}, onGone() {} });
    const exports = [...Array(7).keys()].map(i => ({ id: `e${i}`, status: 'running', version: 1 }));
    watcher.track(exports);
    watcher.start();
    await new Promise(r => setTimeout(r, 1000));
    watcher.stop();
    const before = asked;
    await new Promise(r => setTimeout(r, 700));
    return { peak, polled: polled.size, after_stop: { open, asked: asked - before } };
}"""
BUILD_S: Final = 30_000  # ms: how long an export may take to get where the test waits for it
LIST_LIMIT: Final = 50  # the page's page of exports (app.js)
# How the demo catalog describes its date parameter; a date input says the format itself.
SINCE_HINT: Final = "First day to include (YYYY-MM-DD)."


async def shot(page: Page, folder: Path, name: str, *, full_page: bool = False) -> None:
    await page.evaluate("window.scrollTo(0, 0)")
    path = folder / f"{name}.png"
    await page.screenshot(path=path, full_page=full_page)
    assert path.read_bytes().startswith(b"\x89PNG"), path


async def moved(bar: Locator, *, at_least: float) -> None:
    """Until a progress bar shows `at_least` percent (wait_for_function would need eval,
    which the page's CSP forbids, rightly)."""

    async def far_enough() -> bool:
        value: float = await bar.evaluate("bar => bar.value")
        return value >= at_least

    await eventually(far_enough, within=BUILD_S / 1000)


def labelled(page: Page, label: str) -> Locator:
    """The input of a label, whether or not it is marked required (`Since *`)."""
    return page.get_by_label(re.compile(rf"^{re.escape(label)}( \*)?$"))


async def bars_line_up(page: Page) -> None:
    """The progress bars of the cards shown are as wide as each other, and start at one x,
    whatever the text beside them says."""
    boxes = [
        await bar.bounding_box()
        for bar in await page.locator("#export-list progress:visible").all()
    ]
    assert len(boxes) >= 2, boxes
    assert len({(round(b["x"]), round(b["width"])) for b in boxes if b}) == 1, boxes


async def describe_since(route: Route) -> None:
    """The catalog as exportd answers it, the orders' `since` described as the demo's is."""
    response = await route.fetch()
    catalog = await response.json()
    for export in catalog.get("items", []):
        for param in export.get("params", []):
            if (export["name"], param["name"]) == ("orders", "since"):
                param["description"] = SINCE_HINT
    await route.fulfill(response=response, json=catalog)


def item(page: Page, title: str) -> Locator:
    return page.locator("#export-list > li").filter(
        has=page.get_by_role("heading", name=title, exact=True)
    )


async def create(page: Page, export: str, fields: dict[str, str], file_name: str) -> None:
    await labelled(page, "Export").select_option(export)
    for label, value in fields.items():
        field = labelled(page, label)
        if await field.evaluate("node => node.tagName") == "SELECT":
            await field.select_option(value)
        else:
            await field.fill(value)
    await labelled(page, "File name").fill(file_name)


async def test_sign_in_create_watch_download_and_cancel(
    replicas: Callable[..., Any], browser: Browser, tmp_path: Path
) -> None:
    server: ExportdProcess = (await replicas(1))[0]
    token = make_token(ttl_s=3600)
    pictures = screenshots_folder(tmp_path)
    context = await browser.new_context(viewport=DESKTOP, accept_downloads=True)
    page = await context.new_page()
    answers: list[tuple[int, str]] = []
    errors: list[str] = []
    page.on("response", lambda r: answers.append((r.status, r.url)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    polls: list[str] = []
    page.on("request", lambda r: polls.append(r.url) if "?wait=" in r.url else None)
    dialogs: list[tuple[str, str]] = []

    async def answer(dialog: Dialog) -> None:
        dialogs.append((dialog.type, dialog.message))
        await dialog.accept()

    page.on("dialog", answer)

    # Sign in with the keyboard: the token field, Enter.
    await page.route("**/v1/export-types", describe_since)
    await page.goto(f"{server.url}/")
    token_field = page.get_by_label("Access token")
    await expect(token_field).to_be_focused()
    await expect(token_field).to_have_attribute("type", "password")
    await shot(page, pictures, "sign-in")
    await token_field.fill(token)
    await token_field.press("Enter")
    await expect(page.get_by_role("heading", name="New export")).to_be_visible()
    await expect(page.get_by_role("button", name="Sign out")).to_be_visible()

    # The form follows the catalog: a required date, an enum, typed inputs.
    await create(page, "orders", {"Since": "2025-01-01", "Status": "paid"}, "paid-orders")
    await expect(labelled(page, "Since")).to_have_attribute("type", "date")
    await expect(labelled(page, "Since")).to_have_attribute("required", "")
    # The browser's date picker is the format: no "(YYYY-MM-DD)" beside it.
    await expect(labelled(page, "Since")).to_have_accessible_description("First day to include.")
    await shot(page, pictures, "create")
    await page.get_by_role("button", name="Create export").click()
    orders = item(page, "Orders")
    await expect(orders).to_have_attribute("data-status", "succeeded", timeout=BUILD_S)
    await expect(orders.locator("progress")).to_have_js_property("value", 100)
    # Watched until its mail is sent (the token has an email claim): then done.
    await expect(orders.locator(".progress-text")).to_have_text(
        re.compile(r"^done · \S+ k?B · [\d,]+ rows$"), timeout=BUILD_S
    )
    await expect(orders.locator(".export-file")).to_have_text("paid-orders.csv")
    # What it was asked for, and when, to the second.
    params = orders.locator(".export-params")
    await expect(params).to_have_text("since 2025-01-01 · status paid")
    await expect(params).to_have_attribute("title", "since 2025-01-01 · status paid")
    created = orders.locator(".export-meta time")
    await expect(created).to_have_attribute("title", re.compile(r"\d:\d\d:\d\d"))
    await expect(created).to_have_attribute("datetime", re.compile(r"^\d{4}-\d\d-\d\dT"))

    # A long one: its bar moves while it runs.
    await labelled(page, "Export").select_option("slow")
    await expect(labelled(page, "Rows")).to_have_attribute("type", "number")
    await labelled(page, "File name").fill("all-rows")
    await page.get_by_role("button", name="Create export").click()
    slow = item(page, "Slow rows")
    await expect(slow).to_have_attribute("data-status", "running", timeout=BUILD_S)
    await expect(slow.locator(".progress-text")).to_contain_text(" B", timeout=BUILD_S)
    await moved(slow.locator("progress"), at_least=10)
    await expect(slow.locator(".export-params")).to_have_text("rows 200000 · pause ms 50")
    await bars_line_up(page)
    await shot(page, pictures, "page")

    # A hidden tab asks nothing (a poll in flight is dropped); shown, it polls again.
    await page.evaluate(SET_HIDDEN, True)
    asked = len(polls)
    await page.wait_for_timeout(1500)  # a running export is re-polled every 0.5 s when shown
    assert len(polls) == asked
    await page.evaluate(SET_HIDDEN, False)
    await eventually(lambda: len(polls) > asked, within=5)

    # Download: the page asks the API for a presigned URL (the token, Accept: JSON) and goes
    # there; the file is an attachment, so the browser saves it and the page stays.
    asking = page.expect_request(lambda r: r.url.endswith("/download"))
    async with asking as grant_asked, page.expect_download() as started:
        await orders.get_by_role("button", name="Download").click()
    request = await grant_asked.value
    assert request.resource_type == "fetch"
    sent = await request.all_headers()
    assert (sent["accept"], sent["authorization"]) == ("application/json", f"Bearer {token}")
    granted = await request.response()
    assert granted is not None and granted.status == 200
    assert granted.headers["cache-control"] == "no-store"
    download = await started.value
    assert download.url == (await granted.json())["url"]
    assert download.suggested_filename == "paid-orders.csv"
    saved = tmp_path / "paid-orders.csv"
    await download.save_as(saved)
    with saved.open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert rows and {row["status"] for row in rows} == {"paid"}
    await expect(orders.locator(".export-note")).to_have_text("Download started.")
    assert page.url == f"{server.url}/"
    await shot(page, pictures, "download")

    # Cancel, after the confirmation.
    await slow.get_by_role("button", name="Cancel").click()
    await expect(slow).to_have_attribute("data-status", "canceled")
    await expect(slow.get_by_role("button", name="Cancel")).to_be_hidden()
    [(kind, question)] = dialogs
    assert kind == "confirm" and question.startswith("Cancel the Slow rows export created ")
    await shot(page, pictures, "cancel")

    # Names are text, never markup: this one would call alert() if it ran.
    await labelled(page, "Export").select_option("numbers")
    await labelled(page, "Rows").fill("10")
    await labelled(page, "File name").fill(MARKUP)
    await page.get_by_role("button", name="Create export").click()
    numbers = item(page, "Generated rows")
    await expect(numbers).to_have_attribute("data-status", "succeeded", timeout=BUILD_S)
    await expect(numbers.locator(".export-file")).to_have_text(f"{MARKUP}.csv")
    assert await page.locator("#export-list img").count() == 0
    assert len(dialogs) == 1

    # A phone's width: no horizontal scroll.
    await page.set_viewport_size(PHONE)
    assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    await bars_line_up(page)
    # A long line of parameters stays one line, cut short; all of it in the title.
    params = numbers.locator(".export-params")
    full = await params.get_attribute("title")
    assert full and full.startswith("rows 10 · fill x · flag yes · at ")
    assert await params.evaluate("p => p.scrollWidth > p.clientWidth")
    await shot(page, pictures, "phone", full_page=True)
    await page.set_viewport_size(DESKTOP)

    # Older exports, a page at a time (here a page holds one): a button after the list, asked
    # with the last page's cursor and the same limit; a refresh (the first page only) keeps
    # the pages loaded.
    asked_pages: list[str] = []

    async def one_per_page(route: Route) -> None:
        asked_pages.append(route.request.url)
        await route.continue_(url=route.request.url.replace(f"limit={LIST_LIMIT}", "limit=1"))

    await page.route(re.compile(r"/v1/exports\?"), one_per_page)
    older = page.get_by_role("button", name="Show older exports")
    exports = page.locator("#export-list > li")
    await page.get_by_role("button", name="Refresh").click()
    await expect(exports).to_have_count(1)
    await expect(numbers).to_be_visible()
    await numbers.get_by_role("button", name=re.compile("^Download")).focus()
    await page.keyboard.press("Tab")
    await expect(older).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(slow).to_be_visible()
    await expect(page.locator("#announcer")).to_have_text("1 older export added below.")
    await expect(older).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(orders).to_be_visible()
    await expect(page.locator("#announcer")).to_have_text(
        "1 older export added below. That is all of them."
    )
    await expect(older).to_be_hidden()
    await expect(orders).to_be_focused()  # the first it added, the button gone
    cursors = [url for url in asked_pages if "cursor=" in url]
    assert len(cursors) == 2 and all(f"limit={LIST_LIMIT}&cursor=" in url for url in cursors)
    refresh = page.get_by_role("button", name="Refresh")
    await refresh.click()  # as the page does every 15 s
    await expect(refresh).not_to_have_attribute("data-loading", "true")
    await expect(exports).to_have_count(3)
    assert [await li.get_attribute("data-status") for li in await exports.all()] == [
        "succeeded",
        "canceled",
        "succeeded",
    ]
    await page.unroute(re.compile(r"/v1/exports\?"))

    # Handed a token in the fragment (as `exportd dev` prints it): taken, wiped from the bar.
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_label("Access token")).to_be_visible()
    await page.goto(f"{server.url}/#token={token}")
    await expect(orders).to_have_attribute("data-status", "succeeded")
    assert page.url == f"{server.url}/"

    long_polls = [url for _, url in answers if "?wait=" in url]
    assert long_polls, "the page watched its exports with long-polls"
    assert [(status, url) for status, url in answers if status >= 400] == []
    assert errors == []

    # Unhappy ends. A refused parameter: the problem by the form and by its field.
    await labelled(page, "Export").select_option("numbers")
    await labelled(page, "Rows").fill(str(2**70))
    await page.get_by_role("button", name="Create export").click()
    await expect(page.get_by_role("alert")).to_contain_text("out of range")
    await expect(labelled(page, "Rows")).to_have_attribute("aria-invalid", "true")
    await expect(labelled(page, "Rows")).to_be_focused()
    await expect(page.locator(".field-error:visible")).to_contain_text("'rows'")
    await shot(page, pictures, "problem")

    # A download the API refuses (the file expired since the list was drawn): said by the export.
    # (The answer is exportd's own for that case, put in by the browser: no waiting out a
    # retention here.)
    gone = {
        "type": "urn:exportd:problem:export_expired",
        "title": "Export's file has expired",
        "status": 410,
        "detail": "the export's file was deleted at the end of its retention",
    }
    await page.route(
        "**/v1/exports/*/download",
        lambda route: route.fulfill(
            status=410, content_type="application/problem+json", body=json.dumps(gone)
        ),
    )
    await orders.get_by_role("button", name="Download").click()
    await expect(orders.locator(".export-note")).to_have_text(
        "Could not download: the export's file was deleted at the end of its retention"
    )
    assert page.url == f"{server.url}/"
    await page.unroute("**/v1/exports/*/download")

    # A refused token brings the sign-in form back with the reason.
    await page.get_by_role("button", name="Sign out").click()
    await page.get_by_label("Access token").fill("not-a-token")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_contain_text("refused the token")
    await expect(page.get_by_label("Access token")).to_be_focused()

    # Seven unfinished exports: never more than four long-polls at once, and all get turns.
    turns = await page.evaluate(TAKE_TURNS)
    assert turns["peak"] == 4
    assert turns["polled"] == 7
    assert turns["after_stop"] == {"open": 0, "asked": 0}
    await context.close()
