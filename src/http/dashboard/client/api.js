// @ts-check
/**
 * The dashboard's calls to the control API, served at `/dashboard/api.js`.
 *
 * The admin token lives in `sessionStorage`, so it lasts until the tab
 * closes, and only ever travels in an `Authorization: Bearer` header: never
 * in a URL, a cookie or `localStorage`. A 401 forgets it and tells the page.
 */

const TOKEN_KEY = "floe.adminToken";

/** What a 401 does besides forgetting the token; the page sets it (it shows the sign-in form). */
let onUnauthorized = /** @param {string} _reason */ (_reason) => {};

/**
 * Sets what a 401 does besides forgetting the token.
 * @param {(reason: string) => void} handler
 */
export function whenUnauthorized(handler) {
  onUnauthorized = handler;
}

/** Whether this tab holds a token. */
export function signedIn() {
  return !!sessionStorage.getItem(TOKEN_KEY);
}

/**
 * Keeps the token for this tab.
 * @param {string} token
 */
export function keepToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
}

/** Forgets the token. */
export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

/** A failed API call: the HTTP status (0 when the engine did not answer) and the API's error code. */
export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} code
   * @param {string} message
   */
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/**
 * What a `catch` caught, as an ApiError.
 * @param {unknown} e
 * @returns {ApiError}
 */
export function apiError(e) {
  return e instanceof ApiError ? e : new ApiError(0, "script_error", e instanceof Error ? e.message : String(e));
}

/** Where floe is mounted ("" at the root), from the page's floe-base meta tag: API paths are under it. */
const BASE = (typeof document === "undefined" ? null : document.querySelector('meta[name="floe-base"]'))?.getAttribute("content") ?? "";

/**
 * Calls the control API with the session's token; a 401 forgets the token
 * and tells the page (`whenUnauthorized`). The answer's shape is the
 * caller's to name: it is what the route returns.
 * @template T
 * @param {"GET" | "POST"} method
 * @param {string} path
 * @param {object} [body]
 * @returns {Promise<{ status: number, data: T }>}
 */
export async function api(method, path, body) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) throw new ApiError(401, "unauthorized", "not signed in");
  /** @type {Record<string, string>} */
  const headers = { authorization: "Bearer " + token, accept: "application/json" };
  /** @type {RequestInit} */
  const init = { method, headers, cache: "no-store", credentials: "omit" };
  if (body !== undefined) {
    headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(BASE + path, init);
  } catch (e) {
    throw new ApiError(0, "unreachable", "the engine did not answer (" + (e instanceof Error ? e.message : String(e)) + ")");
  }
  const text = await res.text();
  /** @type {unknown} */
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  const err = errorOf(data);
  if (res.status === 401) {
    forgetToken();
    onUnauthorized("The token was refused (401 " + (err ? err.code + ": " + err.message : "unauthorized") + ").");
    throw new ApiError(401, "unauthorized", err ? err.message : "unauthorized");
  }
  if (!res.ok) throw new ApiError(res.status, err ? err.code : "http_" + res.status, err ? err.message : text.slice(0, 200) || res.statusText);
  // The route's answer, as the caller names it: the API's own types describe what each route returns.
  return { status: res.status, data: /** @type {T} */ (data) };
}

/**
 * The API's `{ error: { code, message } }`, if that is what an answer holds.
 * @param {unknown} data
 * @returns {{ code: string, message: string } | null}
 */
function errorOf(data) {
  if (typeof data !== "object" || data === null || !("error" in data)) return null;
  const e = data.error;
  if (typeof e !== "object" || e === null || !("code" in e) || !("message" in e)) return null;
  return { code: String(e.code), message: String(e.message) };
}

/**
 * The path of a job's resource: `jobPath("clicks", "/metrics")`.
 * @param {string} name
 * @param {string} [rest]
 */
export function jobPath(name, rest) {
  return "/v1/jobs/" + encodeURIComponent(name) + (rest || "");
}

