"""Peer: the textbook key finder, librosa's chroma_cqt averaged over the clip and correlated
with the 24 rotations of the Krumhansl-Kessler probe-tone profiles.

    /tmp/peer-librosa/bin/python bench/peers/librosa_key.py FILE [FILE ...]

Prints one JSON line per file: {"file", "key": "A minor", "score": r}.
"""

import json
import sys

import librosa
import numpy as np

NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
# Krumhansl & Kessler (1982) probe-tone ratings, index 0 = tonic.
MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])

for path in sys.argv[1:]:
    y, sr = librosa.load(path, sr=22050, mono=True)
    chroma = librosa.feature.chroma_cqt(y=y, sr=sr).mean(axis=1)
    best = (-2.0, "")
    for mode, prof in (("major", MAJOR), ("minor", MINOR)):
        for k in range(12):
            r = float(np.corrcoef(chroma, np.roll(prof, k))[0, 1])
            if r > best[0]:
                best = (r, f"{NAMES[k]} {mode}")
    print(json.dumps({"file": path, "key": best[1], "score": best[0]}), flush=True)
