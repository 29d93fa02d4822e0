"""Peer: essentia's multi-feature beat tracker (RhythmExtractor2013, method "multifeature").

    /tmp/peer-essentia/bin/python bench/peers/essentia_beats.py FILE [FILE ...]

Prints one JSON line per file: {"file", "tempo", "beats"}; "tempo" is essentia's own BPM.
"""

import json
import sys

import essentia.standard as es

for path in sys.argv[1:]:
    audio = es.MonoLoader(filename=path, sampleRate=44100)()
    bpm, ticks, _conf, _est, _intervals = es.RhythmExtractor2013(method="multifeature")(audio)
    print(
        json.dumps({"file": path, "tempo": float(bpm), "beats": [float(b) for b in ticks]}),
        flush=True,
    )
