// exportd's page: sign in with a bearer token, create exports, watch them, download, cancel.
// It uses only the public API. The token lives in this tab's sessionStorage; one handed over
// in the URL fragment (#token=..., never sent to a server) is taken and wiped from the bar.

import { Api, ApiError, Unauthorized } from './api.js';
import { download } from './download.js';
import { CreateForm } from './form.js';
import { ExportList } from './list.js';
import { dateTime } from './format.js';
import { Watcher } from './watch.js';

const TOKEN_KEY = 'exportd.token';
const LIST_LIMIT = 50;
const REFRESH_MS = 15000;

const $ = (id) => document.getElementById(id);

let session = null;
// One form for the page's life; each session hands it that session's API.
let form = null;

function announce(text) {
  const region = $('announcer');
  region.textContent = '';
  // A fresh text node after a tick, so the same words twice are spoken twice.
  setTimeout(() => { region.textContent = text; }, 50);
}

function showMessage(node, text) {
  node.textContent = text || '';
  node.hidden = !text;
}

function takeFragmentToken() {
  if (!location.hash.startsWith('#')) return null;
  const params = new URLSearchParams(location.hash.slice(1));
  const token = params.get('token');
  if (token === null) return null;
  history.replaceState(null, '', `${location.pathname}${location.search}`);
  return token.trim() || null;
}

function showLogin(message) {
  $('signed-in').hidden = true;
  $('sign-out').hidden = true;
  $('login').hidden = false;
  showMessage($('login-message'), message);
  const input = $('token');
  input.value = '';
  input.focus();
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  if (session) session.close();
  session = null;
  showLogin(message);
}

class Session {
  constructor(token) {
    this.api = new Api(token, { onUnauthorized: (error) => this.refused(error) });
    this.list = new ExportList($('export-list'), $('empty'), {
      actions: { download: (exp, entry) => this.download(exp, entry), cancel: (exp, entry) => this.cancel(exp, entry) },
      announce,
    });
    this.watcher = new Watcher(this.api, {
      onExport: (exp) => this.list.update(exp),
      onGone: (id) => {
        this.list.remove(id);
        this.refresh();
      },
    });
    this.timer = null;
    this.loading = null;
    this.again = false;
    this.closed = false;
    // Older pages: the cursor of the next one (null: none left), and whether the user has
    // loaded any (then a refresh reads the first page only and keeps them).
    this.cursor = null;
    this.olderShown = false;
    this.fetchingOlder = false;
    this.onVisibility = () => (document.hidden ? this.pause() : this.resume());
  }

  async open() {
    const types = await this.api.request('v1/export-types');
    const items = Array.isArray(types.data?.items) ? types.data.items : [];
    this.list.setTitles(items);
    form.api = this.api;
    form.setTypes(items);
    $('login').hidden = true;
    $('signed-in').hidden = false;
    $('sign-out').hidden = false;
    document.addEventListener('visibilitychange', this.onVisibility);
    if (!document.hidden) this.resume();
  }

  close() {
    this.closed = true;
    this.pause();
    document.removeEventListener('visibilitychange', this.onVisibility);
    this.list.clear();
    $('export-list').replaceChildren();
    $('older').hidden = true;
  }

  refused(error) {
    if (this.closed) return;
    const why = error.message ? ` (${error.message})` : '';
    signOut(`The server refused the token${why}. Sign in with a valid one.`);
  }

  pause() {
    clearTimeout(this.timer);
    this.timer = null;
    this.watcher.stop();
  }

  resume() {
    if (this.closed) return;
    this.watcher.start();
    this.refresh();
  }

  // The list now, then every REFRESH_MS while the tab is visible. Asked while a load is on
  // its way (which may have been read before a change), one more follows it.
  async refresh() {
    clearTimeout(this.timer);
    if (this.loading) {
      this.again = true;
      return this.loading;
    }
    this.again = false;
    const button = $('refresh');
    button.dataset.loading = 'true';
    this.loading = this.load().finally(() => {
      this.loading = null;
      delete button.dataset.loading;
      if (this.closed) return;
      if (this.again && !document.hidden) this.refresh();
      else if (!document.hidden) this.timer = setTimeout(() => this.refresh(), REFRESH_MS);
    });
    return this.loading;
  }

  // The first page only, merged by id: older pages the user loaded stay.
  async load() {
    const mark = this.list.mark();
    try {
      const answer = await this.api.request(`v1/exports?limit=${LIST_LIMIT}`);
      if (this.closed) return;
      const items = Array.isArray(answer.data?.items) ? answer.data.items : [];
      const next = typeof answer.data?.next_cursor === 'string' ? answer.data.next_cursor : null;
      const whole = !this.olderShown || next === null;
      this.list.firstPage(items, { whole, mark });
      if (whole) {
        this.olderShown = false;
        this.cursor = next;
      }
      this.showOlderButton();
      this.watcher.track(this.list.pending());
      showMessage($('list-message'), '');
    } catch (error) {
      if (error instanceof Unauthorized || this.closed) return;
      showMessage($('list-message'), `Could not load your exports: ${error.message}`);
    }
  }

  showOlderButton() {
    $('older').hidden = this.cursor === null;
  }

  // The next older page, below the list. The button keeps the focus while there are more
  // (it is marked busy, not disabled, so it keeps it meanwhile); after the last page the
  // focus goes to the first export it added.
  async older() {
    const button = $('older');
    if (this.fetchingOlder || this.cursor === null) return;
    this.fetchingOlder = true;
    button.setAttribute('aria-disabled', 'true');
    button.setAttribute('aria-busy', 'true');
    try {
      const cursor = encodeURIComponent(this.cursor);
      const answer = await this.api.request(`v1/exports?limit=${LIST_LIMIT}&cursor=${cursor}`);
      if (this.closed) return;
      const items = Array.isArray(answer.data?.items) ? answer.data.items : [];
      const added = this.list.olderPage(items);
      this.olderShown = true;
      this.cursor = typeof answer.data?.next_cursor === 'string' ? answer.data.next_cursor : null;
      this.showOlderButton();
      this.watcher.track(this.list.pending());
      showMessage($('list-message'), '');
      const n = added.length;
      const what = n === 1 ? '1 older export' : `${n} older exports`;
      const last = this.cursor === null ? ' That is all of them.' : '';
      announce(n ? `${what} added below.${last}` : `No older exports.${last}`);
      if (this.cursor === null) {
        const target = added[0]?.li || $('export-list').lastElementChild;
        if (target) {
          target.tabIndex = -1;
          target.focus();
        }
      }
    } catch (error) {
      if (error instanceof Unauthorized || this.closed) return;
      showMessage($('list-message'), `Could not load older exports: ${error.message}`);
    } finally {
      this.fetchingOlder = false;
      button.removeAttribute('aria-disabled');
      button.removeAttribute('aria-busy');
    }
  }

  created(exp) {
    if (exp && typeof exp.id === 'string') {
      this.list.update(exp);
      this.watcher.track(this.list.pending());
      announce(`Export created: ${this.list.title(exp)}`);
    }
    this.refresh();
  }

  // The file from a URL minted for this click; a refusal (expired since, say) by the export.
  async download(exp, entry) {
    showMessage(entry.note, 'Starting the download…');
    entry.download.disabled = true;
    try {
      await download(this.api, exp.id);
      showMessage(entry.note, 'Download started.');
    } catch (error) {
      if (error instanceof Unauthorized) return; // refused() showed the sign-in form
      showMessage(entry.note, `Could not download: ${error.message}`);
      this.refresh();
    } finally {
      entry.download.disabled = false;
    }
  }

  async cancel(exp, entry) {
    const when = dateTime(exp.created_at);
    const question = `Cancel the ${this.list.title(exp)} export${when ? ` created ${when}` : ''}?`;
    if (!window.confirm(question)) return;
    entry.cancel.disabled = true;
    try {
      const answer = await this.api.request(`v1/exports/${encodeURIComponent(exp.id)}/cancel`, { method: 'POST' });
      if (answer.data) this.list.update(answer.data);
      showMessage(entry.note, '');
    } catch (error) {
      if (error instanceof Unauthorized) return;
      showMessage(entry.note, `Could not cancel: ${error.message}`);
    } finally {
      entry.cancel.disabled = false;
    }
    this.refresh();
  }
}

async function signIn(token, { fromForm = false } = {}) {
  if (session) session.close();
  session = new Session(token);
  const submit = $('login-submit');
  submit.disabled = true;
  try {
    await session.open();
    sessionStorage.setItem(TOKEN_KEY, token);
    if (fromForm) $('main').focus();
  } catch (error) {
    if (error instanceof Unauthorized) return; // refused() showed the login form
    const attempt = session;
    if (attempt) attempt.close();
    session = null;
    showLogin(`Could not reach exportd: ${error instanceof ApiError ? error.message : String(error)}`);
  } finally {
    submit.disabled = false;
  }
}

function start() {
  form = new CreateForm($('create-form'), null, { onCreated: (exp) => session?.created(exp) });
  $('login-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const token = $('token').value.trim();
    if (token) signIn(token, { fromForm: true });
  });
  $('sign-out').addEventListener('click', () => signOut(''));
  $('refresh').addEventListener('click', () => session?.refresh());
  $('older').addEventListener('click', () => session?.older());
  // A link with #token= opened in this tab while the page is already here.
  window.addEventListener('hashchange', () => {
    const handed = takeFragmentToken();
    if (handed) signIn(handed);
  });
  const handed = takeFragmentToken();
  if (handed) sessionStorage.setItem(TOKEN_KEY, handed);
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) signIn(token);
  else showLogin('');
}

start();
