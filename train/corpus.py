"""Training corpus for the learned rhythm model: procedural music with exact beat labels.

Every example is made here from a seed, so `make train` rebuilds the same corpus:

1. A score (numpy RNG): meter (4/4, 3/4, 6/8, 12/8, 5/4, 7/8), tempo 50-220 BPM (log-uniform),
   tempo drift or rubato with ritardandi and fermatas, straight or swung subdivisions, sections
   of 4-8 bars with drum patterns (kick/snare/hats/ride/percussion, fills, crashes), bass line,
   chord comping (sustained, on beats, off-beat skank, arpeggios), melody; intros without drums,
   breaks, drum-less pieces.
2. Rendered to audio by fluidsynth with Debian's General MIDI soundfonts (random programs), at
   22 050 Hz.
3. Augmented: EQ, low/high-pass, reverb, saturation, noise, level, and lossy round trips
   (MP3, AAC, Opus at 48-192 kbit/s through PyAV's ffmpeg).
4. Turned into the model's input by the product's own code (OnsetStrength -> ModelInput), so
   training and inference see the same features, and stored with beat/downbeat/tempo labels.

    python train/corpus.py --out train/out/corpus --clips 1200 --seed 1 [--jobs 1]

Shards of 25 examples (`shard_00000.npz`, ...) are written as they are done; the trainer
picks up new shards while it runs.
"""

from __future__ import annotations

import argparse
import os
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from featherbeat.analysis.features.onset import OnsetStrength  # noqa: E402
from featherbeat.analysis.rhythm.learned import ModelInput  # noqa: E402

SR = 22050
CLIP_S = 30.0
SHARD = 25
# MuseScore General ships as an .sf3 (Ogg-compressed samples); train/sf3_to_sf2.py decodes it
# once into train/out (fluidsynth would decode it again for every window). Without that file
# the .sf3 itself is used, at about three times the rendering cost.
_MUSESCORE_SF2 = Path(__file__).resolve().parent / "out" / "MuseScore_General.sf2"
SOUNDFONTS = [
    p
    for p in (
        "/usr/share/sounds/sf2/FluidR3_GM.sf2",
        "/usr/share/sounds/sf2/TimGM6mb.sf2",
        str(_MUSESCORE_SF2)
        if _MUSESCORE_SF2.exists()
        else "/usr/share/sounds/sf3/MuseScore_General.sf3",
    )
    if os.path.exists(p)
]

# (name, beats per bar, subdivisions per beat, probability)
METERS = [
    ("4/4", 4, 2, 0.42),
    ("4/4-16", 4, 4, 0.12),
    ("3/4", 3, 2, 0.14),
    ("6/8", 2, 3, 0.08),
    ("12/8", 4, 3, 0.08),
    ("5/4", 5, 2, 0.08),
    ("7/8", 7, 2, 0.08),
]

MAJOR = np.array([0, 2, 4, 5, 7, 9, 11])
MINOR = np.array([0, 2, 3, 5, 7, 8, 10])
BASS_PROGRAMS = [32, 33, 34, 35, 36, 37, 38, 39, 43, 58, 0, 70]
CHORD_PROGRAMS = [
    0,
    1,
    2,
    4,
    5,
    6,
    16,
    17,
    18,
    19,
    24,
    25,
    26,
    27,
    28,
    29,
    30,
    46,
    48,
    49,
    50,
    52,
    61,
    62,
    88,
    89,
    90,
    91,
    94,
    11,
    12,
    21,
]
MELODY_PROGRAMS = [
    0,
    6,
    11,
    13,
    22,
    24,
    26,
    29,
    40,
    41,
    42,
    56,
    57,
    60,
    64,
    65,
    66,
    68,
    71,
    73,
    75,
    80,
    81,
    104,
    105,
    108,
]


@dataclass
class Note:
    t: float
    dur: float
    ch: int
    pitch: int
    vel: int


@dataclass
class Score:
    notes: list[Note] = field(default_factory=list)
    programs: dict[int, int] = field(default_factory=dict)
    beats: np.ndarray = field(default_factory=lambda: np.zeros(0))
    positions: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int16))
    meter: str = "4/4"
    bpm: float = 120.0


def _pick_meter(rng: np.random.Generator) -> tuple[str, int, int]:
    p = np.array([m[3] for m in METERS])
    name, bpb, sub, _ = METERS[int(rng.choice(len(METERS), p=p / p.sum()))]
    return name, bpb, sub


def _beat_times(rng: np.random.Generator, bpm: float, n: int, bpb: int, style: str) -> np.ndarray:
    """Times of n + 1 beats from a base tempo, with drift or rubato."""
    period = 60.0 / bpm
    if style == "steady":
        d = np.full(n, period) * (1 + rng.normal(0, 0.002, n))
    elif style == "drift":
        walk = np.cumsum(rng.normal(0, rng.uniform(0.002, 0.01), n))
        walk = np.clip(walk - walk.mean(), -0.15, 0.15)
        d = period * np.exp(walk) * (1 + rng.normal(0, 0.004, n))
    else:  # rubato: smooth tempo changes, phrase-end ritardandi, fermatas
        k = max(3, int(rng.integers(4, 12)))
        smooth = np.convolve(rng.normal(0, rng.uniform(0.02, 0.08), n + k), np.ones(k) / k, "valid")
        d = period * np.exp(smooth[:n]) * (1 + rng.normal(0, rng.uniform(0.01, 0.04), n))
        phrase = bpb * int(rng.choice([2, 4]))
        for end in range(phrase - 1, n, phrase):
            if rng.random() < 0.5:
                slow = rng.uniform(1.05, 1.3)
                span = min(bpb, end + 1)
                d[end - span + 1 : end + 1] *= np.linspace(1.0, slow, span)
            if rng.random() < 0.12:
                d[end] *= rng.uniform(1.5, 2.5)  # fermata
    return np.concatenate([[0.0], np.cumsum(d)])


def _at(beats: np.ndarray, pos: float) -> float:
    """Time of a position measured in beats (fractional parts interpolate within the beat)."""
    i = int(np.floor(pos))
    i = min(max(i, 0), beats.size - 2)
    return float(beats[i] + (pos - i) * (beats[i + 1] - beats[i]))


def make_score(rng: np.random.Generator, duration: float) -> Score:
    name, bpb, sub = _pick_meter(rng)
    lo, hi = (50.0, 220.0)
    if name == "7/8":
        lo = 110.0
    if sub == 3:
        hi = 160.0 if name == "12/8" else 120.0
        lo = 40.0 if name == "6/8" else 50.0
    if sub == 4:
        hi = 150.0
    bpm = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    style = rng.choice(["steady", "drift", "rubato"], p=[0.55, 0.3, 0.15])
    drums_ever = rng.random() > (0.55 if style == "rubato" else 0.2)
    n_beats = int(duration * bpm / 60.0 * 1.4) + 2 * bpb + 8
    beats = _beat_times(rng, bpm, n_beats, bpb, str(style))
    lead_in = rng.uniform(0.0, 2.0)
    beats = beats + lead_in
    swing = 0.5
    if sub == 2 and rng.random() < 0.25:
        swing = rng.uniform(0.58, 0.7)

    def sub_pos(beat: int, s: int) -> float:
        frac = s / sub
        if sub == 2 and s == 1:
            frac = swing
        return beat + frac

    sc = Score(meter=name, bpm=bpm)
    # Channels: 0 bass, 1 chords, 2 melody, 3 pad, 9 drums.
    sc.programs = {
        0: int(rng.choice(BASS_PROGRAMS)),
        1: int(rng.choice(CHORD_PROGRAMS)),
        2: int(rng.choice(MELODY_PROGRAMS)),
        3: int(rng.choice([48, 49, 50, 52, 89, 90, 91, 94, 19, 16])),
    }
    tonic = int(rng.integers(0, 12))
    scale = MAJOR if rng.random() < 0.6 else MINOR
    degrees = [0, 3, 4, 5, 1, 2, 6]
    n_bars = (n_beats - 2) // bpb
    intro = int(rng.choice([0, 0, 1, 2, 4])) if drums_ever else 0
    bar = 0
    mel_deg = int(rng.integers(0, 7))
    deg = 0  # the chord degree; every section's first bar draws one
    melody_on = rng.random() < 0.7
    while bar < n_bars:
        sec_len = int(rng.choice([4, 8]))
        drums = drums_ever and bar >= intro and rng.random() > 0.12
        bass_on = rng.random() > 0.15
        chords_on = rng.random() > 0.1 or not bass_on
        pad_on = rng.random() < 0.3
        comp = rng.choice(["sustain", "beats", "offbeat", "arp", "subs"])
        # Drum pattern of this section: per (beat, sub) probabilities -> fixed choice.
        steps = bpb * sub
        kick = np.zeros(steps, bool)
        kick[0] = True
        snare = np.zeros(steps, bool)
        four_floor = rng.random() < 0.2
        for b in range(bpb):
            if four_floor or (b == bpb // 2 and bpb in (4,) and rng.random() < 0.7):
                kick[b * sub] = True
            if rng.random() < 0.12:
                kick[b * sub + int(rng.integers(1, sub))] = True
        back = {
            4: [1, 3],
            3: [1, 2] if rng.random() < 0.5 else [],
            2: [1],
            5: [1, 3] if rng.random() < 0.5 else [2, 4],
            7: [2, 4, 6] if rng.random() < 0.5 else [2, 5],
        }[bpb]
        if bpb == 4 and rng.random() < 0.1:
            back = [2]  # half-time feel
        for b in back:
            snare[b * sub] = True
        hat_mode = rng.choice(
            ["subs", "beats", "off", "none", "sixteenth"], p=[0.5, 0.15, 0.15, 0.08, 0.12]
        )
        hat_note = int(rng.choice([42, 42, 44, 51, 46, 70, 54]))
        snare_note = int(rng.choice([38, 38, 40, 39, 37]))
        kick_note = int(rng.choice([36, 35]))
        for sb in range(sec_len):
            if bar >= n_bars:
                break
            b0 = bar * bpb
            # chord of this bar
            deg = (
                degrees[int(rng.integers(0, len(degrees)))]
                if sb % 2 == 0 or rng.random() < 0.5
                else deg
            )
            root = 48 + tonic + int(scale[deg % 7])
            chord = [
                root + int(scale[(deg + k) % 7] - scale[deg % 7]) % 12 + 12 * ((deg + k) // 7)
                for k in (0, 2, 4)
            ]
            if drums:
                for s in range(steps):
                    t = _at(beats, sub_pos(b0 + s // sub, s % sub))
                    on_beat = s % sub == 0
                    vel_acc = 10 if on_beat else 0
                    if kick[s]:
                        sc.notes.append(Note(t, 0.1, 9, kick_note, int(rng.integers(90, 120))))
                    if snare[s]:
                        sc.notes.append(Note(t, 0.1, 9, snare_note, int(rng.integers(80, 115))))
                    play_hat = {
                        "subs": True,
                        "beats": on_beat,
                        "off": not on_beat,
                        "none": False,
                        "sixteenth": True,
                    }[hat_mode]
                    if play_hat:
                        sc.notes.append(
                            Note(t, 0.05, 9, hat_note, int(rng.integers(45, 80)) + vel_acc)
                        )
                        if hat_mode == "sixteenth" and sub == 2:
                            t2 = _at(beats, b0 + s // sub + (s % sub) * 0.5 + 0.25)
                            sc.notes.append(Note(t2, 0.05, 9, hat_note, int(rng.integers(35, 60))))
                    if rng.random() < 0.03:
                        sc.notes.append(
                            Note(
                                t, 0.1, 9, int(rng.choice([41, 43, 45, 47, 48, 50, 56, 75, 76])), 70
                            )
                        )
                if sb == 0 and rng.random() < 0.5:
                    sc.notes.append(Note(_at(beats, b0), 1.0, 9, 49, int(rng.integers(80, 110))))
                if sb == sec_len - 1 and rng.random() < 0.3:  # fill on the last beat
                    for s in range(sub * 2):
                        t = _at(beats, b0 + bpb - 1 + s / (sub * 2))
                        sc.notes.append(
                            Note(
                                t,
                                0.1,
                                9,
                                int(rng.choice([38, 41, 43, 45, 47, 48])),
                                int(rng.integers(70, 110)),
                            )
                        )
            if bass_on:
                pattern = [0] + [b for b in range(1, bpb) if rng.random() < 0.6]
                for b in pattern:
                    t = _at(beats, b0 + b)
                    dur = _at(beats, b0 + b + 0.9) - t
                    p = root - 12 + (7 if b > 0 and rng.random() < 0.25 else 0)
                    vel = int(rng.integers(85, 115)) if b == 0 else int(rng.integers(65, 100))
                    sc.notes.append(Note(t, dur, 0, p, vel))
                    if rng.random() < 0.2:
                        sc.notes.append(
                            Note(_at(beats, sub_pos(b0 + b, sub - 1)), dur / 3, 0, p + 12, 70)
                        )
            if chords_on:
                if comp == "sustain":
                    onsets = [0.0]
                    durs = [bpb * 0.98]
                elif comp == "beats":
                    onsets = [float(b) for b in range(bpb)]
                    durs = [0.8] * bpb
                elif comp == "offbeat":
                    onsets = [b + (swing if sub == 2 else 1.0 / sub) for b in range(bpb)]
                    durs = [0.35] * bpb
                else:
                    onsets = [b + s / sub for b in range(bpb) for s in range(sub)]
                    durs = [0.9 / sub] * len(onsets)
                for i, (o, du) in enumerate(zip(onsets, durs, strict=True)):
                    t = _at(beats, b0 + o)
                    dur = max(0.05, _at(beats, b0 + o + du) - t)
                    vel = int(rng.integers(55, 95)) + (10 if o == 0 else 0)
                    if comp in ("arp", "subs") and comp == "arp":
                        sc.notes.append(Note(t, dur, 1, chord[i % 3] + 12, vel))
                    else:
                        for p in chord:
                            sc.notes.append(Note(t, dur, 1, p + 12, vel))
            if pad_on:
                t = _at(beats, b0)
                sc.notes.append(Note(t, _at(beats, b0 + bpb) - t, 3, chord[0] + 12, 50))
                sc.notes.append(Note(t, _at(beats, b0 + bpb) - t, 3, chord[2] + 12, 45))
            if melody_on and rng.random() < 0.8:
                pos = 0.0
                while pos < bpb:
                    step = float(rng.choice([0.5, 1.0, 1.0, 2.0, 1.0 / sub, 1.5]))
                    if rng.random() < 0.75:
                        mel_deg = int(np.clip(mel_deg + rng.integers(-2, 3), -3, 10))
                        p = 72 + tonic + int(scale[mel_deg % 7]) + 12 * (mel_deg // 7)
                        t = _at(beats, b0 + pos)
                        dur = max(0.05, _at(beats, b0 + min(bpb, pos + step)) - t)
                        sc.notes.append(Note(t, dur * 0.9, 2, p, int(rng.integers(60, 100))))
                    pos += step
            bar += 1
    total = n_bars * bpb
    sc.beats = beats[: total + 1]
    sc.positions = (np.arange(total + 1) % bpb + 1).astype(np.int16)
    return sc


# ---- MIDI file (SMF type 0) ------------------------------------------------------------------
TICKS = 480  # per quarter at 120 BPM -> 960 ticks per second


def _vlq(n: int) -> bytes:
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def write_midi(sc: Score, path: Path) -> None:
    ev: list[tuple[int, int, bytes]] = []
    for ch, prog in sc.programs.items():
        ev.append((0, 0, bytes([0xC0 | ch, prog & 0x7F])))
        ev.append((0, 0, bytes([0xB0 | ch, 7, 100])))
    for n in sc.notes:
        on = max(0, int(round(n.t * 2 * TICKS)))
        off = max(on + 1, int(round((n.t + n.dur) * 2 * TICKS)))
        p = int(np.clip(n.pitch, 0, 127))
        v = int(np.clip(n.vel, 1, 127))
        ev.append((on, 2, bytes([0x90 | n.ch, p, v])))
        ev.append((off, 1, bytes([0x80 | n.ch, p, 0])))
    ev.sort(key=lambda e: (e[0], e[1]))
    data = bytearray(b"\x00\xff\x51\x03\x07\xa1\x20")  # tempo 500000 us per quarter
    last = 0
    for tick, _, msg in ev:
        data += _vlq(tick - last) + msg
        last = tick
    data += b"\x00\xff\x2f\x00"
    path.write_bytes(
        b"MThd"
        + struct.pack(">IHHH", 6, 0, 1, TICKS)
        + b"MTrk"
        + struct.pack(">I", len(data))
        + bytes(data)
    )


def render(sc: Score, rng: np.random.Generator, duration: float, tmp: Path) -> np.ndarray:
    mid = tmp / "x.mid"
    write_midi(sc, mid)
    return render_file(mid, rng, duration, tmp)


def render_file(mid: Path, rng: np.random.Generator, duration: float, tmp: Path) -> np.ndarray:
    """A MIDI file -> mono float64 audio of `duration` s (random soundfont and reverb)."""
    raw = tmp / "x.raw"
    sf = SOUNDFONTS[int(rng.integers(0, len(SOUNDFONTS)))]
    reverb = "1" if rng.random() < 0.4 else "0"
    cmd = [
        "fluidsynth",
        "-ni",
        "-q",
        "-g",
        "0.6",
        "-r",
        str(SR),
        "-R",
        reverb,
        "-C",
        "0",
        "-O",
        "float",
        "-T",
        "raw",
        "-F",
        str(raw),
    ]
    if sf.endswith(".sf3"):
        # An .sf3 keeps its samples Ogg-compressed; fluidsynth decodes all of them at load
        # (11 s and 500 MB for MuseScore General) unless it loads only the presets played.
        cmd += ["-o", "synth.dynamic-sample-loading=1"]
    cmd += [sf, str(mid)]
    n = int(duration * SR)
    # fluidsynth renders until the last voice ends; one abc2midi window (seed 11, shard 27)
    # rendered 68 GB of audio before ending. Past twice the frames needed it is stopped (what
    # was written is kept), and past 300 s it is an error as before.
    limit = 2 * (n + SR) * 8  # bytes: stereo float32
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while proc.poll() is None:
        if raw.exists() and raw.stat().st_size > limit:
            proc.kill()
            proc.wait()
            break
        if time.time() > deadline:
            proc.kill()
            proc.wait()
            raise subprocess.TimeoutExpired(cmd, 300)
        time.sleep(0.02)
    else:
        if proc.returncode != 0:
            raise subprocess.CalledProcessError(proc.returncode, cmd)
    y = np.fromfile(raw, dtype=np.float32, count=2 * n)
    y = y[: y.size // 2 * 2].reshape(-1, 2).mean(axis=1)  # a killed render may end mid-frame
    if y.size < n:
        y = np.pad(y, (0, n - y.size))
    return y[:n].astype(np.float64)


# ---- augmentation ---------------------------------------------------------------------------
def _eq(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    m = 1 << int(np.ceil(np.log2(y.size)))
    spec = np.fft.rfft(y, m)
    f = np.fft.rfftfreq(m, 1 / SR)
    lf = np.log2(np.maximum(f, 20.0) / 20.0)  # 0 .. ~9 octaves
    pts = np.linspace(0, lf.max(), 7)
    gains_db = rng.normal(0, 5, 7)
    g = 10 ** (np.interp(lf, pts, gains_db) / 20)
    r = rng.random()
    if r < 0.15:  # high-pass (small speakers, thin recordings)
        g *= 1 / (1 + (rng.uniform(80, 400) / np.maximum(f, 1.0)) ** 4)
    elif r < 0.35:  # low-pass (old recordings, low bit rates)
        g *= 1 / (1 + (f / rng.uniform(2500, 9000)) ** 4)
    return np.fft.irfft(spec * g, n=m)[: y.size]


def _reverb(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    rt = rng.uniform(0.3, 2.5)
    n = int(rt * SR)
    t = np.arange(n) / SR
    ir = rng.normal(0, 1, n) * np.exp(-6.9 * t / rt)
    ir /= np.sqrt(np.sum(ir**2))
    m = 1 << int(np.ceil(np.log2(y.size + n)))  # a power of two: rfft of odd sizes is slow
    wet = np.fft.irfft(np.fft.rfft(y, m) * np.fft.rfft(ir, m), m)[: y.size]
    mix = rng.uniform(0.1, 0.6)
    return (1 - mix) * y + mix * wet * (np.std(y) / (np.std(wet) + 1e-9))


def _noise(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = rng.normal(0, 1, y.size)
    if rng.random() < 0.5:  # pink-ish
        m = 1 << int(np.ceil(np.log2(y.size)))
        spec = np.fft.rfft(n, m)
        spec /= np.sqrt(np.maximum(np.arange(spec.size), 1))
        n = np.fft.irfft(spec, n=m)[: y.size]
    snr = rng.uniform(12, 40)
    return y + n * (np.std(y) / (np.std(n) + 1e-12)) * 10 ** (-snr / 20)


def _codec(y: np.ndarray, rng: np.random.Generator, tmp: Path) -> np.ndarray:
    """Lossy round trip through PyAV (ffmpeg's encoders); unchanged if unavailable."""
    try:
        import av
    except ImportError:
        return y
    choices = [
        ("mp3", "libmp3lame", "mp3", 44100),
        ("adts", "aac", "aac", 44100),
        ("ogg", "libopus", "opus", 48000),
    ]
    fmt, codec, ext, rate = choices[int(rng.integers(0, len(choices)))]
    bitrate = int(rng.choice([48, 64, 96, 128, 160, 192])) * 1000
    path = tmp / f"c.{ext}"
    try:
        # Resample up by linear interpolation (the codec's band limits are what matter).
        up = np.interp(np.arange(int(y.size * rate / SR)) * SR / rate, np.arange(y.size), y)
        up = np.clip(up, -1, 1).astype(np.float32)
        with av.open(str(path), "w", format=fmt) as out:
            st = out.add_stream(codec, rate=rate)
            st.bit_rate = bitrate
            st.layout = "mono"
            frame_size = 960 if codec == "libopus" else 1152 if codec == "libmp3lame" else 1024
            for i in range(0, up.size, frame_size):
                chunk = up[i : i + frame_size]
                if chunk.size < frame_size:
                    chunk = np.pad(chunk, (0, frame_size - chunk.size))
                fr = av.AudioFrame.from_ndarray(chunk[None, :], format="flt", layout="mono")
                fr.sample_rate = rate
                fr.pts = i
                for pkt in st.encode(fr):
                    out.mux(pkt)
            for pkt in st.encode(None):
                out.mux(pkt)
        parts = []
        with av.open(str(path)) as inp:
            res = av.AudioResampler(format="flt", layout="mono", rate=SR)
            for fr in inp.decode(audio=0):
                for r in res.resample(fr):
                    parts.append(r.to_ndarray().reshape(-1))
        z = np.concatenate(parts).astype(np.float64)
        # Encoder delay: align by cross-correlating a stretch of the envelope.
        lag = _delay(y, z)
        z = z[lag:] if lag > 0 else np.pad(z, (-lag, 0))
        if z.size < y.size:
            z = np.pad(z, (0, y.size - z.size))
        return z[: y.size]
    except Exception:  # noqa: BLE001 (an encoder missing from this build: no round trip)
        return y


def _delay(a: np.ndarray, b: np.ndarray, max_lag: int = 4096) -> int:
    n = min(a.size, b.size, 5 * SR)
    x, z = a[:n], b[: n + max_lag]
    m = 1 << int(np.ceil(np.log2(n + max_lag + n)))
    c = np.fft.irfft(np.fft.rfft(z, m) * np.conj(np.fft.rfft(x, m)), m)[: max_lag + 1]
    return int(np.argmax(c))


def augment(y: np.ndarray, rng: np.random.Generator, tmp: Path) -> tuple[np.ndarray, str]:
    tags = []
    if rng.random() < 0.7:
        y = _eq(y, rng)
        tags.append("eq")
    if rng.random() < 0.3:
        y = _reverb(y, rng)
        tags.append("reverb")
    if rng.random() < 0.25:
        drive = rng.uniform(1.5, 6)
        y = np.tanh(drive * y / (np.max(np.abs(y)) + 1e-9)) / np.tanh(drive)
        tags.append("sat")
    if rng.random() < 0.3:
        y = _noise(y, rng)
        tags.append("noise")
    peak = np.max(np.abs(y)) + 1e-9
    y = y / peak * 10 ** (rng.uniform(-30, -0.5) / 20)
    if rng.random() < 0.35:
        y = _codec(y, rng, tmp)
        tags.append("codec")
    return y, "+".join(tags)


def features(y: np.ndarray) -> np.ndarray:
    frames: list[np.ndarray] = []
    det = OnsetStrength(SR)
    sink = ModelInput(frames.append)
    det.sink = sink
    for i in range(0, y.size, 65536):
        det.push(y[i : i + 65536].astype(np.float32))
    det.finish()
    sink.flush()
    return np.concatenate(frames) if frames else np.zeros((0, 72), np.float32)


def example(seed: int, tmp: Path) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    sc = make_score(rng, CLIP_S + 4)
    y = render(sc, rng, CLIP_S + 4, tmp)
    # Start anywhere in the first 4 s: the track need not begin on a beat.
    start = rng.uniform(0, 4.0)
    i0 = int(start * SR)
    y = y[i0 : i0 + int(CLIP_S * SR)]
    beats = sc.beats - start
    keep = (beats >= 0) & (beats < CLIP_S)
    y, tags = augment(y, rng, tmp)
    x = features(y)
    return {
        "x": x.astype(np.float16),
        "beats": beats[keep].astype(np.float32),
        "pos": sc.positions[keep],
        "bpm": np.float32(sc.bpm),
        "meter": np.array(sc.meter),
        "tags": np.array(tags),
    }


def write_shard(path: Path, items: list[dict[str, np.ndarray]]) -> None:
    """``items`` as one shard (``n`` and ``<k>_<key>`` arrays, the format train/train.py
    loads), written to a temp name and renamed: an interrupted run never leaves half a shard
    that a resumed run would skip."""
    blob: dict[str, np.ndarray] = {}
    for k, it in enumerate(items):
        for key, val in it.items():
            blob[f"{k}_{key}"] = val
    tmp_path = path.parent / f".{path.name}.tmp.npz"
    np.savez(tmp_path, n=np.int64(len(items)), **blob)
    os.replace(tmp_path, path)


def beat_f_measure(ref: np.ndarray, est: np.ndarray, win: float = 0.07) -> float:
    """Beat F-measure with one-to-one matching within +-``win`` s (mir_eval's rule, without
    its skip of the first 5 s: callers trim what they need). Torch-free, for the trainer's
    validation and the self-training filter alike."""
    if ref.size == 0 or est.size == 0:
        return 0.0
    used = np.zeros(est.size, bool)
    hits = 0
    for r in ref:
        d = np.abs(est - r)
        d[used] = np.inf
        j = int(np.argmin(d))
        if d[j] <= win:
            used[j] = True
            hits += 1
    p, rc = hits / est.size, hits / ref.size
    return 0.0 if hits == 0 else 2 * p * rc / (p + rc)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="train/out/corpus")
    ap.add_argument("--clips", type=int, default=1200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=1, help="this job's index is --part")
    ap.add_argument("--part", type=int, default=0)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not SOUNDFONTS:
        sys.exit(
            "corpus: no General MIDI soundfont (apt-get install fluidsynth fluid-soundfont-gm)"
        )
    t0 = time.time()
    n_shards = -(-args.clips // SHARD)
    with tempfile.TemporaryDirectory() as td:
        for s in range(args.part, n_shards, args.jobs):
            path = out / f"shard_{s:05d}.npz"
            if path.exists():
                continue
            items = [
                example(args.seed * 1_000_003 + s * SHARD + k, Path(td))
                for k in range(SHARD)
                if s * SHARD + k < args.clips
            ]
            write_shard(path, items)
            print(f"{time.time() - t0:7.1f}s shard {s} done", flush=True)


if __name__ == "__main__":
    main()
