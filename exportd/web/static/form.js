// The create form, generated from GET /v1/export-types: one labelled input per parameter,
// typed by the parameter's type; POST /v1/exports with an Idempotency-Key per submission.

const COMPRESSIONS = ['none', 'gzip', 'zstd'];
// Formats that compress themselves: the API refuses a compression around them.
const SELF_COMPRESSED = new Set(['parquet']);

function el(tag, props = {}, text) {
  const node = document.createElement(tag);
  Object.assign(node, props);
  if (text !== undefined) node.textContent = text;
  return node;
}

function option(value, text, selected = false) {
  const node = el('option', { value, selected }, text);
  return node;
}

function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const raw = crypto.getRandomValues(new Uint8Array(16));
  return [...raw].map((b) => b.toString(16).padStart(2, '0')).join('');
}

function humanize(name) {
  const words = String(name).replace(/_/g, ' ');
  return words.charAt(0).toUpperCase() + words.slice(1);
}

// datetime-local shows local time without a zone: to and from an ISO 8601 instant.
function toLocalInput(iso) {
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return '';
  const local = new Date(at.getTime() - at.getTimezoneOffset() * 60000);
  return local.toISOString().slice(0, 16);
}

function inputFor(param, id) {
  const def = param.default;
  switch (param.type) {
    case 'date':
      return el('input', { id, type: 'date', value: typeof def === 'string' ? def : '' });
    case 'timestamp':
      return el('input', { id, type: 'datetime-local', value: def ? toLocalInput(def) : '' });
    case 'int': {
      const input = el('input', { id, type: 'number', step: '1', inputMode: 'numeric' });
      for (const [attr, keys] of [['min', ['min', 'minimum']], ['max', ['max', 'maximum']]]) {
        const bound = keys.map((k) => param[k]).find((v) => typeof v === 'number');
        if (bound !== undefined) input.setAttribute(attr, String(bound));
      }
      if (typeof def === 'number') input.value = String(def);
      return input;
    }
    case 'bool':
      return el('input', { id, type: 'checkbox', checked: def === true });
    case 'enum': {
      const select = el('select', { id });
      const values = Array.isArray(param.values) ? param.values : [];
      const blank = param.required && def == null ? 'Choose…' : '(any)';
      if (!(param.required && def != null)) select.append(option('', blank, def == null));
      for (const value of values) select.append(option(String(value), String(value), value === def));
      return select;
    }
    default:
      return el('input', {
        id, type: 'text', value: typeof def === 'string' ? def : '', spellcheck: false,
      });
  }
}

// A format the catalog spells out for people typing it: "(YYYY-MM-DD)", "(format
// YYYY-MM-DDTHH:MM)".
const FORMAT_NOTE = /\s*\([^()]*\bYYYY-MM-DD[^()]*\)/gi;
// What a date or timestamp typed as text must look like (the API's format).
const TYPED_FORMAT = { date: 'YYYY-MM-DD', timestamp: 'YYYY-MM-DDTHH:MM' };

// The help under a parameter's input. A native date or date-time input is its own format
// (the browser's picker, in the reader's locale): a format note would contradict it, so it
// goes. Only where the browser falls back to a text input is the format said (and checked).
export function hintText(param, inputType) {
  const typed = TYPED_FORMAT[param.type];
  const native = typed && inputType !== 'text';
  let description = typeof param.description === 'string' ? param.description : '';
  if (native) description = description.replace(FORMAT_NOTE, '').trim();
  const parts = [description];
  if (typed && !native && !description.toUpperCase().includes(typed.slice(0, 10))) {
    parts.push(typed);
  }
  if (param.type === 'timestamp') parts.push('your local time');
  return parts.filter((part) => part).join(' · ');
}

// The JSON value of one parameter's input; undefined leaves it out (the export's default).
function valueOf(param, input) {
  if (param.type === 'bool') return input.checked;
  const raw = input.value;
  if (raw === '') return undefined;
  if (param.type === 'int') return Number.isInteger(input.valueAsNumber) ? input.valueAsNumber : raw;
  if (param.type === 'timestamp') {
    const at = new Date(raw);
    return Number.isNaN(at.getTime()) ? raw : at.toISOString();
  }
  return raw;
}

export class CreateForm {
  // onCreated(exp, replayed): the API accepted an export.
  constructor(form, api, { onCreated }) {
    this.form = form;
    this.api = api;
    this.onCreated = onCreated;
    this.types = [];
    this.fields = new Map();
    this.key = null;
    this.select = form.querySelector('#export-type');
    this.format = form.querySelector('#format');
    this.compression = form.querySelector('#compression');
    this.fileName = form.querySelector('#file-name');
    this.problemBox = form.querySelector('#create-problem');
    this.submit = form.querySelector('#create-submit');
    this.description = form.querySelector('#export-description');
    this.select.addEventListener('change', () => this.renderType());
    this.format.addEventListener('change', () => this.syncCompression());
    // A changed request is a new submission: it gets a new key.
    form.addEventListener('input', () => { this.key = null; });
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.send();
    });
  }

  setTypes(types) {
    this.types = types;
    const current = this.select.value;
    this.select.replaceChildren(...types.map((t) => option(t.name, t.title || t.name)));
    if (types.some((t) => t.name === current)) this.select.value = current;
    this.submit.disabled = types.length === 0;
    this.renderType();
  }

  chosen() {
    return this.types.find((t) => t.name === this.select.value);
  }

  renderType() {
    const type = this.chosen();
    const params = type && Array.isArray(type.params) ? type.params : [];
    this.description.textContent = type && type.description ? type.description : '';
    this.description.hidden = !this.description.textContent;
    const container = this.form.querySelector('#param-fields');
    this.fields.clear();
    container.replaceChildren(...params.map((param, index) => this.field(param, index)));
    this.form.querySelector('#params').hidden = params.length === 0;
    const formats = type && Array.isArray(type.formats) ? type.formats : ['csv'];
    this.format.replaceChildren(...formats.map((f) => option(String(f), String(f).toUpperCase())));
    this.syncCompression();
    this.clearProblem();
  }

  field(param, index) {
    const id = `param-${index}`;
    const wrap = el('div', { className: param.type === 'bool' ? 'field check' : 'field' });
    const input = inputFor(param, id);
    input.name = String(param.name);
    if (param.required && param.type !== 'bool') input.required = true;
    const label = el('label', { htmlFor: id }, humanize(param.name));
    if (param.required) {
      const mark = el('span', { className: 'required-mark' }, '*');
      mark.setAttribute('aria-hidden', 'true');
      label.append(' ', mark);
    }
    const described = [];
    const hint = el('p', { className: 'hint', id: `${id}-hint` });
    hint.textContent = hintText(param, input.type);
    if (param.type === 'date' && input.type === 'text') input.pattern = '\\d{4}-\\d{2}-\\d{2}';
    if (hint.textContent) described.push(hint.id);
    const error = el('p', { className: 'field-error', id: `${id}-error`, hidden: true });
    if (described.length) input.setAttribute('aria-describedby', described.join(' '));
    if (param.type === 'bool') wrap.append(input, label);
    else wrap.append(label, input);
    if (hint.textContent) wrap.append(hint);
    wrap.append(error);
    this.fields.set(String(param.name), { param, input, error, described });
    return wrap;
  }

  syncCompression() {
    const selfCompressed = SELF_COMPRESSED.has(this.format.value);
    this.compression.replaceChildren(
      ...(selfCompressed ? ['none'] : COMPRESSIONS).map((c) => option(c, c === 'none' ? 'None' : c)),
    );
    this.compression.disabled = selfCompressed;
    this.form.querySelector('#compression-hint').hidden = !selfCompressed;
  }

  body() {
    const type = this.chosen();
    const params = {};
    for (const [name, { param, input }] of this.fields) {
      const value = valueOf(param, input);
      if (value !== undefined) params[name] = value;
    }
    const body = {
      export: type ? type.name : this.select.value,
      params,
      format: this.format.value,
      compression: this.compression.value || 'none',
    };
    const fileName = this.fileName.value.trim();
    if (fileName) body.file_name = fileName;
    return body;
  }

  async send() {
    if (this.submit.disabled) return;
    this.clearProblem();
    this.key ??= newKey();
    this.submit.disabled = true;
    this.submit.setAttribute('aria-busy', 'true');
    try {
      const answer = await this.api.request('v1/exports', {
        method: 'POST',
        body: this.body(),
        headers: { 'Idempotency-Key': this.key },
      });
      this.key = null;
      this.onCreated(answer.data);
    } catch (error) {
      if (error.status !== 401) this.showProblem(error);
    } finally {
      this.submit.disabled = false;
      this.submit.removeAttribute('aria-busy');
    }
  }

  clearProblem() {
    this.problemBox.hidden = true;
    this.problemBox.replaceChildren();
    const named = [this.select, this.format, this.compression, this.fileName];
    for (const input of named) input.removeAttribute('aria-invalid');
    for (const { input, error, described } of this.fields.values()) {
      input.removeAttribute('aria-invalid');
      error.hidden = true;
      error.textContent = '';
      if (described.length) input.setAttribute('aria-describedby', described.join(' '));
      else input.removeAttribute('aria-describedby');
    }
  }

  // The problem's detail by the form, and beside each field it names (invalid_params names
  // `param` or `params`; invalid_request's detail names a JSON path such as `$.format`).
  showProblem(error) {
    const problem = error.problem || {};
    const title = typeof problem.title === 'string' ? problem.title : 'The export was not created';
    const retry = error.status === 429 ? ' Wait a little and try again.' : '';
    this.problemBox.replaceChildren(el('strong', {}, title), el('span', {}, ` ${error.message}${retry}`));
    this.problemBox.hidden = false;
    const names = [];
    if (typeof problem.param === 'string') names.push(problem.param);
    if (Array.isArray(problem.params)) names.push(...problem.params.filter((n) => typeof n === 'string'));
    const path = /`\$\.([a-z_]+)(?:\.([a-z0-9_]+))?`/.exec(String(problem.detail || ''));
    if (path && path[1] === 'params' && path[2]) names.push(path[2]);
    let first = null;
    for (const name of names) {
      const field = this.fields.get(name);
      if (!field) continue;
      field.input.setAttribute('aria-invalid', 'true');
      field.error.textContent = error.message;
      field.error.hidden = false;
      field.input.setAttribute('aria-describedby', [...field.described, field.error.id].join(' '));
      first ??= field.input;
    }
    const top = { export: this.select, format: this.format, compression: this.compression, file_name: this.fileName };
    if (path && top[path[1]]) {
      top[path[1]].setAttribute('aria-invalid', 'true');
      first ??= top[path[1]];
    }
    if (first) first.focus();
  }
}
