// The result view: the summary, the drawing of the track (zoom, scroll, hover), the
// visualizer, the downloads and the share link. Playback is the Player's; this view asks it
// for the time and draws the moment.

import * as api from "./api.js";
import { buildModel, momentAt } from "./model.js";
import { drawOverview, drawTrack, readTheme } from "./draw.js";
import { Visualizer } from "./visualizer.js";
import { formatTime, keyConfidence, keyName, percent } from "./format.js";
import { Player } from "./player.js";
import * as store from "./store.js";
import { $, currentView, jobPath, showMessage, showView } from "./ui.js";

const MIN_SPAN = 2; // seconds: closer than this, beats are wider than the screen anyway

function clampView(view, duration) {
  const span = Math.max(Math.min(MIN_SPAN, duration), Math.min(duration, view.span));
  const start = Math.max(0, Math.min(duration - span, view.start));
  return { start, span };
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

function keyText(model) {
  const fb = model.fb;
  return fb.key_name ? `${fb.key_name} ${fb.mode_name || ""}`.trim() : keyName(model.track.key, model.track.mode);
}

function renderSummary(model) {
  const t = model.track;
  const fb = model.fb;
  const conf = (c) => (Number.isFinite(c) ? `confidence ${percent(c)}` : "");
  // Spotify's schema keeps time_signature within 3..7, so a track without a pulse still says 4
  // (with confidence 0); without beats there are no bars to count, and the page says so.
  const pulse = t.tempo > 0 && model.beats.length > 0;
  const items = [
    summaryItem("Tempo", pulse ? `${t.tempo.toFixed(1)} BPM` : "no pulse", conf(t.tempo_confidence)),
    pulse
      ? summaryItem("Time signature", `${t.time_signature}/4`, conf(t.time_signature_confidence))
      : summaryItem("Time signature", "none", "no beats to group into bars"),
    summaryItem("Key", keyText(model), t.key >= 0 ? keyConfidence(t.key_confidence) : "no clear pitch"),
    summaryItem("Loudness", `${Number(t.loudness).toFixed(1)} dB`, ""),
    summaryItem("Duration", formatTime(model.duration), ""),
    summaryItem(
      "Counts",
      `${model.beats.length} beats`,
      `${model.bars.length} bars · ${model.sections.length} sections · ${model.segments.count} segments`,
    ),
  ];
  $("summary").replaceChildren(...items);
  const { decode, ...missing } = fb.missing || {};
  // A file cut short is the one thing here a person must act on (get a whole copy): said as
  // a warning above the result, in words, not as a missing stage.
  const cut = decode ? decode.replace(/^input truncated: /, "").replace(/; analysed the readable part$/, "") : "";
  $("result-warning").textContent = cut
    ? `This file seems cut short (${cut}). Only the readable part was analysed.`
    : "";
  $("result-warning").hidden = !cut;
  const notes = [];
  if (fb.reduced)
    notes.push("Reduced analysis (rhythm and loudness only): the track was too heavy for a full one.");
  for (const [stage, why] of Object.entries(missing)) notes.push(`Missing ${stage}: ${why}`);
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
  $("share-link").value = new URL(jobPath(job.id), window.location.href).href;
}

export class ResultView {
  /**
   * hooks.onDelete(job): the person asked to delete it from the server.
   * hooks.onLocalFile(job, file): they chose their own copy (kept for the next showing).
   */
  constructor(hooks) {
    this.hooks = hooks;
    this.job = null;
    this.model = null;
    this.theme = null;
    this.view = null; // {start, span} in seconds: the visible part of the track
    this.visualizer = null;
    this.player = new Player($("audio"), { onFrame: () => this.tick() });
  }

  /** The job shown, or null. */
  get shownId() {
    return this.job ? this.job.id : null;
  }

  stop() {
    if (!this.job) return;
    this.player.stop();
    this.job = null;
    this.model = null;
  }

  /** Show a finished job; `file` is the person's own File of it when the page has one. */
  show(job, analysis, file) {
    this.stop();
    showMessage("");
    const model = buildModel(analysis);
    store.remember({
      id: job.id,
      filename: job.filename,
      created_at: job.created_at,
      status: "done",
      tempo: model.track.tempo,
      key: keyText(model),
      duration: model.duration,
    });
    showView("result");
    $("result-title").textContent = job.filename || job.id;
    $("result-title").focus(); // screen readers announce the result; keys work from here
    document.title = `${job.filename || job.id} — featherbeat`;
    renderSummary(model);
    renderDownloads(job);
    $("time-total").textContent = formatTime(model.duration);
    this.job = job;
    this.model = model;
    this.theme = readTheme(document.body);
    this.view = clampView({ start: 0, span: model.duration || 1 }, model.duration || 1);
    this.visualizer = new Visualizer($("visualizer"), model, this.theme);
    // Long tracks open on the first minute; the overview shows the rest.
    if (model.duration > 600) this.view = clampView({ start: 0, span: 60 }, model.duration);
    this.player.start(model.duration);
    if (file) this.player.useFile(file);
    else if (job.links && job.links.audio) this.player.useSource(api.absolute(job.links.audio), null, "");
    else this.player.noAudio();
    this.redraw();
  }

  redraw() {
    if (!this.job) return;
    this.theme = readTheme(document.body);
    this.visualizer.theme = this.theme;
    this.drawAll();
    const ov = $("overview-canvas");
    ov.setAttribute(
      "aria-valuenow",
      String(Math.round((this.view.start / Math.max(1e-6, this.model.duration)) * 100)),
    );
    ov.setAttribute(
      "aria-valuetext",
      `${formatTime(this.view.start)} to ${formatTime(this.view.start + this.view.span)}`,
    );
    this.tick();
  }

  drawAll() {
    drawTrack($("track-canvas"), this.model, this.view, this.theme);
    drawOverview($("overview-canvas"), this.model, this.view, this.theme);
  }

  zoom(factor, anchorTime = null) {
    if (!this.job) return;
    const v = this.view;
    const anchor = anchorTime ?? (this.player.paused ? v.start + v.span / 2 : this.player.currentTime());
    const frac = (anchor - v.start) / v.span;
    const span = v.span * factor;
    this.view = clampView({ start: anchor - frac * span, span }, this.model.duration);
    this.redraw();
  }

  scrollTo(start) {
    this.view = clampView({ start, span: this.view.span }, this.model.duration);
    this.redraw();
  }

  // One frame: cursor, time readout, visualizer. Runs every animation frame while playing.
  tick() {
    if (!this.job) return;
    const t = this.player.currentTime();
    const { start, span } = this.view;
    // Follow the playhead a page at a time, as DAWs do, so the drawing is not constantly moving.
    if (!this.player.paused && (t > start + span || t < start)) {
      this.view = clampView({ start: t - span * 0.05, span }, this.model.duration);
      this.drawAll();
    }
    const canvas = $("track-canvas");
    const x = ((t - this.view.start) / this.view.span) * canvas.clientWidth;
    const cursor = $("cursor");
    cursor.hidden = x < 0 || x > canvas.clientWidth;
    cursor.style.transform = `translateX(${x}px)`;
    $("time-now").textContent = formatTime(t);
    const m = this.visualizer.render(t, !this.player.paused);
    $("beat-readout").textContent = m.barNumber > 0 ? `bar ${m.barNumber}, beat ${m.position || "–"}` : "";
  }

  hoverText(t) {
    const m = momentAt(this.model, t);
    const lines = [`${formatTime(t)}${m.barNumber > 0 ? ` · bar ${m.barNumber}, beat ${m.position || "–"}` : ""}`];
    if (m.section) {
      const s = m.section.raw;
      const bits = [`section ${m.section.label}`];
      if (s.tempo) bits.push(`${Number(s.tempo).toFixed(0)} BPM`);
      if (s.key >= 0) bits.push(keyName(s.key, s.mode));
      if (Number.isFinite(s.loudness)) bits.push(`${Number(s.loudness).toFixed(1)} dB`);
      lines.push(bits.join(" · "));
    }
    return lines.join("\n");
  }

  wireTrack() {
    const canvas = $("track-canvas");
    const timeAtX = (clientX) => {
      const box = canvas.getBoundingClientRect();
      return this.view.start + ((clientX - box.left) / box.width) * this.view.span;
    };
    canvas.addEventListener("click", (e) => this.job && this.player.seek(timeAtX(e.clientX)));
    // Hovering tells what is under the pointer: position in the music and the section's facts.
    const hover = $("hover");
    canvas.addEventListener("pointermove", (e) => {
      if (!this.job || e.pointerType === "touch") return;
      hover.textContent = this.hoverText(timeAtX(e.clientX));
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
        if (!this.job) return;
        if (e.ctrlKey || e.metaKey) {
          e.preventDefault();
          this.zoom(Math.exp(e.deltaY * 0.002), timeAtX(e.clientX));
        } else if (Math.abs(e.deltaX) > Math.abs(e.deltaY) || e.shiftKey) {
          // Horizontal wheels and trackpads scroll the drawing; plain vertical ones scroll the page.
          e.preventDefault();
          const d = Math.abs(e.deltaX) > Math.abs(e.deltaY) ? e.deltaX : e.deltaY;
          this.scrollTo(this.view.start + (d / canvas.clientWidth) * this.view.span);
        }
      },
      { passive: false },
    );

    const ov = $("overview-canvas");
    const dragTo = (clientX) => {
      const box = ov.getBoundingClientRect();
      const t = ((clientX - box.left) / box.width) * this.model.duration;
      this.scrollTo(t - this.view.span / 2);
    };
    ov.addEventListener("pointerdown", (e) => {
      if (!this.job) return;
      ov.setPointerCapture(e.pointerId);
      dragTo(e.clientX);
    });
    ov.addEventListener("pointermove", (e) => {
      if (this.job && ov.hasPointerCapture(e.pointerId)) dragTo(e.clientX);
    });
    ov.addEventListener("keydown", (e) => {
      if (!this.job || !["ArrowLeft", "ArrowRight"].includes(e.key)) return;
      e.preventDefault();
      e.stopPropagation();
      this.scrollTo(this.view.start + (e.key === "ArrowLeft" ? -0.25 : 0.25) * this.view.span);
    });
  }

  // Keyboard: the player's keys work anywhere except while typing or on a focused control that
  // has its own meaning for the key.
  onKey(e) {
    if (!this.job || currentView() !== "result") return;
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    const tag = (e.target.tagName || "").toLowerCase();
    if (["input", "textarea", "select"].includes(tag)) return;
    if (e.key === " " && !["button", "a"].includes(tag)) {
      e.preventDefault();
      this.player.toggle();
    } else if (e.key === "ArrowLeft" || e.key === "ArrowRight") {
      e.preventDefault();
      const step = (e.shiftKey ? 30 : 5) * (e.key === "ArrowLeft" ? -1 : 1);
      const t = this.player.currentTime() + step;
      this.player.seek(t);
      if (t < this.view.start || t > this.view.start + this.view.span) this.scrollTo(t - this.view.span / 2);
    } else if (e.key === "+" || e.key === "=") {
      this.zoom(0.5);
    } else if (e.key === "-") {
      this.zoom(2);
    } else if (e.key === "Home") {
      e.preventDefault();
      this.player.seek(0);
      this.scrollTo(0);
    }
  }

  wire() {
    this.player.wire();
    this.wireTrack();
    $("zoom-in").addEventListener("click", () => this.zoom(0.5));
    $("zoom-out").addEventListener("click", () => this.zoom(2));
    $("zoom-fit").addEventListener("click", () => {
      if (!this.job) return;
      this.view = clampView({ start: 0, span: this.model.duration }, this.model.duration);
      this.redraw();
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
    $("delete").addEventListener("click", () => this.job && this.hooks.onDelete(this.job));
    $("local-file").addEventListener("change", (e) => {
      const file = e.target.files[0];
      if (!file || !this.job) return;
      this.hooks.onLocalFile(this.job, file);
      this.player.useFile(file, `Playing your copy: ${file.name}`);
      showMessage("");
    });
    document.addEventListener("keydown", (e) => this.onKey(e));
    let resizeTimer = null;
    window.addEventListener("resize", () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => this.redraw(), 100);
    });
    window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => this.redraw());
  }
}
