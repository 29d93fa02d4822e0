"""Peer: librosa's beat tracker. Run with a python that has librosa (a throwaway venv).

    /tmp/peer-librosa/bin/python bench/peers/librosa_beats.py FILE [FILE ...]

Prints one JSON line per file: {"file", "tempo", "beats"}; "tempo" is librosa's own estimate.
"""

import json
import sys

import librosa
import numpy as np

for path in sys.argv[1:]:
    y, sr = librosa.load(path, sr=22050, mono=True)
    tempo, frames = librosa.beat.beat_track(y=y, sr=sr)
    beats = librosa.frames_to_time(frames, sr=sr)
    print(
        json.dumps(
            {
                "file": path,
                "tempo": float(np.atleast_1d(tempo)[0]),
                "beats": [float(b) for b in beats],
            }
        ),
        flush=True,
    )
