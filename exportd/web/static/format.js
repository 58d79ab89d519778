// Words and numbers for an export's state. Every field may be missing or null: the page
// shows what the server sends and no more.

export const TERMINAL = new Set(['succeeded', 'failed', 'canceled', 'expired']);
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

export function dateTime(iso) {
  if (typeof iso !== 'string') return '';
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return '';
  return at.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

function queuedText(queue) {
  const parts = ['queued'];
  if (!queue || typeof queue !== 'object') return parts;
  const position = num(queue.position);
  if (position !== null) parts[0] = `queued, ${ordinal(position)} in line`;
  if (queue.waiting_for === 'tenant_limit') parts.push('after your running exports');
  if (typeof queue.estimated_start_at === 'string') {
    const wait = (new Date(queue.estimated_start_at).getTime() - Date.now()) / 1000;
    if (Number.isFinite(wait)) parts.push(wait > 1 ? `starts in about ${duration(wait)}` : 'starting');
  }
  return parts;
}

function runningText(progress) {
  const parts = [];
  const percent = num(progress.percent);
  if (percent !== null) parts.push(`${Math.floor(percent)}%`);
  if (progress.phase === 'uploading') parts.push('uploading');
  if (percent === null && num(progress.rows)) parts.push(rows(progress.rows));
  if (num(progress.bytes)) parts.push(bytes(progress.bytes));
  const eta = num(progress.eta_s);
  if (eta !== null) parts.push(`ETA ${duration(eta)}`);
  return parts.length ? parts : ['starting'];
}

// {value: 0-100 or null (indeterminate), shown: bool, text}
export function progressOf(exp) {
  const progress = exp.progress && typeof exp.progress === 'object' ? exp.progress : {};
  const result = exp.result && typeof exp.result === 'object' ? exp.result : {};
  switch (exp.status) {
    case 'queued':
      return { value: 0, shown: true, text: queuedText(exp.queue).join(' · ') };
    case 'running': {
      const percent = num(progress.percent);
      const value = percent === null ? null : Math.min(99, Math.max(0, percent));
      return { value, shown: true, text: runningText(progress).join(' · ') };
    }
    case 'succeeded': {
      const parts = [progress.phase === 'mailing' ? 'done · mailing' : 'done'];
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
