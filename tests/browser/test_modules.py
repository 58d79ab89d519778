"""The page's modules on their own, in the browser, against stand-ins: the words a card shows
for a state (at a fixed "now", no clock involved), the format hints of date inputs, which
exports stay watched, how pages of the list merge. No exportd: the browser is handed the
files from exportd/web/static/ at a made-up origin."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Final

import pytest
from playwright.async_api import Browser, Page, Route

from exportd.web import STATIC

ORIGIN: Final = "http://page.test"
BLANK: Final = (
    "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>t</title></head></html>"
)
CSP: Final = "default-src 'none'; script-src 'self'; connect-src 'self'; base-uri 'none'"


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(locale="en-US", timezone_id="UTC")
    page = await context.new_page()

    async def serve(route: Route) -> None:
        path = route.request.url.removeprefix(ORIGIN)
        headers = {"Content-Security-Policy": CSP}
        if path == "/":
            await route.fulfill(body=BLANK, content_type="text/html", headers=headers)
            return
        name = path.removeprefix("/static/")
        file = STATIC / name
        if path.startswith("/static/") and "/" not in name and file.suffix == ".js":
            await route.fulfill(
                body=file.read_text(), content_type="text/javascript", headers=headers
            )
        else:
            await route.fulfill(status=404, body="")

    await page.route(f"{ORIGIN}/**", serve)
    await page.goto(f"{ORIGIN}/")
    yield page
    await context.close()


async def run(page: Page, script: str, arg: Any = None) -> Any:
    """`script`: an async function of (modules, arg); modules: format, form, list, watch."""
    return await page.evaluate(
        f"""async (arg) => {{
            const load = (name) => import(new URL(`static/${{name}}.js`, document.baseURI).href);
            const modules = {{
                format: await load('format'), form: await load('form'),
                list: await load('list'), watch: await load('watch'),
            }};
            return ({script})(modules, arg);
        }}""",
        arg,
    )


NOW: Final = "2025-06-01T12:00:00Z"
TEXTS: Final = """({ format }, now) => {
    const at = Date.parse(now);
    const later = (s) => new Date(at + s * 1000).toISOString();
    const text = (exp) => format.progressOf(exp, at).text;
    const queued = (queue) => text({ status: 'queued', queue });
    return {
        queue_null: queued(null),
        tenant: queued({ position: 3, ahead: 2, waiting_for: 'tenant_limit',
                         estimated_start_at: later(130) }),
        worker_seconds: queued({ position: 12, ahead: 11, waiting_for: 'worker',
                                 estimated_start_at: later(40) }),
        next: queued({ position: 1, ahead: 0, waiting_for: 'worker', estimated_start_at: null }),
        estimate_due: queued({ position: 2, ahead: 1, waiting_for: 'worker',
                               estimated_start_at: later(3) }),
        estimate_past: queued({ position: 2, ahead: 1, waiting_for: 'worker',
                                estimated_start_at: later(-30) }),
        running_capped: format.progressOf({ status: 'running', progress:
            { phase: 'uploading', percent: 99.9, bytes: 3200000 } }, at),
        running_half: text({ status: 'running', progress: { phase: 'building', percent: 49.99 } }),
        mailing: text({ status: 'succeeded', progress: { phase: 'mailing', percent: 100 },
                        result: { size: 3200000, rows: 50000 } }),
        done: text({ status: 'succeeded', progress: { phase: 'done', percent: 100 },
                     result: { size: 3200000, rows: 50000 } }),
        settled: ['running', 'mailing', 'done', 'failed'].map((what) => format.settled(
            what === 'running' ? { status: 'running', progress: { phase: 'building' } }
            : what === 'failed' ? { status: 'failed', progress: { phase: 'done' } }
            : { status: 'succeeded', progress: { phase: what } })),
        params: format.paramsText({ status: 'paid', until: null, since: '2025-01-01' },
                                  ['since', 'until', 'status']),
        params_kinds: format.paramsText({ rows: 10, min_total: 5, flag: false, tags: ['a', 'b'] }),
        no_params: format.paramsText({}),
        created_now: format.createdText(later(-20), at),
        created_minutes: format.createdText(later(-150), at),
        created_hours_ago: format.createdText(later(-7200), at),
        created_days_ago: format.createdText(later(-2 * 86400), at),
    };
}"""


async def test_the_words_for_an_exports_state(page: Page) -> None:
    texts = await run(page, TEXTS, NOW)

    # The queue: the place, what it waits for, an estimate only while it is ahead.
    assert texts["queue_null"] == "queued"
    assert texts["tenant"] == (
        "3rd in line · waiting for your tenant's earlier exports · starts in about 2 min"
    )
    assert texts["worker_seconds"] == "12th in line · starts in about 40 s"
    assert texts["next"] == "next in line"
    assert texts["estimate_due"] == "2nd in line"  # never "starting" with others ahead
    assert texts["estimate_past"] == "2nd in line"
    # A running export never reads 100 % (the server caps it at 99.9: floored, not rounded).
    assert texts["running_capped"] == {
        "value": 99,
        "shown": True,
        "text": "99% · uploading · 3.2 MB",
    }
    assert texts["running_half"] == "49%"
    # Succeeded, its mail on the way: ready, not "done · mailing".
    assert texts["mailing"] == "ready · sending the mail · 3.2 MB · 50,000 rows"
    assert texts["done"] == "done · 3.2 MB · 50,000 rows"
    assert texts["settled"] == [False, False, True, True]
    # Parameters in the catalog's order, the ones left out not shown.
    assert texts["params"] == "since 2025-01-01 · status paid"
    assert texts["params_kinds"] == 'rows 10 · min total 5 · flag no · tags ["a","b"]'
    assert texts["no_params"] == ""
    # Created: to the second, and how long ago within the hour.
    assert texts["created_now"] == "11:59:40 AM (just now)"
    assert texts["created_minutes"] == "11:57:30 AM (2 min ago)"
    assert texts["created_hours_ago"] == "10:00:00 AM"
    assert texts["created_days_ago"] == "May 30, 2025, 12:00:00 PM"


HINTS: Final = """({ form }) => {
    const since = { name: 'since', type: 'date',
                    description: 'First day to include (YYYY-MM-DD).' };
    const at = { name: 'at', type: 'timestamp', description: 'From (YYYY-MM-DDTHH:MM:SSZ)' };
    return {
        native_date: form.hintText(since, 'date'),
        text_date: form.hintText(since, 'text'),
        text_date_bare: form.hintText({ name: 'd', type: 'date' }, 'text'),
        native_date_bare: form.hintText({ name: 'd', type: 'date' }, 'date'),
        native_timestamp: form.hintText(at, 'datetime-local'),
        text_timestamp: form.hintText({ name: 'at', type: 'timestamp' }, 'text'),
        other: form.hintText({ name: 'code', type: 'string', description: 'A day (YYYY-MM-DD)' },
                             'text'),
    };
}"""


async def test_a_format_hint_only_where_the_date_is_typed_as_text(page: Page) -> None:
    hints = await run(page, HINTS)

    assert hints == {
        "native_date": "First day to include.",  # the picker is the format
        "text_date": "First day to include (YYYY-MM-DD).",
        "text_date_bare": "YYYY-MM-DD",
        "native_date_bare": "",
        "native_timestamp": "From · your local time",
        "text_timestamp": "YYYY-MM-DDTHH:MM · your local time",
        "other": "A day (YYYY-MM-DD)",
    }


# A succeeded export still mailing is polled (one of the four slots), then dropped once its
# phase is done; the list counts it as pending meanwhile.
MAILING: Final = """async ({ watch, list }) => {
    const exp = (version, status, phase) => ({ id: 'e1', version, status, progress: { phase },
                                                created_at: '2025-06-01T12:00:00Z' });
    const answers = [exp(3, 'succeeded', 'mailing'), exp(4, 'succeeded', 'done')];
    const asked = [];
    const api = { request: (path, { signal }) => new Promise((resolve, reject) => {
        asked.push(path);
        const next = answers.shift();
        if (next) resolve({ status: 200, etag: `"${next.version}"`, data: next });
        else signal.addEventListener('abort', () => reject(new DOMException('stop', 'AbortError')));
    }) };
    const shown = new list.ExportList(document.createElement('ol'), document.createElement('p'),
                                      { actions: {}, announce() {} });
    const phases = [];
    let done;
    const finished = new Promise((resolve) => { done = resolve; });
    const watcher = new watch.Watcher(api, {
        onExport: (e) => { shown.update(e); phases.push(e.progress.phase);
                           if (e.progress.phase === 'done') done(); },
        onGone() {},
    });
    shown.update(exp(2, 'running', 'building'));
    shown.update(exp(3, 'succeeded', 'mailing'));
    const pendingWhileMailing = shown.pending().length;
    watcher.track(shown.pending());
    watcher.start();
    await finished;
    const stillWatched = watcher.wanted.size;
    watcher.track(shown.pending());
    const pendingAfter = shown.pending().length;
    watcher.stop();
    return { pendingWhileMailing, phases, stillWatched, pendingAfter, asked: asked.length };
}"""


async def test_a_succeeded_export_is_watched_until_its_mail_is_sent(page: Page) -> None:
    seen = await run(page, MAILING)

    assert seen == {
        "pendingWhileMailing": 1,
        "phases": ["mailing", "done"],
        "stillWatched": 0,
        "pendingAfter": 0,
        "asked": 2,
    }


# Pages of the list: the first page refreshed, older ones kept, merged by id, in order.
PAGES: Final = """({ list }) => {
    const ol = document.createElement('ol');
    const shown = new list.ExportList(ol, document.createElement('p'),
                                      { actions: {}, announce() {} });
    const exp = (n, version = 1) => ({
        id: `00000000-0000-0000-0000-${String(n).padStart(12, '0')}`, version,
        status: 'succeeded', progress: { phase: 'done' }, export: 'orders',
        created_at: new Date(Date.UTC(2025, 0, 1, 0, n)).toISOString(),
    });
    const ids = () => [...ol.children].map((li) => Number(li.dataset.id.slice(-12)));
    const steps = {};
    shown.firstPage([exp(9), exp(8)], { whole: true });
    steps.first = ids();
    steps.added = shown.olderPage([exp(8), exp(7), exp(6)]).map((e) => Number(e.exp.id.slice(-12)));
    steps.older = ids();
    // A refresh of the first page: a new export on top, 9 gone (deleted); 7 and 6, older
    // than the page's last, stay below it.
    shown.firstPage([exp(10), exp(8, 2)], { whole: false });
    steps.refreshed = ids();
    // Everything fits one page now: it is the whole list.
    shown.firstPage([exp(10), exp(7)], { whole: true });
    steps.whole = ids();
    // An export created while the page was read: not in it, and not removed.
    const mark = shown.mark();
    shown.update(exp(11));
    shown.firstPage([exp(10), exp(7)], { whole: true, mark });
    steps.raced = ids();
    shown.remove(exp(7).id);
    steps.removed = ids();
    return steps;
}"""


async def test_pages_of_the_list_merge_by_id(page: Page) -> None:
    steps = await run(page, PAGES)

    assert steps == {
        "first": [9, 8],
        "added": [7, 6],
        "older": [9, 8, 7, 6],
        "refreshed": [10, 8, 7, 6],
        "whole": [10, 7],
        "raced": [11, 10, 7],
        "removed": [11, 10],
    }
