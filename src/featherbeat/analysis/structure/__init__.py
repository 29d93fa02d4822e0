"""Structure: segments, key/mode, sections, fades and track loudness, computed from the Curves.

Pure functions over compact per-frame arrays (numpy only). Memory is linear in the number of
frames or beats: sections use a windowed novelty (no full self-similarity matrix), so an
hour-long mix costs a few MB here. Entry points (what the pipeline calls):

- ``segments.find_segments(curves) -> Segments``
- ``key.estimate_key(chroma) -> Tonality``
- ``sections.find_sections(curves, rhythm) -> list[Section]``
- ``fades.find_fades(curves, duration) -> (end_of_fade_in, start_of_fade_out)``
- ``loudness.track_loudness(curves) -> float``
"""
