// Downloads. GET v1/exports/{id}/download needs the bearer token, which a link cannot carry,
// and its usual answer, a 302 to a presigned URL on the store's origin, is one fetch may not
// follow (connect-src 'self'; the store sends no CORS headers). So the page asks for the URL
// itself (Accept: application/json) and navigates there: the object carries
// Content-Disposition: attachment, so the browser saves the file and the page stays.

import { ApiError } from './api.js';

// The store's URL, if it is one the page may navigate to (http or https, nothing else).
function storeUrl(value) {
  if (typeof value !== 'string') return null;
  try {
    const url = new URL(value, document.baseURI);
    return url.protocol === 'https:' || url.protocol === 'http:' ? url.href : null;
  } catch {
    return null;
  }
}

// Starts the download of a succeeded export; rejects with ApiError when the API refused
// (expired since, not found, not finished) or could not be reached.
export async function download(api, id) {
  const answer = await api.request(`v1/exports/${encodeURIComponent(id)}/download`);
  const url = storeUrl(answer.data?.url);
  if (!url) throw new ApiError(0, { detail: 'The server did not say where the file is; try again.' });
  window.location.assign(url);
}
