// The HTTP API as the page uses it: JSON in and out, the API key on every request,
// and errors turned into ApiError(status, detail) with the server's own words.

const KEY_STORAGE = "mmsearch_api_key";
const KEY_COOKIE = "mmsearch_api_key";
// Characters a cookie value may hold unquoted (RFC 6265 cookie-octet, minus nothing exotic).
const COOKIE_SAFE = /^[\x21\x23-\x2B\x2D-\x3A\x3C-\x5B\x5D-\x7E]+$/;

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
    this.detail = detail;
  }
}

export function getApiKey() {
  try {
    return localStorage.getItem(KEY_STORAGE) || "";
  } catch {
    return ""; // storage blocked (private mode, file://): no key
  }
}

/** Store the key (or forget it, when empty) and mirror it into a cookie so that
 * <img> and <video> requests, which cannot carry headers, are authorised too.
 * Returns false when the key cannot travel in a cookie (media may then not load). */
export function setApiKey(key) {
  key = (key || "").trim();
  try {
    if (key) localStorage.setItem(KEY_STORAGE, key);
    else localStorage.removeItem(KEY_STORAGE);
  } catch {
    /* storage blocked: the key lasts for this page only via the cookie */
  }
  return syncCookie(key);
}

export function syncCookie(key = getApiKey()) {
  if (!key) {
    document.cookie = `${KEY_COOKIE}=; SameSite=Strict; path=/; max-age=0`;
    return true;
  }
  if (!COOKIE_SAFE.test(key)) return false;
  document.cookie = `${KEY_COOKIE}=${key}; SameSite=Strict; path=/`;
  return true;
}

/** FastAPI's detail is a string, or for validation errors a list of {loc, msg}. */
export function formatDetail(detail) {
  if (detail == null) return "";
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail
      .map((e) => {
        if (!e || typeof e !== "object") return String(e);
        const where = (e.loc || []).filter((p) => p !== "body").join(".");
        return where ? `${where}: ${e.msg}` : e.msg;
      })
      .join("; ");
  }
  return JSON.stringify(detail);
}

/** fetch() with the key header; `json` or `form` is the body. Resolves to the parsed JSON. */
export async function api(path, { method = "GET", json, form, signal } = {}) {
  const headers = { Accept: "application/json" };
  const key = getApiKey();
  if (key) headers["X-API-Key"] = key;
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form; // the browser sets the multipart boundary
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body, signal, credentials: "same-origin" });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, `Cannot reach the server (${e.message}).`);
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    let detail = formatDetail(data && data.detail) || text.trim() || response.statusText || "request failed";
    if (response.status === 401) {
      detail = `An API key is needed: enter it under Settings → API key. (${detail})`;
    } else if (response.status === 403 && /key/i.test(detail)) {
      detail = `The API key was refused: check it under Settings → API key. (${detail})`;
    }
    throw new ApiError(response.status, detail);
  }
  return data;
}
