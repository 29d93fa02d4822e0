"""featherbeat: a machine's reading of a music track (tempo, beats, bars, sections, segments,
loudness, key) in bounded memory, as Spotify's audio-analysis JSON and more.

    >>> import featherbeat
    >>> profile = featherbeat.analyze("song.mp3")          # doctest: +SKIP
    >>> profile.tempo, len(profile.beats)                   # doctest: +SKIP

The heavy modules load on first use so that ``import featherbeat`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
"""The one home of the version: pyproject.toml reads it from here (``dynamic = ["version"]``)."""

if TYPE_CHECKING:
    from featherbeat.analysis.pipeline import analyze
    from featherbeat.analysis.profile import Profile

__all__ = ["Profile", "__version__", "analyze"]


def __getattr__(name: str) -> Any:
    if name == "analyze":
        from featherbeat.analysis.pipeline import analyze

        return analyze
    if name == "Profile":
        from featherbeat.analysis.profile import Profile

        return Profile
    raise AttributeError(f"module 'featherbeat' has no attribute {name!r}")
