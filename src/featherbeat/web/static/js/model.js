// The analysis JSON (Spotify's keys + our "featherbeat" extras, docs/formats.md) turned into
// compact typed arrays the drawing code can binary-search. Pure functions, no DOM.

const f32 = (xs) => Float32Array.from(xs || [], Number);
const f64 = (xs) => Float64Array.from(xs || [], Number);

/** Centred moving average over `width` samples (prefix sums: O(n) for any width). */
export function smooth(values, width) {
  const n = values.length;
  const half = Math.max(0, Math.floor(width / 2));
  if (half === 0 || n === 0) return values;
  const prefix = new Float64Array(n + 1);
  for (let i = 0; i < n; i++) prefix[i + 1] = prefix[i] + values[i];
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const a = Math.max(0, i - half);
    const b = Math.min(n, i + half + 1);
    out[i] = (prefix[b] - prefix[a]) / (b - a);
  }
  return out;
}

// Frame-level loudness and energy flicker from frame to frame; a quarter-second average
// shows the shape a listener hears (the raw values stay in the downloads).
function curve(c) {
  if (!c || !(Number(c.rate) > 0)) return null;
  const rate = Number(c.rate);
  return { rate, values: smooth(f32(c.values), Math.round(rate * 0.25)) };
}

/** Index of the last element <= t in a sorted array (-1 when t is before the first). */
export function lastAtOrBefore(sorted, t) {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid] <= t) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}

/** Section labels share a colour when they share a letter ("A" and "A'" look alike). */
export function labelHue(label, index) {
  const letter = (label || "").trim().charAt(0).toUpperCase();
  const n = letter >= "A" && letter <= "Z" ? letter.charCodeAt(0) - 65 : index;
  // Golden-angle steps keep neighbouring letters far apart on the colour wheel.
  return (200 + n * 137.508) % 360;
}

export function buildModel(a) {
  const fb = a.featherbeat || {};
  const track = a.track || {};
  const beats = f64((a.beats || []).map((b) => b.start));
  const positions = Int16Array.from(
    fb.beat_positions && fb.beat_positions.length === beats.length ? fb.beat_positions : [],
  );
  // Downbeats: ours when present, else Spotify's bar starts.
  const downbeats = f64(fb.downbeats || (a.bars || []).map((b) => b.start));
  const bars = f64((a.bars || []).map((b) => b.start));
  // Per beat: is it a downbeat? From beat_positions, else by matching the downbeat times.
  const downMs = new Set(Array.from(downbeats, (t) => Math.round(t * 1000)));
  const isDownbeat = Uint8Array.from(beats, (t, i) =>
    positions.length ? positions[i] === 1 : downMs.has(Math.round(t * 1000)),
  );
  const labels = fb.section_labels || [];
  const sections = (a.sections || []).map((s, i) => {
    const label = labels[i] || String.fromCharCode(65 + (i % 26));
    return { start: s.start, end: s.start + s.duration, label, hue: labelHue(label, i), raw: s };
  });
  const segs = a.segments || [];
  const segStart = f64(segs.map((s) => s.start));
  const segEnd = f64(segs.map((s) => s.start + s.duration));
  const segLoud = f32(segs.map((s) => s.loudness_max));
  const pitches = new Float32Array(segs.length * 12);
  segs.forEach((s, i) => (s.pitches || []).slice(0, 12).forEach((p, k) => (pitches[i * 12 + k] = p)));
  const wf = fb.waveform || {};
  const duration = Number(track.duration) || Math.max(beats.at(-1) || 0, segEnd.at(-1) || 0);
  return {
    duration,
    track,
    fb,
    beats,
    positions,
    isDownbeat,
    downbeats,
    bars,
    tatums: f64((a.tatums || []).map((t) => t.start)),
    sections,
    segments: { start: segStart, end: segEnd, loudness: segLoud, pitches, count: segs.length },
    waveform: Number(wf.rate) > 0 ? { rate: Number(wf.rate), min: f32(wf.min), max: f32(wf.max) } : null,
    loudness: curve(fb.loudness),
    energy: curve(fb.energy),
  };
}

/** Where playback is at time t, for the visualizer and the readout. */
export function momentAt(model, t) {
  const bi = lastAtOrBefore(model.beats, t);
  const beat = bi >= 0 ? model.beats[bi] : null;
  const next = bi + 1 < model.beats.length ? model.beats[bi + 1] : null;
  const position = bi >= 0 && model.positions.length ? model.positions[bi] : 0;
  const bar = lastAtOrBefore(model.downbeats, t);
  const si = model.sections.findIndex((s) => t >= s.start && t < s.end);
  const gi = lastAtOrBefore(model.segments.start, t);
  return {
    beatIndex: bi,
    sinceBeat: beat === null ? Infinity : t - beat,
    beatLength: beat !== null && next !== null ? next - beat : 60 / (model.track.tempo || 120),
    position,
    barNumber: bar + 1,
    section: si >= 0 ? model.sections[si] : null,
    sectionIndex: si,
    segmentIndex: gi,
  };
}
