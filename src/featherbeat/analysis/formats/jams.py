"""JAMS (JSON Annotated Music Specification, jams 0.3) written as plain JSON.

Annotations, each with ``annotation_tools`` naming featherbeat and its version:
- ``beat``: one observation per beat; value = position in bar (1 = downbeat) or null.
- ``beat_position``: the same beats as {position, measure, num_beats, beat_units = 4};
  only when every beat has a position in bar.
- ``tempo``: one observation spanning the track, value in BPM with its confidence.
- ``key_mode``: one observation spanning the track, e.g. "F#:minor", or "N" for no key.
- ``segment_open``: one observation per section, value = its label ("A", "B", ...).

The ``jams`` package is not imported here (test-only dependency); the tests check the output
with ``jams.load(path, strict=True)``. Beats are streamed; everything else is small.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TextIO

import numpy as np

from featherbeat import __version__
from featherbeat.analysis.formats._util import (
    dumps,
    key_name,
    mode_name,
    num,
    seconds,
    unit,
    units,
    write_json_array,
)
from featherbeat.analysis.profile import Profile

JAMS_VERSION = "0.3.4"
_CHUNK = 1024


def _metadata() -> dict[str, Any]:
    return {
        "corpus": "",
        "version": __version__,
        "annotator": {},
        "annotation_tools": f"featherbeat {__version__}",
        "annotation_rules": "",
        "validation": "",
        "data_source": "machine estimate",
    }


def _obs(time: float, duration: float, value: Any, confidence: float | None) -> dict[str, Any]:
    return {
        "time": seconds(time),
        "duration": seconds(duration),
        "value": value,
        "confidence": confidence,
    }


def beat_obs(profile: Profile) -> Iterator[dict[str, Any]]:
    r = profile.rhythm
    conf = units(r.beat_confidence)
    values = r.beat_position.tolist() if r.positions_known else [None] * len(conf)
    for x, v, c in zip(r.beats.tolist(), values, conf, strict=True):
        yield _obs(x, 0.0, v, c)


def beat_position_obs(profile: Profile) -> Iterator[dict[str, Any]]:
    """Only when every beat has a position (the namespace has no "unknown")."""
    r = profile.rhythm
    if not r.positions_known:
        return
    pos = r.beat_position.tolist()
    measures = np.cumsum(r.beat_position == 1).tolist()  # 0 for a pickup before the first downbeat
    ts = int(r.time_signature)
    conf = units(r.beat_confidence)
    for x, p, m, c in zip(r.beats.tolist(), pos, measures, conf, strict=True):
        value = {"position": p, "measure": m, "num_beats": max(ts, p, 1), "beat_units": 4}
        yield _obs(x, 0.0, value, c)


def _annotation(namespace: str, duration: float) -> dict[str, Any]:
    return {
        "annotation_metadata": _metadata(),
        "namespace": namespace,
        "sandbox": {},
        "time": 0.0,
        "duration": seconds(duration),
    }


def _small_annotations(profile: Profile) -> list[dict[str, Any]]:
    dur, r, tone = profile.duration, profile.rhythm, profile.tonality
    tempo = _annotation("tempo", dur)
    tempo["data"] = [_obs(0.0, dur, num(max(r.tempo, 0.0)), unit(r.tempo_confidence))]
    key = _annotation("key_mode", dur)
    name = key_name(tone.key)
    value = f"{name}:{mode_name(tone.mode)}" if name and mode_name(tone.mode) else (name or "N")
    key["data"] = [_obs(0.0, dur, value, unit(tone.key_confidence))]
    segments = _annotation("segment_open", dur)
    segments["data"] = [
        _obs(s.start, s.duration, s.label or "A", unit(s.confidence))
        for s in profile.sections_or_whole()
    ]
    return [tempo, key, segments]


def _file_metadata(profile: Profile) -> dict[str, Any]:
    return {
        "title": profile.source.name,
        "artist": "",
        "release": "",
        "duration": seconds(max(profile.duration, 0.0)),
        "identifiers": {},
        "jams_version": JAMS_VERSION,
    }


def _sandbox(profile: Profile) -> dict[str, Any]:
    return {
        "featherbeat": {
            "version": __version__,
            "loudness": num(profile.loudness),
            "end_of_fade_in": seconds(profile.end_of_fade_in),
            "start_of_fade_out": seconds(profile.start_of_fade_out),
            "missing": dict(profile.missing),
            "reduced": bool(profile.reduced),
        }
    }


def to_dict(profile: Profile) -> dict[str, Any]:
    """The JAMS object as a dict (the same content :func:`write` streams)."""
    profile.check()
    beat = _annotation("beat", profile.duration)
    beat["data"] = list(beat_obs(profile))
    annotations = [beat]
    if profile.rhythm.positions_known:
        position = _annotation("beat_position", profile.duration)
        position["data"] = list(beat_position_obs(profile))
        annotations.append(position)
    annotations += _small_annotations(profile)
    return {
        "annotations": annotations,
        "file_metadata": _file_metadata(profile),
        "sandbox": _sandbox(profile),
    }


def _write_streamed(fp: TextIO, head: dict[str, Any], items: Iterator[dict[str, Any]]) -> None:
    """One annotation whose ``data`` list is streamed (an hour has ~7000 beats)."""
    fp.write(dumps(head)[:-1] + ',"data":')
    write_json_array(fp, items, _CHUNK)
    fp.write("}")


def write(profile: Profile, fp: TextIO) -> None:
    profile.check()
    fp.write('{"annotations":[')
    _write_streamed(fp, _annotation("beat", profile.duration), beat_obs(profile))
    if profile.rhythm.positions_known:
        fp.write(",")
        _write_streamed(
            fp, _annotation("beat_position", profile.duration), beat_position_obs(profile)
        )
    for ann in _small_annotations(profile):
        fp.write("," + dumps(ann))
    fp.write('],"file_metadata":' + dumps(_file_metadata(profile)))
    fp.write(',"sandbox":' + dumps(_sandbox(profile)) + "}\n")
