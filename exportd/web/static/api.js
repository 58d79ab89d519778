// The public API with the bearer token: JSON in, JSON or problem+json out.

export class ApiError extends Error {
  constructor(status, problem) {
    const detail = problem && typeof problem.detail === 'string' ? problem.detail : '';
    const title = problem && typeof problem.title === 'string' ? problem.title : '';
    super(detail || title || (status ? `The server answered ${status}.` : 'The server could not be reached.'));
    this.status = status;
    this.problem = problem && typeof problem === 'object' ? problem : null;
  }
}

export class Unauthorized extends ApiError {}

async function readJson(response) {
  const type = response.headers.get('Content-Type') || '';
  if (!type.includes('json')) return null;
  try {
    return await response.json();
  } catch {
    return null;
  }
}

export class Api {
  // onUnauthorized(error): the token was refused (expired, revoked, mistyped).
  constructor(token, { onUnauthorized }) {
    this.token = token;
    this.onUnauthorized = onUnauthorized;
  }

  // Resolves to {status, etag, data} for 2xx and 304; rejects with ApiError otherwise.
  async request(path, { method = 'GET', body, headers = {}, signal } = {}) {
    const init = {
      method,
      headers: { Accept: 'application/json', Authorization: `Bearer ${this.token}`, ...headers },
      signal,
      credentials: 'omit',
      cache: 'no-store',
      redirect: 'error',
    };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (error) {
      if (error && error.name === 'AbortError') throw error;
      throw new ApiError(0, null);
    }
    const etag = response.headers.get('ETag');
    if (response.status === 304) return { status: 304, etag, data: null };
    const data = await readJson(response);
    if (response.ok) return { status: response.status, etag, data };
    if (response.status === 401) {
      const error = new Unauthorized(401, data);
      this.onUnauthorized(error);
      throw error;
    }
    throw new ApiError(response.status, data);
  }
}
