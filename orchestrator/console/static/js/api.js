// The REST API as the Python client calls it, authenticated by the session cookie. Every
// change (POST/PUT/PATCH/DELETE) carries the session's CSRF token.

export const session = { csrf: null, caller: null };
let onLoggedOut = () => {};

export function whenLoggedOut(fn) {
  onLoggedOut = fn;
}

export class ApiError extends Error {
  constructor(status, body) {
    super(body.message || `HTTP ${status}`);
    this.status = status;
    this.code = body.code || String(status);
    this.field = body.field || null;
  }
}

function url(path, query) {
  const u = new URL(path, location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v === null || v === undefined || v === "") continue;
    for (const one of Array.isArray(v) ? v : [v]) u.searchParams.append(k, one);
  }
  return u;
}

export async function request(method, path, opts = {}) {
  const headers = { ...(opts.headers || {}) };
  let body = opts.body;
  if (opts.json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(opts.json);
  }
  if (!["GET", "HEAD"].includes(method) && session.csrf) headers["X-CSRF-Token"] = session.csrf;
  const r = await fetch(url(path, opts.query), {
    method, headers, body, credentials: "same-origin",
  });
  if (!r.ok) {
    let doc;
    try {
      doc = await r.json();
    } catch {
      doc = { code: String(r.status), message: `${r.status} ${r.statusText}` };
    }
    const err = new ApiError(r.status, doc);
    if (r.status === 401 && !opts.loginRequest) onLoggedOut(err);
    throw err;
  }
  return r;
}

export async function json(method, path, opts) {
  const r = await request(method, path, opts);
  if (r.status === 204) return null;
  const text = await r.text();
  return text ? JSON.parse(text) : null;
}

export const get = (path, query) => json("GET", path, { query });

// null when the route is absent (a server without that feature yet): pages degrade.
export async function getOptional(path, query) {
  try {
    return await get(path, query);
  } catch (e) {
    if (e.status === 404 || e.status === 405) return null;
    throw e;
  }
}

export async function logIn(apiKey) {
  const doc = await json("POST", "/console/session", { json: { ApiKey: apiKey }, loginRequest: true });
  session.csrf = doc.CsrfToken;
  session.caller = doc.Caller;
  return doc;
}

export async function resume() {
  const doc = await json("GET", "/console/session", { loginRequest: true });
  session.csrf = doc.CsrfToken;
  session.caller = doc.Caller;
  return doc;
}

export async function logOut() {
  try {
    await request("DELETE", "/console/session", { loginRequest: true });
  } finally {
    session.csrf = null;
    session.caller = null;
  }
}

export const enc = encodeURIComponent;
