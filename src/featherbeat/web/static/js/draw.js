// The track drawn on a Canvas 2D: sections, bar numbers, beat ticks, waveform (from the
// server's peaks: the page never decodes audio to draw), loudness/energy and a pitch strip.
// Only the visible time range [view.start, view.start + view.span] is drawn, so zooming into
// an hour-long track costs the same as a short one.

import { lastAtOrBefore } from "./model.js";
import { formatTime } from "./format.js";

/** Lanes in CSS pixels, top to bottom. Published on the canvas (data-lanes) for tests and tools. */
export const LANES = {
  sections: [0, 24],
  bars: [24, 40],
  beats: [40, 58],
  waveform: [60, 170],
  curves: [174, 224],
  pitch: [228, 288],
  axis: [288, 304],
};
export const TRACK_HEIGHT = LANES.axis[1];

/** Colours come from CSS custom properties so light and dark themes need no JS. */
export function readTheme(el) {
  const css = getComputedStyle(el);
  const v = (name) => css.getPropertyValue(name).trim();
  return {
    bg: v("--canvas-bg"),
    fg: v("--fg"),
    muted: v("--muted"),
    grid: v("--grid"),
    wave: v("--wave"),
    beat: v("--beat"),
    downbeat: v("--downbeat"),
    loud: v("--loud"),
    energy: v("--energy"),
    pitch: v("--pitch"),
    dark: v("--is-dark") === "1",
  };
}

export function sectionColour(hue, theme, alpha = 1) {
  return theme.dark ? `hsla(${hue}, 55%, 42%, ${alpha})` : `hsla(${hue}, 70%, 72%, ${alpha})`;
}

/** Size the backing store to the CSS box times devicePixelRatio; returns the CSS size. */
export function fitCanvas(canvas, cssHeight) {
  const dpr = window.devicePixelRatio || 1;
  const width = Math.max(1, Math.round(canvas.clientWidth));
  canvas.style.height = `${cssHeight}px`;
  if (canvas.width !== Math.round(width * dpr) || canvas.height !== Math.round(cssHeight * dpr)) {
    canvas.width = Math.round(width * dpr);
    canvas.height = Math.round(cssHeight * dpr);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  return { ctx, width, height: cssHeight };
}

// A "nice" step (1, 2, 5 × 10^n) so that labels are at least minPx apart.
function niceStep(unitsPerPx, minPx, steps) {
  const raw = unitsPerPx * minPx;
  return steps.find((s) => s >= raw) || steps.at(-1);
}
const TIME_STEPS = [0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600];

function drawSections(ctx, model, x, t0, t1, width, theme) {
  const [y0, y1] = LANES.sections;
  ctx.font = "600 12px system-ui, sans-serif";
  ctx.textBaseline = "middle";
  for (const s of model.sections) {
    if (s.end < t0 || s.start > t1) continue;
    const a = Math.max(0, x(s.start));
    const b = Math.min(width, x(s.end));
    ctx.fillStyle = sectionColour(s.hue, theme);
    ctx.fillRect(a, y0, Math.max(1, b - a - 1), y1 - y0 - 2);
    // The same colour, faint, behind the waveform ties the regions to what they contain.
    ctx.fillStyle = sectionColour(s.hue, theme, theme.dark ? 0.16 : 0.22);
    ctx.fillRect(a, LANES.waveform[0], Math.max(1, b - a - 1), LANES.pitch[0] - LANES.waveform[0]);
    if (b - a > 18) {
      ctx.fillStyle = theme.fg;
      ctx.fillText(s.label, a + 5, (y0 + y1 - 2) / 2, b - a - 8);
    }
  }
}

// Every k-th bar gets a number (and, when bars are only pixels wide, a tick) so that marks
// stay about minPx apart whatever the zoom.
function barStride(model, pxPerSec, minPx) {
  const d = model.downbeats;
  const barLen = d.length > 1 ? (d.at(-1) - d[0]) / (d.length - 1) : 2;
  return [1, 2, 4, 8, 16, 32, 64, 128, 256].find((s) => s * barLen * pxPerSec >= minPx) || 512;
}

function drawBeats(ctx, model, x, t0, t1, pxPerSec, theme) {
  const [y0, y1] = LANES.beats;
  const d = model.downbeats;
  const stride = barStride(model, pxPerSec, 5);
  const downSet = new Set();
  for (let i = Math.max(0, lastAtOrBefore(d, t0)); i < d.length && d[i] <= t1; i++) {
    if (i % stride === 0) downSet.add(Math.round(d[i] * 1000));
  }
  // Downbeats: full height, strong colour, and a faint line down through the waveform.
  ctx.fillStyle = theme.grid;
  for (const ms of downSet)
    ctx.fillRect(Math.round(x(ms / 1000)), LANES.waveform[0], 1, LANES.waveform[1] - LANES.waveform[0]);
  ctx.fillStyle = theme.downbeat;
  for (const ms of downSet) ctx.fillRect(Math.round(x(ms / 1000)) - 1, y0, 2, y1 - y0);
  // Other beats only while they are at least 3 px apart; closer ticks would be a grey smear.
  if (pxPerSec * (60 / (model.track.tempo || 120)) < 3) return;
  ctx.fillStyle = theme.beat;
  for (let i = Math.max(0, lastAtOrBefore(model.beats, t0)); i < model.beats.length; i++) {
    const t = model.beats[i];
    if (t > t1) break;
    if (model.isDownbeat[i]) continue;
    ctx.fillRect(Math.round(x(t)), y0 + (y1 - y0) * 0.45, 1, (y1 - y0) * 0.55);
  }
}

function drawBarNumbers(ctx, model, x, t0, t1, pxPerSec, theme) {
  const [y0, y1] = LANES.bars;
  const d = model.downbeats;
  if (!d.length) return;
  const k = barStride(model, pxPerSec, 32);
  ctx.font = "11px system-ui, sans-serif";
  ctx.textBaseline = "middle";
  ctx.fillStyle = theme.muted;
  for (let i = Math.max(0, lastAtOrBefore(d, t0)); i < d.length; i++) {
    if (d[i] > t1) break;
    if (i % k !== 0) continue; // 1, 1+k, 1+2k…: bar 1 is always numbered
    ctx.fillText(String(i + 1), x(d[i]) + 2, (y0 + y1) / 2);
  }
}

/**
 * How pitched segment i is, 0..1: one minus its weakest class, squared. Pitches are scaled so
 * the strongest class is 1, so a flat vector (noise, a constant level: nothing pitched) would
 * otherwise draw as twelve full-strength stripes; a chord (weak classes near 0) keeps ~1.
 */
export function pitchContrast(pitches, i) {
  let lo = 1;
  for (let k = 0; k < 12; k++) lo = Math.min(lo, pitches[i * 12 + k]);
  const c = Math.max(0, Math.min(1, 1 - lo));
  return c * c;
}

/** The track's largest absolute peak (cached): quiet masters are drawn as tall as loud ones. */
function waveformPeak(wf) {
  if (wf.peak === undefined) {
    let p = 1e-4;
    for (let i = 0; i < wf.max.length; i++) p = Math.max(p, wf.max[i], -wf.min[i]);
    wf.peak = Math.min(1, p);
  }
  return wf.peak;
}

function laneNote(ctx, lane, text, theme) {
  ctx.fillStyle = theme.muted;
  ctx.font = "italic 12px system-ui, sans-serif";
  ctx.textBaseline = "middle";
  ctx.fillText(text, 8, (LANES[lane][0] + LANES[lane][1]) / 2);
}

/**
 * True when the waveform never moves within a bucket: a constant level (a DC offset, digital
 * silence) that is no sound at all. Drawn as the flat line it is, and said in words.
 */
function isConstant(wf) {
  if (wf.constant === undefined) {
    let swing = 0;
    for (let i = 0; i < wf.max.length; i++) swing = Math.max(swing, wf.max[i] - wf.min[i]);
    wf.constant = swing < 1e-3;
  }
  return wf.constant;
}

function drawWaveform(ctx, model, t0, pxPerSec, width, theme) {
  const wf = model.waveform;
  if (!wf || !wf.max.length) return;
  const [y0, y1] = LANES.waveform;
  const mid = (y0 + y1) / 2;
  const half = (y1 - y0) / 2 - 2;
  ctx.fillStyle = theme.wave;
  const n = wf.max.length;
  const scale = 1 / waveformPeak(wf);
  for (let px = 0; px < width; px++) {
    // Every bucket that overlaps this pixel column: min of mins, max of maxes.
    const a = Math.floor((t0 + px / pxPerSec) * wf.rate);
    const b = Math.max(a + 1, Math.ceil((t0 + (px + 1) / pxPerSec) * wf.rate));
    if (a >= n || b <= 0) continue;
    let lo = 1;
    let hi = -1;
    for (let i = Math.max(0, a); i < Math.min(n, b); i++) {
      if (wf.min[i] < lo) lo = wf.min[i];
      if (wf.max[i] > hi) hi = wf.max[i];
    }
    if (hi < lo) continue;
    const top = mid - Math.min(1, hi * scale) * half;
    const bottom = mid - Math.max(-1, lo * scale) * half;
    ctx.fillRect(px, top, 1, Math.max(1, bottom - top));
  }
}

function drawCurve(ctx, c, t0, pxPerSec, width, toY, colour) {
  if (!c || !c.values.length) return;
  ctx.strokeStyle = colour;
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  const n = c.values.length;
  let started = false;
  for (let px = 0; px < width; px++) {
    const a = Math.floor((t0 + px / pxPerSec) * c.rate);
    const b = Math.max(a + 1, Math.ceil((t0 + (px + 1) / pxPerSec) * c.rate));
    if (a >= n) break;
    if (b <= 0) continue;
    // The mean over the column: frame-level curves are spiky, and a max per pixel would
    // draw that jitter as a solid band when zoomed out.
    let sum = 0;
    let count = 0;
    for (let i = Math.max(0, a); i < Math.min(n, b); i++) {
      sum += c.values[i];
      count += 1;
    }
    const y = toY(sum / Math.max(1, count));
    if (started) ctx.lineTo(px, y);
    else ctx.moveTo(px, y);
    started = true;
  }
  ctx.stroke();
}

function drawCurves(ctx, model, t0, pxPerSec, width, theme) {
  const [y0, y1] = LANES.curves;
  const h = y1 - y0;
  ctx.fillStyle = theme.grid;
  ctx.fillRect(0, y1 - 0.5, width, 1);
  // Loudness in dBFS: -60 (floor) at the bottom, 0 at the top.
  drawCurve(
    ctx,
    model.loudness,
    t0,
    pxPerSec,
    width,
    (db) => y1 - ((Math.max(-60, Math.min(0, db)) + 60) / 60) * h,
    theme.loud,
  );
  // Energy is linear RMS; scale to the track's own peak so quiet masters still show shape.
  if (model.energy) {
    let peak = 1e-9;
    for (const v of model.energy.values) peak = Math.max(peak, v);
    drawCurve(ctx, model.energy, t0, pxPerSec, width, (e) => y1 - (Math.max(0, e) / peak) * h, theme.energy);
  }
}

function drawPitch(ctx, model, x, t0, t1, theme) {
  const [y0, y1] = LANES.pitch;
  const rowH = (y1 - y0) / 12;
  const seg = model.segments;
  ctx.fillStyle = theme.pitch;
  for (let i = Math.max(0, lastAtOrBefore(seg.start, t0)); i < seg.count; i++) {
    if (seg.start[i] > t1) break;
    const a = x(seg.start[i]);
    const w = Math.max(1, x(seg.end[i]) - a);
    const contrast = pitchContrast(seg.pitches, i);
    for (let k = 0; k < 12; k++) {
      const p = seg.pitches[i * 12 + k];
      if (p < 0.05) continue;
      // Squared: the strongest classes stand out like a chromagram; times the contrast so
      // an unpitched segment stays faint.
      ctx.globalAlpha = p * p * contrast;
      ctx.fillRect(a, y1 - (k + 1) * rowH, w, rowH - 0.5);
    }
  }
  ctx.globalAlpha = 1;
}

function drawAxis(ctx, t0, t1, pxPerSec, width, theme) {
  const [y0, y1] = LANES.axis;
  const step = niceStep(1 / pxPerSec, 70, TIME_STEPS);
  ctx.fillStyle = theme.muted;
  ctx.font = "11px system-ui, sans-serif";
  ctx.textBaseline = "middle";
  for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) {
    const px = (t - t0) * pxPerSec;
    ctx.fillRect(px, y0, 1, 4);
    if (px < width - 30)
      ctx.fillText(step < 1 ? `${t.toFixed(1)}s` : formatTime(t), px + 3, (y0 + y1) / 2 + 2);
  }
}

/** Draw the visible range of the track. view = {start, span} in seconds. */
export function drawTrack(canvas, model, view, theme) {
  const { ctx, width } = fitCanvas(canvas, TRACK_HEIGHT);
  const t0 = view.start;
  const t1 = view.start + view.span;
  const pxPerSec = width / view.span;
  const x = (t) => (t - t0) * pxPerSec;
  ctx.fillStyle = theme.bg;
  ctx.fillRect(0, 0, width, TRACK_HEIGHT);
  drawSections(ctx, model, x, t0, t1, width, theme);
  drawBarNumbers(ctx, model, x, t0, t1, pxPerSec, theme);
  drawBeats(ctx, model, x, t0, t1, pxPerSec, theme);
  drawWaveform(ctx, model, t0, pxPerSec, width, theme);
  drawCurves(ctx, model, t0, pxPerSec, width, theme);
  drawPitch(ctx, model, x, t0, t1, theme);
  // Say what is missing rather than leave a lane blank (a stage can fail; see featherbeat.missing).
  if (!model.segments.count) laneNote(ctx, "pitch", "no segments in this analysis", theme);
  if (!model.waveform) laneNote(ctx, "waveform", "no waveform peaks in this analysis", theme);
  else if (isConstant(model.waveform))
    laneNote(ctx, "waveform", "a constant level all along: no sound to draw", theme);
  if (!model.sections.length) laneNote(ctx, "sections", "no sections in this analysis", theme);
  if (!model.beats.length) laneNote(ctx, "beats", "no beats found (no steady pulse)", theme);
  drawAxis(ctx, t0, t1, pxPerSec, width, theme);
  canvas.dataset.lanes = JSON.stringify(LANES);
  canvas.dataset.view = JSON.stringify({ start: t0, span: view.span, width });
}

export const OVERVIEW_HEIGHT = 36;

/** The whole track, small, with the visible window outlined: the scroll bar of the drawing. */
export function drawOverview(canvas, model, view, theme) {
  const { ctx, width, height } = fitCanvas(canvas, OVERVIEW_HEIGHT);
  const pxPerSec = width / Math.max(1e-6, model.duration);
  ctx.fillStyle = theme.bg;
  ctx.fillRect(0, 0, width, height);
  for (const s of model.sections) {
    ctx.fillStyle = sectionColour(s.hue, theme, 0.7);
    ctx.fillRect(s.start * pxPerSec, 0, (s.end - s.start) * pxPerSec, height);
  }
  const wf = model.waveform;
  if (wf && wf.max.length) {
    ctx.fillStyle = theme.wave;
    const per = wf.rate / pxPerSec;
    const scale = 1 / waveformPeak(wf);
    const half = height / 2 - 2;
    for (let px = 0; px < width; px++) {
      // From the lowest to the highest sample, as the main lane draws it: a constant level
      // is then the flat line it is, not a solid bar of its absolute value.
      let lo = 1;
      let hi = -1;
      for (let i = Math.floor(px * per); i < Math.min(wf.max.length, Math.floor((px + 1) * per) + 1); i++) {
        lo = Math.min(lo, wf.min[i]);
        hi = Math.max(hi, wf.max[i]);
      }
      if (hi < lo) continue;
      const top = height / 2 - Math.min(1, hi * scale) * half;
      const bottom = height / 2 - Math.max(-1, lo * scale) * half;
      ctx.fillRect(px, top, 1, Math.max(1, bottom - top));
    }
  }
  const a = view.start * pxPerSec;
  const w = Math.max(4, view.span * pxPerSec);
  ctx.strokeStyle = theme.fg;
  ctx.lineWidth = 2;
  ctx.strokeRect(a + 1, 1, w - 2, height - 2);
}
