// The list of exports, newest first: one <li> per export, updated in place. All server text
// goes in through textContent and attributes, never as HTML.

import { TERMINAL, bytes, dateTime, progressOf, statusLabel } from './format.js';

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

export class ExportList {
  // actions: {download(exp), cancel(exp)}; announce(text) speaks a change of status.
  constructor(listEl, emptyEl, { actions, announce }) {
    this.listEl = listEl;
    this.emptyEl = emptyEl;
    this.actions = actions;
    this.announce = announce;
    this.titles = new Map();
    this.entries = new Map();
  }

  setTitles(types) {
    this.titles = new Map(types.map((t) => [t.name, t.title || t.name]));
  }

  title(exp) {
    return this.titles.get(exp.export) || String(exp.export || 'export');
  }

  // A page of the list: newest first; exports it no longer holds leave the page.
  replace(items) {
    const seen = new Set();
    let previous = null;
    for (const exp of items) {
      if (!exp || typeof exp.id !== 'string') continue;
      seen.add(exp.id);
      const entry = this.upsert(exp, { announce: false });
      const wanted = previous ? previous.nextSibling : this.listEl.firstChild;
      if (entry.li !== wanted) this.listEl.insertBefore(entry.li, wanted);
      previous = entry.li;
    }
    for (const [id, entry] of this.entries) {
      if (!seen.has(id)) {
        entry.li.remove();
        this.entries.delete(id);
      }
    }
    this.emptyEl.hidden = this.entries.size > 0;
  }

  // One export as the API answered it (a poll, a create, a cancel); older versions are ignored.
  update(exp) {
    const known = this.entries.has(exp.id);
    const entry = this.upsert(exp, { announce: true });
    if (!known) this.listEl.prepend(entry.li);
    this.emptyEl.hidden = true;
    return entry.exp;
  }

  pending() {
    return [...this.entries.values()].map((e) => e.exp).filter((exp) => !TERMINAL.has(exp.status));
  }

  get(id) {
    return this.entries.get(id)?.exp;
  }

  clear() {
    this.entries.clear();
    this.listEl.replaceChildren();
    this.emptyEl.hidden = true;
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
    li.append(head, meta, file, bar, error, actions, note);
    const entry = {
      exp, li, name, badge, meta, file, progress, text, error, note, actions, download, cancel,
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

    const created = el('time', '', dateTime(exp.created_at));
    if (typeof exp.created_at === 'string') created.dateTime = exp.created_at;
    const format = [exp.format, exp.compression && exp.compression !== 'none' ? exp.compression : '']
      .filter((part) => typeof part === 'string' && part)
      .map((part) => part.toUpperCase())
      .join(' + ');
    entry.meta.replaceChildren(`${format || 'file'} · created `, created);

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
