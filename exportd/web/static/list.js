// The list of exports, newest first: one <li> per export, updated in place. All server text
// goes in through textContent and attributes, never as HTML.

import {
  TERMINAL, bytes, createdText, dateTimeSeconds, paramsText, progressOf, settled, statusLabel,
} from './format.js';

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function hidden(text) {
  return el('span', 'visually-hidden', text);
}

function version(exp) {
  return typeof exp.version === 'number' ? exp.version : -1;
}

// In microseconds, as the API keeps it (a Date keeps milliseconds); missing: newest.
function createdUs(exp) {
  const iso = exp.created_at;
  const at = typeof iso === 'string' ? new Date(iso).getTime() : NaN;
  if (Number.isNaN(at)) return Infinity;
  const fraction = /T[^.]*\.\d{3}(\d{1,3})/.exec(iso);
  return at * 1000 + (fraction ? Number(fraction[1].padEnd(3, '0')) : 0);
}

// The API's order: newest first, then by id (the cursor's order too). Negative: `a` first.
function newestFirst(a, b) {
  const [at, bt] = [createdUs(a), createdUs(b)];
  if (at !== bt) return at > bt ? -1 : 1;
  if (a.id === b.id) return 0;
  return a.id > b.id ? -1 : 1;
}

function usable(items) {
  return (Array.isArray(items) ? items : []).filter((exp) => exp && typeof exp.id === 'string');
}

export class ExportList {
  // actions: {download(exp), cancel(exp)}; announce(text) speaks a change of status.
  constructor(listEl, emptyEl, { actions, announce }) {
    this.listEl = listEl;
    this.emptyEl = emptyEl;
    this.actions = actions;
    this.announce = announce;
    this.titles = new Map();
    this.paramOrder = new Map();
    this.entries = new Map();
    // Counts the single updates (a poll, a create, a cancel): a page asked for before one
    // may not hold its export yet, and does not remove it.
    this.clock = 0;
  }

  setTitles(types) {
    this.titles = new Map(types.map((t) => [t.name, t.title || t.name]));
    this.paramOrder = new Map(types.map((t) => [
      t.name, Array.isArray(t.params) ? t.params.map((p) => String(p.name)) : [],
    ]));
  }

  title(exp) {
    return this.titles.get(exp.export) || String(exp.export || 'export');
  }

  // Taken before asking for a page; handed back with its answer (see firstPage).
  mark() {
    return this.clock;
  }

  // The newest page as the API answers it now. Exports it no longer holds leave the list
  // where the page covers them: all of the list when it is `whole` (no older page shown, or
  // none left), else those newer than its last; older pages the user loaded stay below it.
  // An export updated on its own since `mark` stays too (created after the page was read).
  firstPage(items, { whole, mark = Infinity }) {
    const page = usable(items);
    const seen = new Set();
    let last = null;
    for (const exp of page) {
      seen.add(exp.id);
      this.upsert(exp, { announce: false });
      if (!last || newestFirst(exp, last) > 0) last = exp;
    }
    for (const [id, entry] of this.entries) {
      if (seen.has(id) || entry.touched > mark) continue;
      if (whole || (last && newestFirst(entry.exp, last) < 0)) this.drop(id);
    }
    this.order();
  }

  // An older page (the user asked for it): added below, merged by id. The entries it added.
  olderPage(items) {
    const added = [];
    for (const exp of usable(items)) {
      const known = this.entries.has(exp.id);
      const entry = this.upsert(exp, { announce: false });
      if (!known) added.push(entry);
    }
    this.order();
    return added.sort((a, b) => newestFirst(a.exp, b.exp));
  }

  // One export as the API answered it (a poll, a create, a cancel); older versions are ignored.
  update(exp) {
    const entry = this.upsert(exp, { announce: true });
    this.clock += 1;
    entry.touched = this.clock;
    this.order();
    return entry.exp;
  }

  // An export the API no longer knows.
  remove(id) {
    if (this.drop(id)) this.order();
  }

  // The exports with more to come: unfinished, or still mailing.
  pending() {
    return [...this.entries.values()].map((e) => e.exp).filter((exp) => !settled(exp));
  }

  get(id) {
    return this.entries.get(id)?.exp;
  }

  clear() {
    this.entries.clear();
    this.listEl.replaceChildren();
    this.emptyEl.hidden = true;
  }

  drop(id) {
    const entry = this.entries.get(id);
    if (!entry) return false;
    entry.li.remove();
    this.entries.delete(id);
    return true;
  }

  // The items in the API's order; only those out of place move (moving one would take the
  // focus from a button in it).
  order() {
    const sorted = [...this.entries.values()].sort((a, b) => newestFirst(a.exp, b.exp));
    let previous = null;
    for (const entry of sorted) {
      const wanted = previous ? previous.nextSibling : this.listEl.firstChild;
      if (entry.li !== wanted) this.listEl.insertBefore(entry.li, wanted);
      previous = entry.li;
    }
    this.emptyEl.hidden = this.entries.size > 0;
  }

  upsert(exp, { announce }) {
    let entry = this.entries.get(exp.id);
    if (!entry) {
      entry = this.build(exp);
      this.entries.set(exp.id, entry);
    } else if (version(exp) < version(entry.exp)) {
      return entry;
    }
    const before = entry.exp.status;
    entry.exp = exp;
    this.fill(entry);
    if (announce && before !== exp.status) {
      this.announce(`${this.title(exp)} export: ${statusLabel(exp.status).toLowerCase()}`);
    }
    return entry;
  }

  build(exp) {
    const key = `x${this.entries.size}-${Math.random().toString(36).slice(2, 8)}`;
    const li = el('li', 'export');
    const head = el('div', 'export-head');
    const name = el('h3', 'export-title');
    name.id = `${key}-title`;
    const badge = el('span', 'badge');
    head.append(name, badge);
    const meta = el('p', 'export-meta');
    const params = el('p', 'export-params');
    const file = el('p', 'export-file');
    const bar = el('div', 'progress-line');
    const progress = el('progress');
    progress.max = 100;
    const text = el('span', 'progress-text');
    text.id = `${key}-progress`;
    progress.setAttribute('aria-labelledby', name.id);
    progress.setAttribute('aria-describedby', text.id);
    bar.append(progress, text);
    const error = el('p', 'export-error');
    const note = el('p', 'export-note');
    note.setAttribute('role', 'status');
    const actions = el('div', 'export-actions');
    const download = el('button', 'download', 'Download');
    download.type = 'button';
    const cancel = el('button', 'cancel quiet', 'Cancel');
    cancel.type = 'button';
    actions.append(download, cancel);
    li.append(head, meta, params, file, bar, error, actions, note);
    const entry = {
      exp, li, name, badge, meta, params, file, progress, text, error, note, actions, download,
      cancel, touched: 0,
    };
    download.addEventListener('click', () => this.actions.download(entry.exp, entry));
    cancel.addEventListener('click', () => this.actions.cancel(entry.exp, entry));
    return entry;
  }

  fill(entry) {
    const { exp } = entry;
    const title = this.title(exp);
    entry.li.dataset.status = String(exp.status);
    entry.li.dataset.id = exp.id;
    entry.name.textContent = title;
    entry.badge.textContent = statusLabel(exp.status);
    const known = TERMINAL.has(exp.status) || exp.status === 'queued' || exp.status === 'running';
    entry.badge.className = `badge status-${known ? exp.status : 'unknown'}`;

    const created = el('time', '', createdText(exp.created_at));
    if (typeof exp.created_at === 'string') {
      created.dateTime = exp.created_at;
      created.title = dateTimeSeconds(exp.created_at);
    }
    const format = [exp.format, exp.compression && exp.compression !== 'none' ? exp.compression : '']
      .filter((part) => typeof part === 'string' && part)
      .map((part) => part.toUpperCase())
      .join(' + ');
    entry.meta.replaceChildren(`${format || 'file'} · created `, created);

    // Text, shortened on screen when long; all of it in the title and for screen readers.
    const params = paramsText(exp.params, this.paramOrder.get(exp.export));
    entry.params.textContent = params;
    entry.params.title = params;
    entry.params.hidden = !params;

    const result = exp.result && typeof exp.result === 'object' ? exp.result : null;
    const fileName = (result && result.file_name) || exp.file_name;
    entry.file.textContent = typeof fileName === 'string' ? fileName : '';
    entry.file.hidden = !entry.file.textContent;

    const shown = progressOf(exp);
    entry.progress.hidden = !shown.shown;
    if (shown.value === null) entry.progress.removeAttribute('value');
    else entry.progress.value = shown.value;
    entry.progress.setAttribute('aria-valuetext', shown.text);
    entry.text.textContent = shown.text;

    const problem = exp.error && typeof exp.error === 'object' ? exp.error : null;
    const reason = problem && typeof problem.message === 'string' ? problem.message : '';
    const ref = problem && typeof problem.id === 'string' ? ` (error id ${problem.id})` : '';
    entry.error.textContent = reason ? `${reason}${ref}` : '';
    entry.error.hidden = !reason;

    const downloadable = exp.status === 'succeeded' && result && result.download_url;
    entry.download.hidden = !downloadable;
    entry.download.replaceChildren('Download', hidden(` ${entry.file.textContent || title}`));
    if (result && typeof result.size === 'number') {
      entry.download.append(hidden(`, ${bytes(result.size)}`));
    }
    const cancellable = exp.status === 'queued' || exp.status === 'running';
    entry.cancel.hidden = !cancellable;
    entry.cancel.replaceChildren('Cancel', hidden(` ${title} export`));
    entry.actions.hidden = !downloadable && !cancellable;
  }
}
