// The REST API as the console calls it. The session cookie is HttpOnly: scripts never
// see a credential. Every call carries X-Inbox-Client, which a cross-site form or
// <img> cannot send, so the cookie is only honoured for the console's own requests.

export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

/**
 * api("GET", "/api/conversations", {query: {status: "open"}})
 * api("POST", "/api/conversations/1/messages", {body: {...}, idempotencyKey: "..."})
 * api("GET", "/api/auth/me", {headers: {Authorization: "Bearer ..."}})
 * Resolves to the answer's JSON (a resource, or {data, pagination} for a list), or null
 * for 204.
 * Rejects with ApiError (status 0 when the network failed).
 */
export async function api(method, path, { query, body, idempotencyKey, signal, headers: extra } = {}) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, String(v));
  }
  const headers = { "X-Inbox-Client": "console", Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey;
  // A page signed in with a key (the wall-screen dashboard) sends it as Authorization.
  if (extra) Object.assign(headers, extra);
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      signal,
    });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, "NETWORK", "The server cannot be reached", null);
  }
  if (response.status === 204) return null;
  let payload = null;
  try {
    payload = await response.json();
  } catch {
    payload = null;
  }
  if (!response.ok) {
    const e = (payload && payload.error) || {};
    throw new ApiError(
      response.status,
      e.code || `HTTP_${response.status}`,
      e.message || response.statusText,
      e.details || null,
    );
  }
  return payload;
}
