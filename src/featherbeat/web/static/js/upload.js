// The upload view: the drop box, the checks made before any byte is sent, the upload itself,
// the API token, and the list of this browser's recent analyses.

import * as api from "./api.js";
import { formatBytes, formatTime, timeAgo } from "./format.js";
import * as store from "./store.js";
import { $, currentView, showMessage, showView, withoutName } from "./ui.js";

const AUDIO_EXT = /\.(mp3|wav|wave|flac|ogg|oga|opus|m4a|aac|mp4|aif|aiff|wma|webm)$/i;

/** Read the duration from the browser's own metadata parser; null when it cannot. */
function readDuration(file) {
  return new Promise((resolve) => {
    const probe = document.createElement("audio");
    const url = URL.createObjectURL(file);
    const done = (d) => {
      URL.revokeObjectURL(url);
      probe.removeAttribute("src");
      resolve(d);
    };
    probe.preload = "metadata";
    probe.onloadedmetadata = () => done(Number.isFinite(probe.duration) ? probe.duration : null);
    probe.onerror = () => done(null);
    setTimeout(() => done(null), 4000);
    probe.src = url;
  });
}

function looksLikeAudio(file) {
  return (file.type && file.type.startsWith("audio/")) || AUDIO_EXT.test(file.name);
}

export class UploadView {
  /**
   * hooks.beforeUpload(): called once the file passed the checks (the result on screen goes).
   * hooks.onProgress(fraction) while the bytes go up; hooks.onUploaded(job, file) when accepted.
   */
  constructor(hooks) {
    this.hooks = hooks;
    this.config = null; // GET /api/v1/config, once read
    this.waitingForToken = null; // a File refused with 401, uploaded again once a token is entered
  }

  setConfig(config) {
    this.config = config;
    $("token-box").hidden = !config.auth_required;
    if (config.max_upload_bytes) {
      $("limits").textContent =
        `MP3, WAV, FLAC, OGG, Opus, M4A/AAC · up to ${formatBytes(config.max_upload_bytes)}` +
        (config.max_duration_seconds ? ` and ${formatTime(config.max_duration_seconds)}` : "");
    }
  }

  show() {
    showView("upload");
    this.renderRecent();
  }

  /** Ask for the API token (a request was refused with 401). */
  askForToken() {
    $("token-box").hidden = false;
  }

  renderRecent() {
    const list = $("recent-list");
    const items = store.recent();
    list.replaceChildren();
    $("recent-empty").hidden = items.length > 0;
    for (const e of items) {
      const li = document.createElement("li");
      const a = document.createElement("a");
      a.href = `/a/${encodeURIComponent(e.id)}`;
      a.textContent = e.filename || e.id;
      const meta = document.createElement("span");
      meta.className = "hint";
      const bits = [];
      if (e.tempo) bits.push(`${e.tempo.toFixed(0)} BPM`);
      if (e.key) bits.push(e.key);
      if (e.duration) bits.push(formatTime(e.duration));
      if (e.status && e.status !== "done") bits.push(e.status);
      bits.push(timeAgo(e.created_at));
      meta.textContent = bits.filter(Boolean).join(" · ");
      const del = document.createElement("button");
      del.type = "button";
      del.className = "forget";
      del.textContent = "×";
      del.setAttribute("aria-label", `Forget ${e.filename || e.id}`);
      del.addEventListener("click", () => {
        store.forget(e.id);
        this.renderRecent();
      });
      li.append(a, meta, del);
      list.append(li);
    }
  }

  explainError(err, file) {
    const why = withoutName(err.message, file.name);
    switch (err.status) {
      case 401:
        // Keep the file: entering the token uploads it without choosing it again.
        this.waitingForToken = file;
        $("token-box").hidden = false;
        $("token").focus();
        return store.getToken()
          ? `The API token was refused: ${err.message} Correct it above and the upload starts again.`
          : "This server needs an API token. Enter it above and the upload starts.";
      case 413:
        return `${file.name} is too big for this server. ${why}`;
      case 415:
        return `${file.name} was refused as not audio: ${why}`;
      case 422:
        return `${file.name} is too long for this server. ${why}`;
      case 503: {
        const wait = err.retryAfter ? ` Try again in ${err.retryAfter} s.` : "";
        return `The server is busy. ${err.message}${wait}`;
      }
      default:
        return `The server refused ${file.name}: ${why}`;
    }
  }

  async handleFile(file) {
    showMessage("");
    if (!file) return;
    $("file-info").hidden = false;
    $("file-name").textContent = file.name;
    $("file-size").textContent = formatBytes(file.size);
    $("file-duration").textContent = "…";
    const cfg = this.config;
    if (!looksLikeAudio(file)) {
      $("file-duration").textContent = "–";
      showMessage(`${file.name} does not look like audio. Choose an MP3, WAV, FLAC, OGG, Opus or M4A file.`);
      return;
    }
    if (file.size === 0) {
      // Said here: probing an empty file's duration would only log a failed request.
      $("file-duration").textContent = "–";
      showMessage(`${file.name} is empty (0 bytes): there is no audio in it to analyse.`);
      return;
    }
    if (cfg && cfg.max_upload_bytes && file.size > cfg.max_upload_bytes) {
      $("file-duration").textContent = "–";
      showMessage(
        `${file.name} is too big: ${formatBytes(file.size)}, and this server takes at most ${formatBytes(cfg.max_upload_bytes)}.`,
      );
      return;
    }
    const duration = await readDuration(file);
    $("file-duration").textContent =
      duration === null ? "unknown (the server will tell)" : formatTime(duration);
    if (duration !== null && cfg && cfg.max_duration_seconds && duration > cfg.max_duration_seconds) {
      showMessage(
        `${file.name} is too long: ${formatTime(duration)}, and this server analyses at most ${formatTime(cfg.max_duration_seconds)}.`,
      );
      return;
    }
    this.hooks.beforeUpload(file);
    let job;
    try {
      job = await api.upload(file, (f) => this.hooks.onProgress(f));
    } catch (err) {
      this.show();
      showMessage(this.explainError(err, file));
      return;
    }
    store.remember({
      id: job.id,
      filename: job.filename || file.name,
      created_at: job.created_at,
      status: job.status,
    });
    this.hooks.onUploaded(job, file);
  }

  wire() {
    const input = $("file");
    input.addEventListener("change", () => {
      this.handleFile(input.files[0]);
      input.value = ""; // choosing the same file again must fire change again
    });
    const drop = $("drop");
    for (const ev of ["dragenter", "dragover"]) {
      drop.addEventListener(ev, (e) => {
        e.preventDefault();
        drop.classList.add("over");
      });
    }
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    // A file dropped anywhere on the page (the box, or over a result) starts a new analysis;
    // without this the browser would navigate away to show the file.
    window.addEventListener("dragover", (e) => e.preventDefault());
    window.addEventListener("drop", (e) => {
      e.preventDefault();
      drop.classList.remove("over");
      const file = e.dataTransfer && e.dataTransfer.files[0];
      if (file && currentView() !== "progress") this.handleFile(file);
    });

    const token = $("token");
    token.value = store.getToken();
    // Leaving the field or pressing Enter (the form's submit) commits it; a file refused for
    // want of a token is then uploaded once, whichever comes first.
    const commit = () => {
      store.setToken(token.value);
      const file = this.waitingForToken;
      this.waitingForToken = null;
      if (file && token.value.trim() && currentView() === "upload") this.handleFile(file);
    };
    token.addEventListener("change", commit);
    $("token-box").addEventListener("submit", (e) => {
      e.preventDefault(); // the page never navigates for it
      commit();
    });
  }
}
