"""Serializers of a :class:`~featherbeat.analysis.profile.Profile`: Spotify JSON, ``.beats``, JAMS.

The registry below (names, media types, file extensions) is the one place these facts live;
the CLI, the job child and the web API all read it. Importing this package loads no numpy, so
every layer can use the registry cheaply; the writers load on the first :func:`write`.

Every writer streams to a text file object, one object (beat, segment, ...) at a time, so an
hour-long mix never exists as one big string. Field-by-field meaning: docs/formats.md.

    >>> import io, featherbeat                                    # doctest: +SKIP
    >>> from featherbeat.analysis import formats                  # doctest: +SKIP
    >>> buf = io.StringIO()                                       # doctest: +SKIP
    >>> formats.write(featherbeat.analyze("song.mp3"), "beats", buf)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, TextIO

if TYPE_CHECKING:
    from featherbeat.analysis.profile import Profile


class Format(NamedTuple):
    name: str
    media_type: str  # the HTTP Content-Type of a result in this format
    extension: str  # of a file the CLI writes


REGISTRY: tuple[Format, ...] = (
    Format("spotify", "application/json", ".json"),
    Format("beats", "text/plain; charset=utf-8", ".beats"),
    Format("jams", "application/json", ".jams"),
)

FORMATS: tuple[str, ...] = tuple(f.name for f in REGISTRY)
"""Names accepted by :func:`write`; the first is the default everywhere."""

MEDIA_TYPES: dict[str, str] = {f.name: f.media_type for f in REGISTRY}
EXTENSIONS: dict[str, str] = {f.name: f.extension for f in REGISTRY}


def write(profile: Profile, fmt: str, fp: TextIO) -> None:
    """Write ``profile`` in format ``fmt`` (one of :data:`FORMATS`) to the text stream ``fp``."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown output format {fmt!r}; choose one of {', '.join(FORMATS)}")
    # Here, not at the top: the registry must stay importable without numpy. Only the writer
    # asked for: the others' modules are start-up cost of every CLI run (~3 ms for JAMS).
    if fmt == "spotify":
        from featherbeat.analysis.formats import spotify

        spotify.write(profile, fp)
    elif fmt == "beats":
        from featherbeat.analysis.formats import beats

        beats.write(profile, fp)
    else:
        from featherbeat.analysis.formats import jams

        jams.write(profile, fp)
