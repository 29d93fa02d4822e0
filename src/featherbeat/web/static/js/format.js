// Small pure formatting helpers shared by the views.

/** "3:07" or "1:02:03" for seconds; "–" for unknown. */
export function formatTime(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return "–";
  const s = Math.floor(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

/**
 * "4.2 MB" in units of 1024, as the server counts its FEATHERBEAT_MAX_UPLOAD_MB: a 100 MB
 * limit must read "100 MB" here too, not "105 MB".
 */
export function formatBytes(bytes) {
  if (!Number.isFinite(bytes)) return "–";
  const units = ["B", "kB", "MB", "GB"];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u += 1;
  }
  return `${v >= 100 || u === 0 ? Math.round(v) : v.toFixed(1)} ${units[u]}`;
}

export function percent(x) {
  return `${Math.round(Math.max(0, Math.min(1, x)) * 100)} %`;
}

export const PITCH_NAMES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"];

export function keyName(key, mode) {
  if (!(key >= 0 && key < 12)) return "unknown";
  const m = mode === 1 ? "major" : mode === 0 ? "minor" : "";
  return `${PITCH_NAMES[key]} ${m}`.trim();
}

/**
 * The key card's confidence, in words that match what it has been measured to mean on the
 * labelled dev clips (docs/benchmarks/key.md, bench/key.py's bands): at or above 0.7 the key
 * was exactly right 9 times in 10, from 0.5 about half the time, below that less often
 * (and then mostly a close key: the fifth, the relative or the parallel).
 */
export function keyConfidence(c) {
  if (!Number.isFinite(c)) return "";
  const word = c >= 0.7 ? "clear" : c >= 0.5 ? "probable" : "uncertain, may be a related key";
  return `confidence ${percent(c)} · ${word}`;
}

/** "5 minutes ago" style, for the recent list. */
export function timeAgo(iso, now = Date.now()) {
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return "";
  const s = Math.max(0, (now - t) / 1000);
  if (s < 60) return "just now";
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return new Date(t).toLocaleDateString();
}
