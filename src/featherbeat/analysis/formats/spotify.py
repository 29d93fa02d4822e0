"""Spotify's audio-analysis JSON, plus our extras under the one top-level key ``"featherbeat"``.

``to_dict`` builds the whole object (tests, small tracks); ``write`` streams the same content
to a text file one beat / segment at a time, so an hour-long mix is never one big string.
Both read the same generators, so they cannot drift apart. Field meanings: docs/formats.md.

Curves (onset, loudness, energy, waveform) are decimated before output (see ``CURVE_LIMITS``)
so that an hour of music stays a few MB of JSON.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterator
from typing import Any, TextIO

import numpy as np

from featherbeat import __version__
from featherbeat.analysis.features._store import release, row_chunks
from featherbeat.analysis.formats._util import (
    TIME_DECIMALS,
    dumps,
    key_name,
    mode_name,
    num,
    nums,
    seconds,
    unit,
    units,
    write_json_array,
)
from featherbeat.analysis.profile import ANALYSIS_SAMPLE_RATE, LOUDNESS_FLOOR_DB, Profile

ANALYZER_VERSION = f"featherbeat-{__version__}"

# (max values per second, max values per curve). 20/s is plenty to draw or to read an
# envelope from; the cap keeps a 1-hour track near 10/s (36 000 values, ~250 kB per curve).
CURVE_LIMITS = (20.0, 36_000)
# Waveform peaks are drawn at pixel resolution: up to 50 buckets/s, 72 000 per track.
WAVEFORM_LIMITS = (50.0, 72_000)

_CHUNK = 512  # events per fp.write(): few system calls, small strings
_ROWS = 4096  # events rounded to Python floats at a time

Reducer = Callable[[np.ndarray], np.ndarray]


def decimate(
    values: np.ndarray, rate: float, limits: tuple[float, int], reduce: Reducer
) -> tuple[float, np.ndarray]:
    """(new rate, values) reduced by an integer factor so both limits in ``limits`` hold.

    ``reduce`` maps a (buckets, factor) array to one value per bucket (max keeps peaks, mean
    keeps levels). A partial last bucket is padded with its own last value, so it is kept.
    """
    flat = np.asarray(values).reshape(-1)
    max_rate, max_points = limits
    if flat.size == 0 or rate <= 0:
        return float(max(rate, 0.0)), flat.astype(np.float64)
    factor = max(1, int(np.ceil(rate / max_rate - 1e-9)), int(np.ceil(flat.size / max_points)))
    if factor == 1:
        return float(rate), flat.astype(np.float64)
    # Whole buckets ~65 000 values at a time: each bucket is reduced exactly as in one call, and
    # six hours of a 86/s curve never become one float64 copy (plus a padded one).
    step = max(1, (1 << 16) // factor) * factor
    out = []
    for _, part in row_chunks(flat, rows=step):
        a = part.astype(np.float64)
        pad = (-a.size) % factor
        if pad:  # the last, partial bucket: padded with the curve's last value
            a = np.concatenate([a, np.full(pad, a[-1])])
        out.append(reduce(a.reshape(-1, factor)))
    return float(rate) / factor, np.concatenate(out)


def _mean_power_db(block: np.ndarray) -> np.ndarray:
    """Mean loudness of each row in the power domain (a loud transient is not averaged away)."""
    return 10.0 * np.log10(np.mean(10.0 ** (block / 10.0), axis=1))


def _max(block: np.ndarray) -> np.ndarray:
    return block.max(axis=1)


def _min(block: np.ndarray) -> np.ndarray:
    return block.min(axis=1)


def _mean(block: np.ndarray) -> np.ndarray:
    return block.mean(axis=1)


def _curve(values: np.ndarray, rate: float, reduce: Reducer, decimals: int = 3) -> dict[str, Any]:
    new_rate, out = decimate(values, rate, CURVE_LIMITS, reduce)
    return {"rate": num(new_rate, 5), "values": nums(out, decimals)}


def meta(profile: Profile) -> dict[str, Any]:
    return {
        "analyzer_version": ANALYZER_VERSION,
        "platform": platform.system() or "unknown",
        "detailed_status": profile.detailed_status,
        "status_code": int(profile.status_code),
        "timestamp": int(profile.timestamp),
        "analysis_time": seconds(profile.analysis_time),
        "input_process": profile.source.decoder or "unknown",
    }


def track(profile: Profile) -> dict[str, Any]:
    r, tone, dur = profile.rhythm, profile.tonality, profile.duration
    fade_out = profile.start_of_fade_out if profile.start_of_fade_out > 0 else dur
    return {
        "num_samples": int(profile.source.num_samples),
        "duration": seconds(dur),
        "sample_md5": "",  # Spotify documents this as always empty
        "offset_seconds": 0,  # the whole track is analysed
        "window_seconds": 0,
        "analysis_sample_rate": ANALYSIS_SAMPLE_RATE,
        "analysis_channels": 1,  # mixed to mono before analysis
        "end_of_fade_in": seconds(min(max(profile.end_of_fade_in, 0.0), dur)),
        "start_of_fade_out": seconds(min(max(fade_out, 0.0), dur)),
        "loudness": _db(profile.loudness),
        "tempo": num(r.tempo),
        "tempo_confidence": unit(r.tempo_confidence),
        "time_signature": _time_signature(r.time_signature),
        "time_signature_confidence": unit(r.time_signature_confidence),
        "key": _key(tone.key),
        "key_confidence": unit(tone.key_confidence),
        "mode": _mode(tone.mode),
        "mode_confidence": unit(tone.mode_confidence),
        # We compute none of Echo Nest's fingerprint / synch codes: empty string, version 0.
        "codestring": "",
        "code_version": 0.0,
        "echoprintstring": "",
        "echoprint_version": 0.0,
        "synchstring": "",
        "synch_version": 0.0,
        "rhythmstring": "",
        "rhythm_version": 0.0,
    }


def _db(x: float) -> float:
    """A level in dB within Spotify's documented -60..0 (a clipped input can read above 0)."""
    return num(min(max(float(x), LOUDNESS_FLOOR_DB), 0.0))


def _dbs(x: np.ndarray) -> list[float]:
    levels = np.nan_to_num(np.asarray(x, dtype=np.float64), nan=LOUDNESS_FLOOR_DB)
    return nums(np.clip(levels, LOUDNESS_FLOOR_DB, 0.0))


def _time_signature(ts: int) -> int:
    return int(min(max(int(ts), 3), 7))


def _key(key: int) -> int:
    return int(key) if 0 <= int(key) <= 11 else -1


def _mode(mode: int) -> int:
    return int(mode) if int(mode) in (0, 1) else -1


def _interval_objects(
    starts: np.ndarray, durations: np.ndarray, conf: np.ndarray
) -> Iterator[dict]:
    # Rounded column by column (vectorised): an hour has ~30 000 beats and tatums. A block of
    # rows at a time: six hours of them as Python floats would be tens of MB at once.
    for a in range(0, len(starts), _ROWS):
        rows = slice(a, a + _ROWS)
        columns = (
            nums(starts[rows], TIME_DECIMALS),
            nums(durations[rows], TIME_DECIMALS),
            units(conf[rows]),
        )
        for s, d, c in zip(*columns, strict=True):
            yield {"start": s, "duration": d, "confidence": c}


def beats(profile: Profile) -> Iterator[dict]:
    r = profile.rhythm
    yield from _interval_objects(r.beats, r.beat_duration, r.beat_confidence)


def tatums(profile: Profile) -> Iterator[dict]:
    r = profile.rhythm
    yield from _interval_objects(r.tatums, r.tatum_duration, r.tatum_confidence)


def bars(profile: Profile) -> Iterator[dict]:
    r = profile.rhythm
    yield from _interval_objects(r.bar_start, r.bar_duration, r.bar_confidence)


def sections(profile: Profile) -> Iterator[dict]:
    for s in profile.sections_or_whole():
        yield {
            "start": seconds(s.start),
            "duration": seconds(s.duration),
            "confidence": unit(s.confidence),
            "loudness": _db(s.loudness),
            "tempo": num(s.tempo),
            "tempo_confidence": unit(s.tempo_confidence),
            "key": _key(s.key),
            "key_confidence": unit(s.key_confidence),
            "mode": _mode(s.mode),
            "mode_confidence": unit(s.mode_confidence),
            "time_signature": _time_signature(s.time_signature),
            "time_signature_confidence": unit(s.time_signature_confidence),
        }


def segments(profile: Profile) -> Iterator[dict]:
    seg = profile.segments
    # Every column rounded at once, then one dict per segment: ~5x faster than per value. A
    # block of segments at a time: three hours (43 000 segments x 31 values) as Python floats
    # held at once were the largest allocation of a long analysis (~40 MB).
    for a in range(0, len(seg), _ROWS):
        rows = slice(a, a + _ROWS)
        columns = {
            "start": nums(seg.start[rows], TIME_DECIMALS),
            "duration": nums(seg.duration[rows], TIME_DECIMALS),
            "confidence": units(seg.confidence[rows]),
            "loudness_start": _dbs(seg.loudness_start[rows]),
            "loudness_max": _dbs(seg.loudness_max[rows]),
            "loudness_max_time": nums(seg.loudness_max_time[rows], TIME_DECIMALS),
            "loudness_end": _dbs(seg.loudness_end[rows]),
            "pitches": units(seg.pitches[rows]),
            "timbre": nums(seg.timbre[rows]),
        }
        # A long track's segments live in temp files (structure/segments.py): the block's
        # pages go back once its values are Python floats.
        for name in columns:
            release(getattr(seg, name))
        names = list(columns)
        for row in zip(*columns.values(), strict=True):
            yield dict(zip(names, row, strict=True))


def extras(profile: Profile) -> dict[str, Any]:
    """The ``"featherbeat"`` object: what Spotify's format has no place for."""
    r, c, p = profile.rhythm, profile.curves, profile.peaks
    wave_rate, wave_min = decimate(p.min, p.rate, WAVEFORM_LIMITS, _min)
    _, wave_max = decimate(p.max, p.rate, WAVEFORM_LIMITS, _max)
    return {
        "version": __version__,
        "downbeats": nums(r.downbeats, TIME_DECIMALS),
        "beat_positions": [int(x) for x in r.beat_position.tolist()],  # 0 = unknown
        "tempo_curve": {
            "times": nums(r.tempo_curve_times, TIME_DECIMALS),
            "bpm": nums(np.clip(r.tempo_curve_bpm, 0.0, None)),
        },
        "onset": _curve(c.onset, c.onset_rate, _max),
        "loudness": _curve(c.loudness, c.frame_rate, _mean_power_db),
        "energy": _curve(c.energy, c.frame_rate, _mean, 5),
        "waveform": {
            "rate": num(wave_rate, 5),
            "min": nums(np.clip(wave_min, -1.0, 1.0)),
            "max": nums(np.clip(wave_max, -1.0, 1.0)),
        },
        "section_labels": [s.label or "A" for s in profile.sections_or_whole()],
        "key_name": key_name(profile.tonality.key),
        "mode_name": mode_name(profile.tonality.mode),
        "missing": {str(k): str(v) for k, v in profile.missing.items()},
        "reduced": bool(profile.reduced),
    }


def _parts(profile: Profile) -> Iterator[tuple[str, Any]]:
    """The top-level keys in Spotify's order; long lists come as generators."""
    yield "meta", meta(profile)
    yield "track", track(profile)
    yield "bars", bars(profile)
    yield "beats", beats(profile)
    yield "tatums", tatums(profile)
    yield "sections", sections(profile)
    yield "segments", segments(profile)
    yield "featherbeat", extras(profile)


def to_dict(profile: Profile) -> dict[str, Any]:
    """The whole analysis as one dict (the same content :func:`write` streams)."""
    profile.check()
    return {k: (v if isinstance(v, dict) else list(v)) for k, v in _parts(profile)}


def write(profile: Profile, fp: TextIO) -> None:
    """Stream the JSON to ``fp``: at most ``_CHUNK`` events, or one curve, as text at a time."""
    profile.check()
    fp.write("{")
    for n, (key, value) in enumerate(_parts(profile)):
        fp.write(("," if n else "") + dumps(key) + ":")
        if isinstance(value, dict):
            # Member by member: the extras hold several decimated curves of ~0.5 MB each.
            fp.write("{")
            for m, (name, member) in enumerate(value.items()):
                fp.write(("," if m else "") + dumps(name) + ":" + dumps(member))
            fp.write("}")
        else:
            write_json_array(fp, value, _CHUNK)
    fp.write("}\n")
