"""Peer: essentia's KeyExtractor (HPCP + key profiles) with several profile types.

    /tmp/peer-essentia/bin/python bench/peers/essentia_key.py FILE [FILE ...]

Prints one JSON line per file: {"file", "keys": {profile: [key, scale, strength]}}. The audio is
loaded once at 44.1 kHz (KeyExtractor's default rate) and every profile runs on the same signal
with KeyExtractor's other parameters at their defaults.
"""

import json
import sys

import essentia.standard as es

PROFILES = ("temperley", "krumhansl", "edma", "edmm", "bgate", "braw", "shaath")

extractors = {p: es.KeyExtractor(profileType=p) for p in PROFILES}
for path in sys.argv[1:]:
    audio = es.MonoLoader(filename=path, sampleRate=44100)()
    keys = {}
    for p, ex in extractors.items():
        key, scale, strength = ex(audio)
        keys[p] = [key, scale, float(strength)]
    print(json.dumps({"file": path, "keys": keys}), flush=True)
