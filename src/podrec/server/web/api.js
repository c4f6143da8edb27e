// The REST API as seen from the page: one fetch wrapper that adds the key and turns error
// bodies (FastAPI's {"detail": ...}) into one readable message.

const KEY = "podrec.apiKey";

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

export function getKey() {
  try {
    return localStorage.getItem(KEY) || "";
  } catch {
    return "";
  }
}

export function setKey(key) {
  try {
    if (key) localStorage.setItem(KEY, key);
    else localStorage.removeItem(KEY);
  } catch {
    /* storage disabled: the key lives for this page only */
  }
}

/** One line from an error body: a string detail, or FastAPI's list of field errors. */
export function errorMessage(body, fallback) {
  const detail = body && typeof body === "object" ? body.detail ?? body.error ?? body.message : body;
  if (typeof detail === "string" && detail) return detail;
  if (Array.isArray(detail)) {
    return detail
      .map((d) => {
        const loc = Array.isArray(d.loc) ? d.loc.filter((p) => p !== "body").join(".") : "";
        return loc ? `${loc}: ${d.msg}` : d.msg || JSON.stringify(d);
      })
      .join("; ");
  }
  if (detail && typeof detail === "object") return JSON.stringify(detail);
  return fallback;
}

let onUnauthorized = () => {};
/** Called with the ApiError whenever the server answers 401 (no or bad key). */
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

/** Absolute URL of an API path, relative to where the page is served. */
export function apiUrl(path, params) {
  const url = new URL(path.replace(/^\//, ""), document.baseURI);
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, v);
  }
  return url.toString();
}

export async function api(path, { method = "GET", body, params, auth = true } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const key = getKey();
  if (auth && key) headers.Authorization = `Bearer ${key}`;
  let res;
  try {
    res = await fetch(apiUrl(path, params), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    throw new ApiError(0, `The server could not be reached (${err.message}).`, null);
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (!res.ok) {
    const error = new ApiError(res.status, errorMessage(data, `${res.status} ${res.statusText}`), data);
    if (res.status === 401 && auth) onUnauthorized(error);
    throw error;
  }
  return data;
}

/** The items of a list answer, whether it is {"items": [...]} or a bare list. */
export function itemsOf(data) {
  if (Array.isArray(data)) return data;
  if (data && Array.isArray(data.items)) return data.items;
  return [];
}
