// Live status: long-polls of the exports that are not settled, at most MAX_POLLS at once
// (a browser opens 6 connections per origin over HTTP/1.1; the page needs the others).
// With more unsettled exports than slots they take turns, one poll each. A succeeded export
// still mailing its link (progress.phase "mailing") is watched, and takes its turns, until
// the phase is "done".

import { Unauthorized } from './api.js';
import { settled } from './format.js';

const MAX_POLLS = 4;
const WAIT_S = 25;
const RETRY_FIRST_MS = 1000;
const RETRY_MAX_MS = 30000;
// However fast answers come back, one export is asked about at most this often.
const MIN_GAP_MS = 500;

export class Watcher {
  // onExport(exp): a fresher version of an export; onGone(id): it no longer exists.
  constructor(api, { onExport, onGone }) {
    this.api = api;
    this.onExport = onExport;
    this.onGone = onGone;
    this.wanted = new Set();
    this.etags = new Map();
    this.queue = [];
    this.inFlight = new Map();
    this.retries = new Map();
    this.timers = new Set();
    this.started = new Map();
    this.running = false;
  }

  // The unsettled exports, newest first (the order they get their first turn).
  track(exports) {
    const ids = new Set();
    for (const exp of exports) {
      ids.add(exp.id);
      // The ETag is the export's version; a stale guess costs one early answer.
      if (!this.etags.has(exp.id) && typeof exp.version === 'number') {
        this.etags.set(exp.id, `"${exp.version}"`);
      }
      if (!this.wanted.has(exp.id)) {
        this.wanted.add(exp.id);
        this.queue.push(exp.id);
      }
    }
    for (const id of [...this.wanted]) {
      if (!ids.has(id)) this.forget(id);
    }
    this.pump();
  }

  forget(id) {
    this.wanted.delete(id);
    this.etags.delete(id);
    this.retries.delete(id);
    this.started.delete(id);
    this.queue = this.queue.filter((queued) => queued !== id);
  }

  start() {
    this.running = true;
    this.pump();
  }

  // Hidden tab, signed out: drop every poll now; start() picks them up again.
  stop() {
    this.running = false;
    for (const controller of this.inFlight.values()) controller.abort();
    this.inFlight.clear();
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    this.queue = [...this.wanted];
  }

  pump() {
    while (this.running && this.inFlight.size < MAX_POLLS && this.queue.length) {
      const id = this.queue.shift();
      if (this.wanted.has(id) && !this.inFlight.has(id)) this.poll(id);
    }
  }

  async poll(id) {
    const controller = new AbortController();
    this.inFlight.set(id, controller);
    this.started.set(id, Date.now());
    let delay = 0;
    try {
      const headers = {};
      const etag = this.etags.get(id);
      if (etag) headers['If-None-Match'] = etag;
      const answer = await this.api.request(
        `v1/exports/${encodeURIComponent(id)}?wait=${WAIT_S}`,
        { headers, signal: controller.signal },
      );
      this.retries.delete(id);
      if (answer.status !== 304 && answer.data) {
        const etag = answer.etag || (typeof answer.data.version === 'number' ? `"${answer.data.version}"` : null);
        if (etag) this.etags.set(id, etag);
        this.onExport(answer.data);
        if (settled(answer.data)) this.forget(id);
      }
    } catch (error) {
      if (controller.signal.aborted || error instanceof Unauthorized) return;
      if (error && error.status === 404) {
        this.forget(id);
        this.onGone(id);
      } else {
        delay = Math.min(RETRY_MAX_MS, (this.retries.get(id) || RETRY_FIRST_MS / 2) * 2);
        this.retries.set(id, delay);
      }
    } finally {
      if (this.inFlight.get(id) === controller) this.inFlight.delete(id);
    }
    this.again(id, delay);
  }

  // Back of the line (after `failed` ms when the poll failed, or the least gap), and the
  // next one in.
  again(id, failed) {
    if (!this.running) return;
    const delay = Math.max(failed, MIN_GAP_MS - (Date.now() - (this.started.get(id) || 0)));
    const requeue = () => {
      if (this.running && this.wanted.has(id) && !this.queue.includes(id)) this.queue.push(id);
      this.pump();
    };
    if (delay <= 0) {
      requeue();
      return;
    }
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      requeue();
    }, delay);
    this.timers.add(timer);
    this.pump(); // the freed slot is another export's meanwhile
  }
}
