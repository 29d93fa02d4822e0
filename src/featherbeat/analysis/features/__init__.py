"""Streaming feature extractors: aubio-style objects fed block by block, then ``finish()``.

``FrameFeatures`` (features/spectrum.py) runs one STFT (2048-point Hann, hop 512, 43.07 frames/s at
22 050 Hz) and feeds its power spectrum to loudness/energy, chroma, timbre and centroid;
``WaveformPeaks`` (features/peaks.py) reads the samples; ``OnsetStrength`` (features/onset.py)
has its own finer STFT because beat times are read from it. Every object keeps only its
compact per-frame output, never the signal.

This package imports nothing at load time so that importing one extractor stays cheap.
"""
