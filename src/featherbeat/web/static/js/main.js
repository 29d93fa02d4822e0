// The page: three views over one URL scheme. "/" uploads; "/a/{id}" shows progress, then the
// result. The job id in the URL is the only state that must survive a reload; the rest is
// fetched again from the API.

import * as api from "./api.js";
import { buildModel, momentAt } from "./model.js";
import { drawOverview, drawTrack, readTheme } from "./draw.js";
import { Visualizer } from "./visualizer.js";
import { formatBytes, formatTime, keyName, percent, timeAgo } from "./format.js";
import * as store from "./store.js";

const $ = (id) => document.getElementById(id);

const AUDIO_EXT = /\.(mp3|wav|wave|flac|ogg|oga|opus|m4a|aac|mp4|aif|aiff|wma|webm)$/i;
const STAGE_TEXT = {
  queued: "Waiting in the queue",
  decoding: "Decoding the audio",
  rhythm: "Finding tempo, beats and bars",
  structure: "Finding segments, key and sections",
  writing: "Writing the results",
  done: "Done",
};

const state = {
  config: null,
  stopWatching: null,
  following: null, // the job whose progress is shown (what Cancel deletes)
  waitingForToken: null, // a File refused with 401, uploaded again once a token is entered
  // The File just uploaded from this page, by job id: played from memory, no download.
  files: new Map(),
  result: null, // {job, model, view, visualizer, objectUrl}
};

// ---------------------------------------------------------------- messages and views

function showMessage(text, kind = "error") {
  const el = $("message");
  el.textContent = text;
  el.dataset.kind = kind;
  el.hidden = !text;
}

function showView(name) {
  for (const v of ["upload", "progress", "result"]) $(`${v}-view`).hidden = v !== name;
  document.body.dataset.view = name;
}

function go(path, replace = false) {
  if (window.location.pathname === path) return;
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
}

// ---------------------------------------------------------------- upload view

function renderRecent() {
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
      renderRecent();
    });
    li.append(a, meta, del);
    list.append(li);
  }
}

function showUpload() {
  stopResult();
  showView("upload");
  renderRecent();
}

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

function explainUploadError(err, file) {
  switch (err.status) {
    case 401:
      // Keep the file: entering the token uploads it without choosing it again.
      state.waitingForToken = file;
      $("token-box").hidden = false;
      $("token").focus();
      return store.getToken()
        ? `The API token was refused: ${err.message} Correct it above and the upload starts again.`
        : "This server needs an API token. Enter it above and the upload starts.";
    case 413:
      return `${file.name} is too big for this server. ${err.message}`;
    case 415:
      return `${file.name} was refused as not audio. ${err.message}`;
    case 422:
      return `${file.name} is too long for this server. ${err.message}`;
    case 503: {
      const wait = err.retryAfter ? ` Try again in ${err.retryAfter} s.` : "";
      return `The server is busy. ${err.message}${wait}`;
    }
    default:
      return `The server refused ${file.name}: ${err.message}`;
  }
}

async function handleFile(file) {
  showMessage("");
  if (!file) return;
  $("file-info").hidden = false;
  $("file-name").textContent = file.name;
  $("file-size").textContent = formatBytes(file.size);
  $("file-duration").textContent = "…";
  const cfg = state.config;
  if (!looksLikeAudio(file)) {
    $("file-duration").textContent = "–";
    showMessage(`${file.name} does not look like audio. Choose an MP3, WAV, FLAC, OGG, Opus or M4A file.`);
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
  stopResult(); // a file dropped over a result replaces it
  showView("progress");
  $("progress-name").textContent = file.name;
  setProgress(0, "Uploading");
  $("cancel").hidden = true; // nothing to cancel on the server until the upload is accepted
  let job;
  try {
    job = await api.upload(file, (f) => setProgress(f, "Uploading"));
  } catch (err) {
    showView("upload");
    showMessage(explainUploadError(err, file));
    return;
  }
  state.files.set(job.id, file);
  store.remember({
    id: job.id,
    filename: job.filename || file.name,
    created_at: job.created_at,
    status: job.status,
  });
  go(`/a/${encodeURIComponent(job.id)}`);
  follow(job);
}

// ---------------------------------------------------------------- progress view

function setProgress(fraction, text) {
  const pct = Math.round(Math.max(0, Math.min(1, fraction)) * 100);
  $("progress-fill").style.width = `${pct}%`;
  $("progress-bar").setAttribute("aria-valuenow", String(pct));
  $("progress-bar").setAttribute("aria-valuetext", `${text}, ${pct} percent`);
  $("progress-stage").textContent = text;
  $("progress-percent").textContent = `${pct} %`;
}

function renderJob(job) {
  if (job.status === "queued") {
    const pos = job.queue_position;
    // queue_position: 1 = next to run (docs/api.md).
    const where = pos === 1 ? "next in line" : pos > 1 ? `${pos - 1} ahead of this one` : "";
    setProgress(0, where ? `${STAGE_TEXT.queued}: ${where}` : STAGE_TEXT.queued);
  } else if (job.status === "running") {
    const retry = job.attempts > 1 ? " (second try, reduced analysis)" : "";
    setProgress(job.progress || 0, `${STAGE_TEXT[job.stage] || job.stage || "Working"}${retry}`);
  } else if (job.status === "done") {
    setProgress(1, STAGE_TEXT.done);
  }
}

function follow(job) {
  if (state.stopWatching) state.stopWatching();
  showView("progress");
  $("progress-name").textContent = job.filename || job.id;
  renderJob(job);
  if (job.status === "done") {
    finish(job);
    return;
  }
  if (job.status === "failed") {
    failed(job);
    return;
  }
  state.following = job;
  $("cancel").hidden = false;
  state.stopWatching = api.watchJob(
    job,
    (j) => {
      renderJob(j);
      if (j.status === "done") finish(j);
      else if (j.status === "failed") failed(j);
    },
    {
      onContact: (ok) =>
        ok
          ? showMessage("")
          : showMessage("Lost contact with the server; still trying. The analysis goes on there.", "warning"),
    },
  );
}

/**
 * Delete a job on the server after the person confirms: Cancel (queued/running) and Delete
 * (done) are the same DELETE. `doing`/`done` word the messages ("Cancelling"/"cancelled").
 */
async function removeJob(job, question, doing, done) {
  if (!job || !window.confirm(question)) return;
  try {
    await api.deleteJob(job);
  } catch (err) {
    showMessage(
      err.status === 401
        ? `${doing} needs this server's API token: enter it at the top, then try again.`
        : `The analysis could not be ${done}: ${err.message}`,
    );
    if (err.status === 401) $("token-box").hidden = false;
    return;
  }
  if (state.stopWatching) state.stopWatching();
  store.forget(job.id);
  state.files.delete(job.id);
  go("/");
  showUpload();
  showMessage(`The analysis of ${job.filename || job.id} was ${done}.`, "info");
}

function cancel() {
  const job = state.following;
  const name = job && (job.filename || job.id);
  removeJob(job, `Stop analysing ${name} and delete it from the server?`, "Cancelling", "cancelled");
}

function failed(job) {
  store.remember({ id: job.id, status: "failed" });
  showUpload();
  const why = job.error ? job.error.message : "The analysis failed.";
  showMessage(`The analysis of ${job.filename || "the track"} failed: ${why}`);
}

async function finish(job) {
  let analysis;
  try {
    analysis = await api.getAnalysis(job);
  } catch (err) {
    showMessage(`The result could not be loaded: ${err.message}`);
    return;
  }
  // Let the full bar be seen for a moment: it is the answer to "did it finish?".
  await new Promise((r) => setTimeout(r, 300));
  if (window.location.pathname !== `/a/${encodeURIComponent(job.id)}`) return; // user moved on
  showResult(job, analysis);
}

// ---------------------------------------------------------------- result view

function stopResult() {
  const r = state.result;
  if (!r) return;
  r.audio.pause();
  if (r.objectUrl) URL.revokeObjectURL(r.objectUrl);
  r.audio.removeAttribute("src");
  r.audio.load();
  state.result = null;
}

function summaryItem(term, value, detail) {
  const div = document.createElement("div");
  const dt = document.createElement("dt");
  dt.textContent = term;
  const dd = document.createElement("dd");
  dd.textContent = value;
  if (detail) {
    const small = document.createElement("small");
    small.textContent = detail;
    dd.append(small);
  }
  div.append(dt, dd);
  return div;
}

function renderSummary(model) {
  const t = model.track;
  const fb = model.fb;
  const conf = (c) => (Number.isFinite(c) ? `confidence ${percent(c)}` : "");
  const key = fb.key_name ? `${fb.key_name} ${fb.mode_name || ""}`.trim() : keyName(t.key, t.mode);
  const items = [
    summaryItem("Tempo", t.tempo ? `${t.tempo.toFixed(1)} BPM` : "no pulse", conf(t.tempo_confidence)),
    summaryItem("Time signature", `${t.time_signature}/4`, conf(t.time_signature_confidence)),
    summaryItem("Key", key, t.key >= 0 ? conf(t.key_confidence) : ""),
    summaryItem("Loudness", `${Number(t.loudness).toFixed(1)} dB`, ""),
    summaryItem("Duration", formatTime(model.duration), ""),
    summaryItem(
      "Counts",
      `${model.beats.length} beats`,
      `${model.bars.length} bars · ${model.sections.length} sections · ${model.segments.count} segments`,
    ),
  ];
  $("summary").replaceChildren(...items);
  const notes = [];
  if (fb.reduced)
    notes.push("Reduced analysis (rhythm and loudness only): the track was too heavy for a full one.");
  for (const [stage, why] of Object.entries(fb.missing || {})) notes.push(`Missing ${stage}: ${why}`);
  $("result-note").textContent = notes.join(" ");
  $("result-note").hidden = notes.length === 0;
}

function baseName(name) {
  return (name || "analysis").replace(/\.[^.]+$/, "") || "analysis";
}

function renderDownloads(job) {
  const base = baseName(job.filename);
  for (const [fmt, ext] of [
    ["spotify", "json"],
    ["beats", "beats"],
    ["jams", "jams"],
  ]) {
    const a = $(`dl-${fmt}`);
    a.href = api.formatLink(job, fmt);
    a.setAttribute("download", `${base}.${ext}`);
  }
  $("share-link").value = new URL(`/a/${encodeURIComponent(job.id)}`, window.location.href).href;
}

const MIN_SPAN = 2; // seconds: closer than this, beats are wider than the screen anyway

function clampView(view, duration) {
  const span = Math.max(Math.min(MIN_SPAN, duration), Math.min(duration, view.span));
  const start = Math.max(0, Math.min(duration - span, view.start));
  return { start, span };
}

function redraw() {
  const r = state.result;
  if (!r) return;
  r.theme = readTheme(document.body);
  r.visualizer.theme = r.theme;
  drawTrack($("track-canvas"), r.model, r.view, r.theme);
  drawOverview($("overview-canvas"), r.model, r.view, r.theme);
  const ov = $("overview-canvas");
  ov.setAttribute(
    "aria-valuenow",
    String(Math.round((r.view.start / Math.max(1e-6, r.model.duration)) * 100)),
  );
  ov.setAttribute(
    "aria-valuetext",
    `${formatTime(r.view.start)} to ${formatTime(r.view.start + r.view.span)}`,
  );
  tick();
}

function zoom(factor, anchorTime = null) {
  const r = state.result;
  if (!r) return;
  const anchor = anchorTime ?? (r.audio.paused ? r.view.start + r.view.span / 2 : r.audio.currentTime);
  const frac = (anchor - r.view.start) / r.view.span;
  const span = r.view.span * factor;
  r.view = clampView({ start: anchor - frac * span, span }, r.model.duration);
  redraw();
}

function scrollTo(start) {
  const r = state.result;
  r.view = clampView({ start, span: r.view.span }, r.model.duration);
  redraw();
}

function seek(t) {
  const r = state.result;
  if (!r) return;
  const d = r.model.duration;
  const target = Math.max(0, Math.min(d, t));
  if (r.audio.readyState > 0) r.audio.currentTime = target;
  r.pendingTime = target;
  tick();
}

function currentTime() {
  const r = state.result;
  return r.audio.readyState > 0 ? r.audio.currentTime : r.pendingTime || 0;
}

// One frame: cursor, time readout, visualizer. Runs every animation frame while playing.
function tick() {
  const r = state.result;
  if (!r) return;
  const t = currentTime();
  const { start, span } = r.view;
  // Follow the playhead a page at a time, as DAWs do, so the drawing is not constantly moving.
  if (!r.audio.paused && (t > start + span || t < start)) {
    r.view = clampView({ start: t - span * 0.05, span }, r.model.duration);
    drawTrack($("track-canvas"), r.model, r.view, r.theme);
    drawOverview($("overview-canvas"), r.model, r.view, r.theme);
  }
  const canvas = $("track-canvas");
  const x = ((t - r.view.start) / r.view.span) * canvas.clientWidth;
  const cursor = $("cursor");
  cursor.hidden = x < 0 || x > canvas.clientWidth;
  cursor.style.transform = `translateX(${x}px)`;
  $("time-now").textContent = formatTime(t);
  const m = r.visualizer.render(t);
  $("beat-readout").textContent = m.barNumber > 0 ? `bar ${m.barNumber}, beat ${m.position || "–"}` : "";
}

function loop() {
  const r = state.result;
  if (!r || r.audio.paused) {
    if (r) r.raf = null;
    return;
  }
  tick();
  r.raf = requestAnimationFrame(loop);
}

function setPlayIcon(playing) {
  $("play").setAttribute("aria-label", playing ? "Pause" : "Play");
  $("play-icon").setAttribute("d", playing ? "M6 4h4v16H6zM14 4h4v16h-4z" : "M7 4l13 8-13 8z");
}

function useAudioSource(url, objectUrl, note) {
  const r = state.result;
  if (r.objectUrl && r.objectUrl !== objectUrl) URL.revokeObjectURL(r.objectUrl);
  r.objectUrl = objectUrl;
  r.audio.src = url;
  $("audio-note").textContent = note || "";
  $("audio-note").hidden = !note;
}

function togglePlay() {
  const r = state.result;
  if (!r || $("play").disabled) return;
  if (r.audio.paused) {
    r.audio.play().catch((err) => {
      // AbortError only means a pause() came before playback started: nothing went wrong.
      if (err.name !== "AbortError") showMessage(`The audio cannot be played here: ${err.message}`);
    });
  } else {
    r.audio.pause();
  }
}

function showResult(job, analysis) {
  stopResult();
  showMessage("");
  const model = buildModel(analysis);
  store.remember({
    id: job.id,
    filename: job.filename,
    created_at: job.created_at,
    status: "done",
    tempo: model.track.tempo,
    key: model.fb.key_name
      ? `${model.fb.key_name} ${model.fb.mode_name || ""}`.trim()
      : keyName(model.track.key, model.track.mode),
    duration: model.duration,
  });
  showView("result");
  $("result-title").textContent = job.filename || job.id;
  $("result-title").focus(); // screen readers announce the result; keys work from here
  document.title = `${job.filename || job.id} — featherbeat`;
  renderSummary(model);
  renderDownloads(job);
  $("time-total").textContent = formatTime(model.duration);
  const audio = $("audio");
  const theme = readTheme(document.body);
  state.result = {
    job,
    model,
    theme,
    audio,
    view: clampView({ start: 0, span: model.duration || 1 }, model.duration || 1),
    visualizer: new Visualizer($("visualizer"), model, theme),
    objectUrl: null,
    pendingTime: 0,
    raf: null,
  };
  // Long tracks open on the first minute; the overview shows the rest.
  if (model.duration > 600) state.result.view = clampView({ start: 0, span: 60 }, model.duration);
  $("play").disabled = true;
  const file = state.files.get(job.id);
  if (file) {
    const url = URL.createObjectURL(file);
    useAudioSource(url, url, "");
  } else if (job.links && job.links.audio) {
    useAudioSource(api.absolute(job.links.audio), null, "");
  } else {
    noAudio();
  }
  redraw();
}

function noAudio() {
  $("play").disabled = true;
  $("audio-note").textContent =
    "The server no longer keeps the audio of this track. Choose your copy of it below to play along.";
  $("audio-note").hidden = false;
}

// ---------------------------------------------------------------- routing

async function route() {
  const match = window.location.pathname.match(/^\/a\/([^/]+)$/);
  if (!match) {
    if (state.stopWatching) state.stopWatching();
    showUpload();
    return;
  }
  const id = decodeURIComponent(match[1]);
  if (state.result && state.result.job.id === id) {
    showView("result");
    return;
  }
  showView("progress");
  $("progress-name").textContent = "";
  setProgress(0, "Loading");
  try {
    follow(await api.getJob(id));
  } catch (err) {
    showUpload();
    if (err.status === 404) {
      store.forget(id);
      renderRecent();
      showMessage(
        `There is no analysis ${id} on this server (it may have been deleted). Upload the track again.`,
      );
    } else {
      showMessage(`The analysis could not be loaded: ${err.message}`);
    }
  }
}

// ---------------------------------------------------------------- wiring

function wireUpload() {
  const input = $("file");
  input.addEventListener("change", () => {
    handleFile(input.files[0]);
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
    if (file && document.body.dataset.view !== "progress") handleFile(file);
  });

  const token = $("token");
  token.value = store.getToken();
  token.addEventListener("change", () => {
    store.setToken(token.value);
    const file = state.waitingForToken;
    state.waitingForToken = null;
    if (file && token.value.trim() && document.body.dataset.view === "upload") handleFile(file);
  });
}

function wireResult() {
  const audio = $("audio");
  audio.addEventListener("loadedmetadata", () => {
    $("play").disabled = false;
    const r = state.result;
    if (r && r.pendingTime) audio.currentTime = r.pendingTime;
  });
  audio.addEventListener("play", () => {
    setPlayIcon(true);
    const r = state.result;
    if (r && !r.raf) r.raf = requestAnimationFrame(loop);
  });
  audio.addEventListener("pause", () => {
    setPlayIcon(false);
    tick();
  });
  audio.addEventListener("ended", () => setPlayIcon(false));
  audio.addEventListener("seeked", tick);
  audio.addEventListener("error", () => {
    const r = state.result;
    if (!r || !audio.getAttribute("src")) return;
    if (r.objectUrl) {
      showMessage("This browser cannot play this audio format; the analysis is still all here.");
      $("play").disabled = true;
    } else {
      noAudio();
    }
  });
  $("play").addEventListener("click", togglePlay);
  $("zoom-in").addEventListener("click", () => zoom(0.5));
  $("zoom-out").addEventListener("click", () => zoom(2));
  $("zoom-fit").addEventListener("click", () => {
    const r = state.result;
    if (!r) return;
    r.view = clampView({ start: 0, span: r.model.duration }, r.model.duration);
    redraw();
  });

  const canvas = $("track-canvas");
  const timeAtX = (clientX) => {
    const r = state.result;
    const box = canvas.getBoundingClientRect();
    return r.view.start + ((clientX - box.left) / box.width) * r.view.span;
  };
  canvas.addEventListener("click", (e) => state.result && seek(timeAtX(e.clientX)));
  // Hovering tells what is under the pointer: position in the music and the section's facts.
  const hover = $("hover");
  canvas.addEventListener("pointermove", (e) => {
    const r = state.result;
    if (!r || e.pointerType === "touch") return;
    const t = timeAtX(e.clientX);
    const m = momentAt(r.model, t);
    const lines = [
      `${formatTime(t)}${m.barNumber > 0 ? ` · bar ${m.barNumber}, beat ${m.position || "–"}` : ""}`,
    ];
    if (m.section) {
      const s = m.section.raw;
      const bits = [`section ${m.section.label}`];
      if (s.tempo) bits.push(`${Number(s.tempo).toFixed(0)} BPM`);
      if (s.key >= 0) bits.push(keyName(s.key, s.mode));
      if (Number.isFinite(s.loudness)) bits.push(`${Number(s.loudness).toFixed(1)} dB`);
      lines.push(bits.join(" · "));
    }
    hover.textContent = lines.join("\n");
    hover.hidden = false;
    const box = canvas.getBoundingClientRect();
    const x = e.clientX - box.left;
    // Keep the box on the canvas: flip to the left of the pointer near the right edge.
    const left = x + 14 + hover.offsetWidth > box.width ? x - 14 - hover.offsetWidth : x + 14;
    hover.style.transform = `translateX(${Math.max(0, left)}px)`;
  });
  canvas.addEventListener("pointerleave", () => (hover.hidden = true));
  canvas.addEventListener(
    "wheel",
    (e) => {
      const r = state.result;
      if (!r) return;
      if (e.ctrlKey || e.metaKey) {
        e.preventDefault();
        zoom(Math.exp(e.deltaY * 0.002), timeAtX(e.clientX));
      } else if (Math.abs(e.deltaX) > Math.abs(e.deltaY) || e.shiftKey) {
        // Horizontal wheels and trackpads scroll the drawing; plain vertical ones scroll the page.
        e.preventDefault();
        const d = Math.abs(e.deltaX) > Math.abs(e.deltaY) ? e.deltaX : e.deltaY;
        scrollTo(r.view.start + (d / canvas.clientWidth) * r.view.span);
      }
    },
    { passive: false },
  );

  const ov = $("overview-canvas");
  const dragTo = (clientX) => {
    const r = state.result;
    const box = ov.getBoundingClientRect();
    const t = ((clientX - box.left) / box.width) * r.model.duration;
    scrollTo(t - r.view.span / 2);
  };
  ov.addEventListener("pointerdown", (e) => {
    if (!state.result) return;
    ov.setPointerCapture(e.pointerId);
    dragTo(e.clientX);
  });
  ov.addEventListener("pointermove", (e) => {
    if (state.result && ov.hasPointerCapture(e.pointerId)) dragTo(e.clientX);
  });
  ov.addEventListener("keydown", (e) => {
    const r = state.result;
    if (!r || !["ArrowLeft", "ArrowRight"].includes(e.key)) return;
    e.preventDefault();
    e.stopPropagation();
    scrollTo(r.view.start + (e.key === "ArrowLeft" ? -0.25 : 0.25) * r.view.span);
  });

  $("copy-link").addEventListener("click", async () => {
    const input = $("share-link");
    try {
      await navigator.clipboard.writeText(input.value);
    } catch {
      input.select();
      document.execCommand("copy");
    }
    $("copy-link").textContent = "Copied";
    setTimeout(() => ($("copy-link").textContent = "Copy link"), 1500);
  });

  $("cancel").addEventListener("click", cancel);
  $("delete").addEventListener("click", () => {
    const job = state.result && state.result.job;
    const name = job && (job.filename || job.id);
    removeJob(job, `Delete the analysis of ${name} and its audio from the server?`, "Deleting", "deleted");
  });

  $("local-file").addEventListener("change", (e) => {
    const file = e.target.files[0];
    const r = state.result;
    if (!file || !r) return;
    state.files.set(r.job.id, file);
    const url = URL.createObjectURL(file);
    useAudioSource(url, url, `Playing your copy: ${file.name}`);
    showMessage("");
  });

  // Keyboard: the player's keys work anywhere except while typing or on a focused control that
  // has its own meaning for the key.
  document.addEventListener("keydown", (e) => {
    const r = state.result;
    if (!r || document.body.dataset.view !== "result") return;
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    const tag = (e.target.tagName || "").toLowerCase();
    if (["input", "textarea", "select"].includes(tag)) return;
    if (e.key === " " && !["button", "a"].includes(tag)) {
      e.preventDefault();
      togglePlay();
    } else if (e.key === "ArrowLeft" || e.key === "ArrowRight") {
      e.preventDefault();
      const step = (e.shiftKey ? 30 : 5) * (e.key === "ArrowLeft" ? -1 : 1);
      const t = currentTime() + step;
      seek(t);
      if (t < r.view.start || t > r.view.start + r.view.span) scrollTo(t - r.view.span / 2);
    } else if (e.key === "+" || e.key === "=") {
      zoom(0.5);
    } else if (e.key === "-") {
      zoom(2);
    } else if (e.key === "Home") {
      e.preventDefault();
      seek(0);
      scrollTo(0);
    }
  });

  let resizeTimer = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(redraw, 100);
  });
  window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", redraw);
}

async function start() {
  wireUpload();
  wireResult();
  window.addEventListener("popstate", route);
  try {
    state.config = await api.getConfig();
    $("token-box").hidden = !state.config.auth_required;
    if (state.config.max_upload_bytes) {
      $("limits").textContent =
        `MP3, WAV, FLAC, OGG, Opus, M4A/AAC · up to ${formatBytes(state.config.max_upload_bytes)}` +
        (state.config.max_duration_seconds ? ` and ${formatTime(state.config.max_duration_seconds)}` : "");
    }
  } catch (err) {
    // The page still works without the limits; the server checks them anyway.
    showMessage(
      `The server's settings could not be read (${err.message}). Uploads may still work.`,
      "warning",
    );
  }
  await route();
  document.body.dataset.ready = "1";
}

start();

// For the console and for tests: the loaded result's model and moment helper.
window.featherbeat = { state, momentAt };
