"""featherbeat: a machine's reading of a music track (tempo, beats, bars, sections, segments,
loudness, key) in bounded memory, as Spotify's audio-analysis JSON and more.

    >>> import featherbeat
    >>> profile = featherbeat.analyze("song.mp3")          # doctest: +SKIP
    >>> profile.tempo, len(profile.beats)                   # doctest: +SKIP

The heavy modules load on first use so that ``import featherbeat`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from featherbeat.analysis.pipeline import analyze
    from featherbeat.analysis.profile import Profile

    __version__: str

__all__ = ["Profile", "__version__", "analyze"]


def _version() -> str:
    """The version pyproject.toml declares (its one home), as installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("featherbeat")
    except PackageNotFoundError:  # a source tree on sys.path that was never installed
        return "0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        value = _version()
        globals()["__version__"] = value  # looked up once
        return value
    if name == "analyze":
        from featherbeat.analysis.pipeline import analyze

        return analyze
    if name == "Profile":
        from featherbeat.analysis.profile import Profile

        return Profile
    raise AttributeError(f"module 'featherbeat' has no attribute {name!r}")
