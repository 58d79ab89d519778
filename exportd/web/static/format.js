// Words and numbers for an export's state. Every field may be missing or null: the page
// shows what the server sends and no more.

export const TERMINAL = new Set(['succeeded', 'failed', 'canceled', 'expired']);
// A queued export's estimate nearer than this says nothing worth showing.
const ESTIMATE_MIN_S = 5;
const STATUS_LABELS = {
  queued: 'Queued',
  running: 'Running',
  succeeded: 'Succeeded',
  failed: 'Failed',
  canceled: 'Canceled',
  expired: 'Expired',
};

function num(value) {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

export function statusLabel(status) {
  return STATUS_LABELS[status] || String(status || 'unknown');
}

export function bytes(value) {
  const n = num(value);
  if (n === null) return '';
  if (n < 1000) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let scaled = n;
  let unit = -1;
  while (scaled >= 1000 && unit < units.length - 1) {
    scaled /= 1000;
    unit += 1;
  }
  return `${scaled.toFixed(scaled < 10 ? 1 : 0)} ${units[unit]}`;
}

export function count(value) {
  const n = num(value);
  return n === null ? '' : n.toLocaleString('en-US');
}

export function rows(value) {
  return num(value) === 1 ? '1 row' : `${count(value)} rows`;
}

export function duration(seconds) {
  const s = num(seconds);
  if (s === null) return '';
  if (s < 60) return `${Math.max(1, Math.round(s))} s`;
  if (s < 3600) return `${Math.round(s / 60)} min`;
  const hours = Math.floor(s / 3600);
  const minutes = Math.round((s % 3600) / 60);
  return minutes ? `${hours} h ${minutes} min` : `${hours} h`;
}

export function ordinal(value) {
  const n = num(value);
  if (n === null) return '';
  const tens = n % 100;
  const suffix = tens >= 11 && tens <= 13 ? 'th' : ({ 1: 'st', 2: 'nd', 3: 'rd' }[n % 10] || 'th');
  return `${n}${suffix}`;
}

function instant(iso) {
  if (typeof iso !== 'string') return null;
  const at = new Date(iso);
  return Number.isNaN(at.getTime()) ? null : at;
}

export function dateTime(iso) {
  const at = instant(iso);
  return at ? at.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' }) : '';
}

// To the second: what tells apart exports created the same minute.
export function dateTimeSeconds(iso) {
  const at = instant(iso);
  return at ? at.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' }) : '';
}

// When an export was created, to the second (what tells apart exports made the same
// minute): "10:42:07 AM (2 min ago)" within the hour, the time alone later that day, the
// date and time before.
export function createdText(iso, now = Date.now()) {
  const at = instant(iso);
  if (!at) return '';
  const today = at.toDateString() === new Date(now).toDateString();
  const when = today
    ? at.toLocaleTimeString(undefined, { timeStyle: 'medium' })
    : dateTimeSeconds(iso);
  const ago = (now - at.getTime()) / 1000;
  if (ago < -60 || ago >= 3600) return when;
  return `${when} (${ago < 60 ? 'just now' : `${Math.floor(ago / 60)} min ago`})`;
}

// Finished and nothing more to come: a succeeded export is still mailing its link until
// progress.phase says "done".
export function settled(exp) {
  if (!exp || !TERMINAL.has(exp.status)) return false;
  const phase = exp.progress && typeof exp.progress === 'object' ? exp.progress.phase : null;
  return !(exp.status === 'succeeded' && phase === 'mailing');
}

function paramValue(value) {
  if (value === null || value === undefined) return '';
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  if (typeof value === 'string') {
    // A timestamp in the reader's time; a date, a word, as given.
    if (/^\d{4}-\d{2}-\d{2}T/.test(value) && instant(value)) return dateTime(value);
    return value;
  }
  if (typeof value === 'number') return String(value);
  try {
    return JSON.stringify(value);
  } catch {
    return '';
  }
}

// An export's parameters in one line: "since 2025-01-01 · status paid", in `order` (the
// catalog's) first. Parameters left out or null are not shown.
export function paramsText(params, order = []) {
  if (!params || typeof params !== 'object' || Array.isArray(params)) return '';
  const names = [...order.filter((n) => Object.hasOwn(params, n)),
    ...Object.keys(params).filter((n) => !order.includes(n))];
  return names
    .map((name) => [String(name).replace(/_/g, ' '), paramValue(params[name])])
    .filter(([, value]) => value !== '')
    .map(([name, value]) => `${name} ${value}`)
    .join(' · ');
}

// Where a queued export stands: "3rd in line · waiting for your tenant's earlier exports ·
// starts in about 2 min". Without a queue (the create answer has none): "queued". An
// estimate is shown only while it is ahead by more than a few seconds: a late one says
// nothing rather than "starting" when others are still ahead.
function queuedText(queue, now) {
  if (!queue || typeof queue !== 'object') return ['queued'];
  const parts = [];
  const ahead = num(queue.ahead);
  const position = num(queue.position) ?? (ahead === null ? null : ahead + 1);
  if (position !== null && position >= 1) {
    parts.push(position === 1 ? 'next in line' : `${ordinal(position)} in line`);
  }
  if (queue.waiting_for === 'tenant_limit') parts.push("waiting for your tenant's earlier exports");
  const start = instant(queue.estimated_start_at);
  if (start) {
    const wait = (start.getTime() - now) / 1000;
    if (wait > ESTIMATE_MIN_S) parts.push(`starts in about ${duration(wait)}`);
  }
  return parts.length ? parts : ['queued'];
}

function runningText(progress) {
  const parts = [];
  const percent = num(progress.percent);
  // Floored: 99.9 is not done, and a running export never reads 100%.
  if (percent !== null) parts.push(`${Math.min(99, Math.floor(percent))}%`);
  if (progress.phase === 'uploading') parts.push('uploading');
  if (percent === null && num(progress.rows)) parts.push(rows(progress.rows));
  if (num(progress.bytes)) parts.push(bytes(progress.bytes));
  const eta = num(progress.eta_s);
  if (eta !== null) parts.push(`ETA ${duration(eta)}`);
  return parts.length ? parts : ['starting'];
}

// {value: 0-100 or null (indeterminate), shown: bool, text}
export function progressOf(exp, now = Date.now()) {
  const progress = exp.progress && typeof exp.progress === 'object' ? exp.progress : {};
  const result = exp.result && typeof exp.result === 'object' ? exp.result : {};
  switch (exp.status) {
    case 'queued':
      return { value: 0, shown: true, text: queuedText(exp.queue, now).join(' · ') };
    case 'running': {
      const percent = num(progress.percent);
      const value = percent === null ? null : Math.min(99, Math.max(0, Math.floor(percent)));
      return { value, shown: true, text: runningText(progress).join(' · ') };
    }
    case 'succeeded': {
      // The file is ready; the mail with its link is still on its way.
      const parts = [progress.phase === 'mailing' ? 'ready · sending the mail' : 'done'];
      if (num(result.size) !== null) parts.push(bytes(result.size));
      if (num(result.rows) !== null) parts.push(rows(result.rows));
      return { value: 100, shown: true, text: parts.join(' · ') };
    }
    case 'expired':
      return { value: 100, shown: false, text: 'the file was deleted at the end of its retention' };
    case 'canceled': {
      const when = dateTime(exp.finished_at);
      return { value: 0, shown: false, text: when ? `canceled ${when}` : 'canceled' };
    }
    case 'failed': {
      const attempts = num(exp.attempts);
      const text = attempts && attempts > 1 ? `failed after ${attempts} attempts` : 'failed';
      return { value: 0, shown: false, text };
    }
    default:
      return { value: null, shown: false, text: '' };
  }
}
