"""Serializers of a :class:`~featherbeat.analysis.profile.Profile`: Spotify JSON, ``.beats``, JAMS.

Every writer streams to a text file object, one object (beat, segment, ...) at a time, so an
hour-long mix never exists as one big string. Field-by-field meaning: docs/formats.md.

    >>> import io, featherbeat                                    # doctest: +SKIP
    >>> from featherbeat.analysis import formats                  # doctest: +SKIP
    >>> buf = io.StringIO()                                       # doctest: +SKIP
    >>> formats.write(featherbeat.analyze("song.mp3"), "beats", buf)  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TextIO

from featherbeat.analysis.profile import Profile

FORMATS: tuple[str, ...] = ("spotify", "beats", "jams")
"""Names accepted by :func:`write`; the first is the default everywhere."""

MEDIA_TYPES: dict[str, str] = {
    "spotify": "application/json",
    "beats": "text/plain; charset=utf-8",
    "jams": "application/json",
}

EXTENSIONS: dict[str, str] = {
    "spotify": ".json",
    "beats": ".beats",
    "jams": ".jams",
}


def write(profile: Profile, fmt: str, fp: TextIO) -> None:
    """Write ``profile`` in format ``fmt`` (one of :data:`FORMATS`) to the text stream ``fp``."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown output format {fmt!r}; choose one of {', '.join(FORMATS)}")
    # Imported on demand: a caller that writes .beats never pays for the JSON writers.
    module = importlib.import_module(f"featherbeat.analysis.formats.{fmt}")
    module.write(profile, fp)
