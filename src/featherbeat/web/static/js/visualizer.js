// A beat-synced visualizer of the kind people built on Spotify's analysis: a disc that pulses
// on every beat, flashes a ring on downbeats, petals from the current segment's pitches, and
// a colour that follows the sections. It reads only the analysis and audio.currentTime.

import { momentAt } from "./model.js";
import { fitCanvas, pitchContrast } from "./draw.js";
import { formatTime } from "./format.js";

export const VISUALIZER_HEIGHT = 220;

export class Visualizer {
  constructor(canvas, model, theme) {
    this.canvas = canvas;
    this.model = model;
    this.theme = theme;
    this.beatsPerBar = Math.max(1, Math.min(12, Number(model.track.time_signature) || 4));
  }

  /**
   * Draw the frame for time t (seconds). Cheap enough for every animation frame. While not
   * `playing` the frame is the moment the playhead is at, and says so (a still disc alone
   * reads as decoration).
   */
  render(t, playing = false) {
    const { ctx, width, height } = fitCanvas(this.canvas, VISUALIZER_HEIGHT);
    const m = momentAt(this.model, t);
    const hue = m.section ? m.section.hue : 220;
    const dark = this.theme.dark;
    // Pulse decays over about a quarter of a beat: sharp attack, like a kick.
    const decay = Math.max(0.05, m.beatLength * 0.25);
    const pulse = Number.isFinite(m.sinceBeat) ? Math.exp(-m.sinceBeat / decay) : 0;
    const isDown = m.position === 1;
    const accent = isDown ? 1 : 0.55;

    const bg = ctx.createRadialGradient(
      width / 2,
      height / 2,
      10,
      width / 2,
      height / 2,
      Math.max(width, height) * 0.7,
    );
    bg.addColorStop(0, `hsl(${hue}, 60%, ${dark ? 16 + 10 * pulse * accent : 88 - 8 * pulse * accent}%)`);
    bg.addColorStop(1, `hsl(${hue}, 40%, ${dark ? 7 : 97}%)`);
    ctx.fillStyle = bg;
    ctx.fillRect(0, 0, width, height);

    const cx = width / 2;
    const cy = height / 2 - 8;
    const base = Math.min(width, height) * 0.16;
    const r = base * (1 + 0.45 * pulse * accent);

    // Petals: the 12 pitch classes of the segment sounding now, scaled by its loudness.
    const seg = this.model.segments;
    // Before the first segment starts, show the first one rather than an empty disc.
    const si = Math.max(0, m.segmentIndex);
    if (si < seg.count) {
      const loud = Math.max(0, Math.min(1, (seg.loudness[si] + 40) / 40));
      // A flat pitch vector (noise, a constant level) has no pitch: short, faint petals.
      const contrast = pitchContrast(seg.pitches, si);
      for (let k = 0; k < 12; k++) {
        const p = seg.pitches[si * 12 + k] * contrast;
        const ang = -Math.PI / 2 + (k / 12) * Math.PI * 2;
        const len = r + 6 + p * base * 1.3 * (0.4 + 0.6 * loud);
        ctx.strokeStyle = `hsla(${(hue + k * 30) % 360}, 80%, ${dark ? 65 : 45}%, ${0.35 + 0.65 * p})`;
        ctx.lineWidth = Math.max(3, base * 0.22);
        ctx.lineCap = "round";
        ctx.beginPath();
        ctx.moveTo(cx + Math.cos(ang) * (r + 4), cy + Math.sin(ang) * (r + 4));
        ctx.lineTo(cx + Math.cos(ang) * len, cy + Math.sin(ang) * len);
        ctx.stroke();
      }
    }

    // Downbeat: an expanding ring that fades over the first half of the beat.
    if (isDown && m.sinceBeat < m.beatLength) {
      const q = m.sinceBeat / m.beatLength;
      ctx.strokeStyle = `hsla(${hue}, 90%, ${dark ? 75 : 40}%, ${1 - q})`;
      ctx.lineWidth = 4;
      ctx.beginPath();
      ctx.arc(cx, cy, r + 10 + q * base * 1.8, 0, Math.PI * 2);
      ctx.stroke();
    }

    ctx.fillStyle = `hsl(${hue}, 85%, ${dark ? 55 + 20 * pulse : 50 - 12 * pulse}%)`;
    ctx.beginPath();
    ctx.arc(cx, cy, r, 0, Math.PI * 2);
    ctx.fill();

    // Position in the bar: one dot per beat, the current one lit (none without beats).
    const dots = this.model.beats.length ? this.beatsPerBar : 0;
    const gap = 16;
    for (let i = 0; i < dots; i++) {
      const on = m.position === i + 1;
      ctx.fillStyle = on ? `hsl(${hue}, 85%, ${dark ? 70 : 40}%)` : this.theme.grid;
      ctx.beginPath();
      ctx.arc(cx + (i - (dots - 1) / 2) * gap, height - 16, on ? 5 : 3.5, 0, Math.PI * 2);
      ctx.fill();
    }

    ctx.fillStyle = this.theme.fg;
    ctx.font = "600 14px system-ui, sans-serif";
    ctx.textBaseline = "top";
    if (m.section) ctx.fillText(`Section ${m.section.label}`, 12, 10);
    ctx.font = "12px system-ui, sans-serif";
    ctx.fillStyle = this.theme.muted;
    if (m.barNumber > 0) ctx.fillText(`bar ${m.barNumber} · beat ${m.position || "–"}`, 12, 30);
    else if (!this.model.beats.length) ctx.fillText("no steady pulse: nothing to pulse with", 12, 30);
    if (!playing) {
      ctx.textAlign = "right";
      ctx.fillStyle = this.theme.fg;
      ctx.font = "600 13px system-ui, sans-serif";
      ctx.fillText(`❚❚ paused at ${formatTime(t)}`, width - 12, 10);
      ctx.font = "12px system-ui, sans-serif";
      ctx.fillStyle = this.theme.muted;
      ctx.fillText("press play (or Space) to see it move with the music", width - 12, 28);
      ctx.textAlign = "left";
    }

    // Published for tests and assistive tools: what the frame shows.
    const ds = this.canvas.dataset;
    ds.beat = String(m.beatIndex);
    ds.bar = String(m.barNumber);
    ds.position = String(m.position);
    ds.section = m.section ? m.section.label : "";
    ds.playing = playing ? "1" : "0";
    return m;
  }
}
