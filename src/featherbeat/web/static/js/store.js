// What this browser remembers: the API token and the recent analyses (localStorage only).

const TOKEN_KEY = "featherbeat.token";
const RECENT_KEY = "featherbeat.recent";
const RECENT_MAX = 20;

// localStorage throws in some private modes; the page must still work without memory.
function read(key, fallback) {
  try {
    const raw = localStorage.getItem(key);
    return raw === null ? fallback : JSON.parse(raw);
  } catch {
    return fallback;
  }
}

function write(key, value) {
  try {
    localStorage.setItem(key, JSON.stringify(value));
  } catch {
    /* quota or privacy mode: forgetting is acceptable */
  }
}

export function getToken() {
  const t = read(TOKEN_KEY, "");
  return typeof t === "string" ? t : "";
}

export function setToken(token) {
  write(TOKEN_KEY, token.trim());
}

/** Recent analyses, newest first: [{id, filename, created_at, status, tempo, key, duration}]. */
export function recent() {
  const list = read(RECENT_KEY, []);
  return Array.isArray(list) ? list.filter((e) => e && typeof e.id === "string") : [];
}

/** Add or update one entry (matched by id) and move it to the top. */
export function remember(entry) {
  const old = recent().find((e) => e.id === entry.id) || {};
  const merged = { ...old, ...entry };
  const rest = recent().filter((e) => e.id !== entry.id);
  write(RECENT_KEY, [merged, ...rest].slice(0, RECENT_MAX));
}

export function forget(id) {
  write(
    RECENT_KEY,
    recent().filter((e) => e.id !== id),
  );
}
