// The page's only way to the server: the public HTTP API (docs/api.md). No private endpoints.

import { getToken } from "./store.js";

const BASE = "/api/v1";

/** An error the server (or the network) gave, with the API's snake_case code. */
export class ApiError extends Error {
  constructor(status, code, message, retryAfter = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

function authHeaders() {
  const token = getToken();
  return token ? { Authorization: `Bearer ${token}` } : {};
}

// Every API error has the body {"error": {"code", "message"}}; a proxy's HTML page does not,
// so fall back to the status line rather than showing markup to a person.
function errorFrom(status, text, retryAfter) {
  try {
    const body = JSON.parse(text);
    if (body && body.error && body.error.message) {
      return new ApiError(status, body.error.code || "error", body.error.message, retryAfter);
    }
  } catch {
    /* not JSON */
  }
  return new ApiError(status, `http_${status}`, `The server answered ${status}.`, retryAfter);
}

async function getJSON(url) {
  let res;
  try {
    res = await fetch(url, { headers: { Accept: "application/json", ...authHeaders() } });
  } catch {
    throw new ApiError(0, "network", "The server cannot be reached. Check your connection.");
  }
  const text = await res.text();
  if (!res.ok) throw errorFrom(res.status, text, res.headers.get("Retry-After"));
  return JSON.parse(text);
}

export function absolute(link) {
  return new URL(link, window.location.href).href;
}

/** A job link with ?format=... set (links.analysis may or may not carry a query already). */
export function formatLink(job, format) {
  const url = new URL(job.links.analysis, window.location.href);
  url.searchParams.set("format", format);
  return url.href;
}

export function getConfig() {
  return getJSON(`${BASE}/config`);
}

export function getJob(id) {
  return getJSON(`${BASE}/analyses/${encodeURIComponent(id)}`);
}

export function getAnalysis(job) {
  return getJSON(formatLink(job, "spotify"));
}

/** Delete the job, its results and its audio on the server (needs the token when set). */
export async function deleteJob(job) {
  let res;
  try {
    res = await fetch(new URL(job.links.self, window.location.href), {
      method: "DELETE",
      headers: { Accept: "application/json", ...authHeaders() },
    });
  } catch {
    throw new ApiError(0, "network", "The server cannot be reached. Check your connection.");
  }
  if (!res.ok && res.status !== 404) throw errorFrom(res.status, await res.text(), null);
}

/**
 * Upload a File. XMLHttpRequest rather than fetch because only it reports upload progress.
 * Resolves with the JOB object (202 new, or 200 already done); rejects with ApiError.
 */
export function upload(file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `${BASE}/analyses`);
    xhr.setRequestHeader("Accept", "application/json");
    for (const [k, v] of Object.entries(authHeaders())) xhr.setRequestHeader(k, v);
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable && onProgress) onProgress(e.loaded / e.total);
    };
    xhr.onload = () => {
      if (xhr.status === 200 || xhr.status === 202) {
        try {
          resolve(JSON.parse(xhr.responseText));
        } catch {
          reject(new ApiError(xhr.status, "bad_response", "The server's answer was not understood."));
        }
      } else {
        reject(errorFrom(xhr.status, xhr.responseText, xhr.getResponseHeader("Retry-After")));
      }
    };
    // A server that refuses a large body early (413) may reset the connection before the
    // browser reads the answer; say what most likely happened.
    xhr.onerror = () =>
      reject(
        new ApiError(
          0,
          "network",
          "The upload was cut off. The file may be too big, or the server unreachable.",
        ),
      );
    const form = new FormData();
    form.append("file", file, file.name);
    xhr.send(form);
  });
}

/**
 * Follow a job until it is done or failed: Server-Sent Events first, polling when the stream
 * is unavailable (proxies that buffer, a token the EventSource cannot send, old servers).
 * Calls onUpdate(job) on every change, and onContact(false) when the server has not answered
 * three polls in a row (onContact(true) once it answers again). Returns a function that stops
 * watching.
 */
export function watchJob(job, onUpdate, { pollMs = 1000, onContact = () => {} } = {}) {
  let stopped = false;
  let source = null;
  let timer = null;
  let failures = 0;
  let missed = 0; // polls in a row without an answer
  const finished = (j) => j.status === "done" || j.status === "failed";

  const stop = () => {
    stopped = true;
    if (source) source.close();
    if (timer) clearTimeout(timer);
  };
  const deliver = (j) => {
    if (stopped) return;
    onUpdate(j);
    if (finished(j)) stop();
  };

  const poll = async () => {
    if (stopped) return;
    try {
      const j = await getJob(job.id);
      if (missed >= 3) onContact(true);
      missed = 0;
      deliver(j);
    } catch (err) {
      if (err.status === 404) {
        stop();
        onUpdate({ ...job, status: "failed", error: { code: err.code, message: err.message } });
        return;
      }
      // Transient (a restart, a network blip): keep trying, less often, and say so after a while.
      missed += 1;
      if (missed === 3) onContact(false);
    }
    if (!stopped) timer = setTimeout(poll, pollMs * Math.min(5, 1 + missed));
  };

  if (typeof EventSource === "function" && job.links && job.links.events) {
    source = new EventSource(absolute(job.links.events));
    source.addEventListener("status", (e) => {
      failures = 0;
      try {
        deliver(JSON.parse(e.data));
      } catch {
        /* ignore a malformed message; the next one or the poll fallback will do */
      }
    });
    source.onerror = () => {
      if (stopped) return;
      failures += 1;
      // EventSource reconnects by itself; two errors in a row mean the stream is not working
      // here, so switch to polling for good.
      if (failures >= 2 || source.readyState === EventSource.CLOSED) {
        source.close();
        source = null;
        poll();
      }
    };
  } else {
    poll();
  }
  return stop;
}
