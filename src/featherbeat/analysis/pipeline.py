"""analyze(): one streaming pass of decode -> frames -> features, then rhythm -> structure -> profile.

CONTRACT (implemented by the core; the service and CLI rely on exactly this):

    analyze(source, progress=None, *, reduced=False, max_duration=None) -> Profile

- ``source``: a path (str / os.PathLike) or a binary file object (seekable).
- ``progress(fraction: float, stage: str)``: called often (at most every ~1 % of the track);
  ``fraction`` is 0..1 over the whole analysis, ``stage`` one of
  "decoding", "rhythm", "structure", "done".
- ``reduced=True``: rhythm and loudness only (what the service's watchdog retries with).
- ``max_duration``: seconds; raises InputTooLongError before decoding the whole file
  when the header says longer, or as soon as decoding passes it.
- Raises DecodeError (a ValueError) only for input that cannot be read as audio.
  A failure in a later stage never loses the rest: the Profile records it in ``missing``.
"""

from __future__ import annotations
