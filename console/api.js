// The console's only way to the server: the public /v1 API, same origin, with the signed-in
// API key sent as HTTP Basic credentials. The key lives in sessionStorage only (gone when the
// tab closes; never in localStorage, cookies or URLs).

const STORAGE_KEY = "sluice.credentials";

/** The signed-in key: {id, secret}, or null. */
export function credentials() {
  try {
    const value = JSON.parse(sessionStorage.getItem(STORAGE_KEY) ?? "null");
    return value && typeof value.id === "string" && typeof value.secret === "string" ? value : null;
  } catch {
    return null;
  }
}

export function saveCredentials(id, secret) {
  sessionStorage.setItem(STORAGE_KEY, JSON.stringify({ id, secret }));
}

export function forgetCredentials() {
  sessionStorage.removeItem(STORAGE_KEY);
}

/** `Basic base64(id:secret)`, UTF-8 safe. */
export function authorization(creds = credentials()) {
  if (!creds) return null;
  const bytes = new TextEncoder().encode(`${creds.id}:${creds.secret}`);
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return `Basic ${btoa(binary)}`;
}

/** An API failure: `status` (HTTP, 0 for a network failure), `code` and `message` from the body. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Reads the API's `{"error": {"code", "message"}}` from a failed response. */
export async function errorFrom(response) {
  let code = `http_${response.status}`;
  let message = `${response.status} ${response.statusText || "request failed"}`;
  try {
    const body = await response.json();
    if (body && body.error) {
      code = body.error.code ?? code;
      message = body.error.message ?? message;
    }
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(response.status, code, message);
}

/**
 * Calls the API. Returns the parsed JSON body (null for 204). Throws ApiError. A 401 also
 * dispatches `sluice:unauthorized` on window so the shell can send the person to sign-in.
 */
export async function request(method, path, body, { signal, creds } = {}) {
  const headers = { Accept: "application/json" };
  const auth = authorization(creds ?? credentials());
  if (auth) headers.Authorization = auth;
  // credentials "omit": no cookies are needed, and a 401 (which carries WWW-Authenticate:
  // Basic) then comes back to the script instead of opening the browser's login prompt.
  const init = { method, headers, signal, cache: "no-store", credentials: "omit" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "network", "Cannot reach the server. Check your connection and try again.");
  }
  if (!response.ok) {
    const error = await errorFrom(response);
    if (response.status === 401 && !creds) {
      window.dispatchEvent(new CustomEvent("sluice:unauthorized", { detail: error }));
    }
    throw error;
  }
  if (response.status === 204) return null;
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

/** GET one object: returns `data`. */
export async function get(path, options) {
  return (await request("GET", path, undefined, options)).data;
}

/** GET a page: returns `{data, next_cursor}`. */
export async function page(path, { limit = 25, cursor, query = {} } = {}, options) {
  const params = new URLSearchParams({ limit: String(limit), ...query });
  if (cursor) params.set("cursor", cursor);
  return request("GET", `${path}?${params}`, undefined, options);
}

export async function post(path, body, options) {
  const result = await request("POST", path, body, options);
  return result ? result.data ?? result : null;
}

export async function patch(path, body, options) {
  return (await request("PATCH", path, body, options)).data;
}

export async function del(path, options) {
  await request("DELETE", path, undefined, options);
}

/** Encodes an id for a URL path segment. */
export const seg = (id) => encodeURIComponent(id);
