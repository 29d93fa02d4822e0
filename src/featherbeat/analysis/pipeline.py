"""analyze(): one streaming pass of decode -> frames -> features, then rhythm -> structure -> profile.

CONTRACT (implemented by the core; the service and CLI rely on exactly this):

    analyze(source, progress=None, *, reduced=False, max_duration=None, rhythm=None) -> Profile

- ``source``: a path (str / os.PathLike) or a binary file object (seekable).
- ``progress(fraction: float, stage: str)``: called often (at most every ~1 % of the track);
  ``fraction`` is 0..1 over the whole analysis, ``stage`` a :class:`~.progress.Stage`
  (a str): DECODING, RHYTHM, STRUCTURE, then DONE.
- ``reduced=True``: rhythm and loudness only (what the service's watchdog retries with).
- ``max_duration``: seconds; raises InputTooLongError before decoding the whole file
  when the header says longer, or as soon as decoding passes it.
- ``rhythm``: "learned" (the small trained network of rhythm/learned.py, fed from the onset
  detector's spectrum during the streaming pass), "fused" (the onset-curve tracker with the
  network's cues, rhythm/fusion.py), "committee" (whichever of those and the DSP tracker's
  beats agree most with the others, rhythm/committee.py) or "dsp" (the onset-curve
  tracker); None = $FEATHERBEAT_RHYTHM, else rhythm.learned.DEFAULT_RHYTHM. Weights that are
  missing or damaged fall back to "dsp", recorded in ``missing["rhythm_model"]``.
- Raises DecodeError (a ValueError) only for input that cannot be read as audio.
  A failure in a later stage never loses the rest: the Profile records it in ``missing``.

    >>> import featherbeat
    >>> profile = featherbeat.analyze("song.mp3", progress=lambda f, s: print(f"{f:.0%} {s}"))  # doctest: +SKIP
    >>> profile.tempo, profile.rhythm.time_signature, profile.beats[:4]                       # doctest: +SKIP

The stages are written out in order in :func:`_analyze` (madmom's processing chains, mir_eval's
pure functions called by name). Each runs inside :func:`guard`: a stage that raises is
recorded in ``Profile.missing`` (``meta.status_code`` / ``detailed_status`` in the JSON), keeps
its empty default, and the stages after it run on what is there.
"""

from __future__ import annotations

import contextlib
import ctypes
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from featherbeat.analysis import rhythm
from featherbeat.analysis.decode import AudioInput, open_audio
from featherbeat.analysis.features._store import release_all
from featherbeat.analysis.features.onset import OnsetCurves, OnsetStrength
from featherbeat.analysis.features.peaks import WaveformPeaks
from featherbeat.analysis.features.spectrum import FrameCurves, FrameFeatures
from featherbeat.analysis.profile import ANALYSIS_SAMPLE_RATE, Curves, Profile
from featherbeat.analysis.progress import Progress, Stage
from featherbeat.analysis.rhythm.bars import with_intervals
from featherbeat.analysis.structure.fades import find_fades
from featherbeat.analysis.structure.key import estimate_key
from featherbeat.analysis.structure.loudness import track_loudness
from featherbeat.analysis.structure.sections import find_sections
from featherbeat.analysis.structure.segments import find_segments, sections_until

_MAX_PRESIZE_S = 4 * 3600.0

# Share of the progress bar per phase: decoding and features dominate the time.
_DECODE_SHARE = 0.75
_RHYTHM_SHARE = 0.15
_REDUCED_SKIP = "skipped (reduced analysis: rhythm and loudness only)"


class _Reporter:
    """Calls the user's progress callback, at most once per percent and never backwards."""

    def __init__(self, callback: Progress | None) -> None:
        self._callback = callback
        self._last = -1.0
        self._stage = ""

    def __call__(self, fraction: float, stage: str) -> None:
        if self._callback is None:
            return
        fraction = min(1.0, max(self._last, fraction, 0.0))
        if stage == self._stage and fraction - self._last < 0.01 and fraction < 1.0:
            return
        self._last, self._stage = fraction, stage
        self._callback(fraction, stage)


def _libc_malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None  # not glibc: the allocator keeps its own policy


_MALLOC_TRIM = _libc_malloc_trim()

# glibc mallopt() parameters (malloc.h) and glibc's initial values of the two thresholds.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_GLIBC_DEFAULT_THRESHOLD = 128 << 10


def _libc_mallopt() -> Callable[[int, int], int] | None:
    try:
        return ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return None  # not glibc: the allocator keeps its own policy


_MALLOPT = _libc_mallopt()


@contextlib.contextmanager
def _heap_for_streaming() -> Iterator[None]:
    """Let glibc reuse the heap for the streaming pass's temporaries instead of faulting in
    fresh pages for them block after block.

    Every decoded block allocates and frees a few megabytes of spectra. glibc's adaptive
    thresholds gave some of them their own mmap() and trimmed the heap top as soon as more than
    twice the largest freed block was free: measured on a 3-minute MP3, 60 000 page faults and
    ~0.08 CPU-s of system time in the decode pass (a tenth of the whole analysis). With fixed
    thresholds during the pass (blocks under 4 MB from the heap, its top kept up to 8 MB): 2 300
    faults. Larger arrays (the curves' up-front room for hours) are still mmap()ed, so their
    untouched pages stay address space. Afterwards both thresholds go back to glibc's initial
    128 kB (mallopt() cannot hand back the adaptive state), so the later stages' arrays are
    mmap()ed again as before and their peaks do not grow (an hour: 61-62 MB either way); the
    free heap is returned by ``_release_memory()`` as before.
    """
    if _MALLOPT is not None:
        _MALLOPT(_M_MMAP_THRESHOLD, 4 << 20)
        _MALLOPT(_M_TRIM_THRESHOLD, 8 << 20)
    try:
        yield
    finally:
        if _MALLOPT is not None:
            _MALLOPT(_M_MMAP_THRESHOLD, _GLIBC_DEFAULT_THRESHOLD)
            _MALLOPT(_M_TRIM_THRESHOLD, _GLIBC_DEFAULT_THRESHOLD)


def _release_memory() -> None:
    """Give freed heap pages back to the OS between stages.

    The decode loop and each stage free many megabyte-sized temporaries; glibc keeps the holes
    they leave in its heap, so the resident size only grows and each later stage's peak stacks
    on top of it. Measured on a 60-minute input: 65 -> 55 MB resident after the decode pass.
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
    # Curves kept in temp files (long inputs): the pages a stage read go back too.
    release_all()


@contextlib.contextmanager
def guard(profile: Profile, stage: str, *, trim: bool = True) -> Iterator[None]:
    """Run the block as stage ``stage``: an exception is recorded in ``profile.missing[stage]``
    and swallowed, so what the block would have assigned keeps its empty default.

    Why so broad: a bug or a memory error in, say, sections must not cost the user the beats
    that are already computed. The reason stays one short line naming the exception.
    ``trim`` gives the freed heap back afterwards (not per decoded block: too often).
    """
    try:
        yield
    except Exception as exc:
        text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        profile.missing[stage] = f"failed ({type(exc).__name__}{': ' + text if text else ''})"
    finally:
        if trim:
            _release_memory()


def _openblas() -> tuple[Any, Any] | None:
    """(set_num_threads, get_num_threads) of the OpenBLAS numpy loaded, or None."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line and ".so" in line}
        for path in sorted(paths):
            lib = ctypes.CDLL(path)
            for prefix in ("scipy_openblas", "openblas"):
                for suffix in ("64_", "_64_", ""):
                    setter = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                    getter = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                    if setter is not None and getter is not None:
                        return setter, getter
    except (OSError, IndexError):
        pass  # no /proc (not Linux) or an unreadable library: nothing to limit
    return None


@contextlib.contextmanager
def _one_blas_thread() -> Iterator[None]:
    """Run the block with OpenBLAS limited to one thread, then restore its setting.

    The features do many small matrix products; OpenBLAS answers each with a team of threads
    that spin between calls. Measured on a 3-minute MP3 on 2 cores: 2.98 CPU-s with the default
    threads against 0.54 CPU-s with one, for the same result. The CLI sets
    OPENBLAS_NUM_THREADS=1 before numpy loads; library callers (the service's child process)
    get the same here, at run time, as threadpoolctl would do it.
    """
    blas = _openblas()
    before = int(blas[1]()) if blas is not None else 0
    if blas is not None and before != 1:
        blas[0](1)
    try:
        yield
    finally:
        if blas is not None and before > 1:
            blas[0](before)


def _attach_model(profile: Profile, onset: OnsetStrength, chosen: str) -> Any:
    """The learned rhythm model as a sink of the onset detector, or None (DSP rhythm)."""
    from featherbeat.analysis.rhythm import learned

    if chosen not in learned.MODEL_MODES:
        return None
    try:
        streamed = learned.StreamedNet(learned.RhythmNet.load())
    except learned.ModelUnavailableError as exc:
        profile.missing["rhythm_model"] = f"{exc}; DSP tracker used"
        return None
    sink = learned.ModelInput(streamed.push)

    def guarded_sink(spec: np.ndarray, diff: np.ndarray) -> None:
        # A failing model must not take the onset curve (and the DSP fallback) with it.
        try:
            sink(spec, diff)
        except Exception as exc:
            profile.missing["rhythm_model"] = f"failed ({type(exc).__name__}); DSP tracker used"
            onset.sink = None

    onset.sink = guarded_sink
    return sink, streamed


def _rhythm_mode(profile: Profile, mode: str | None) -> str:
    """The tracker to run: ``mode``, $FEATHERBEAT_RHYTHM or the default; "dsp" (said in
    ``missing``) when the setting names no tracker."""
    from featherbeat.analysis.rhythm import learned

    try:
        return learned.resolve_mode(mode)
    except ValueError as exc:  # a bad FEATHERBEAT_RHYTHM: say so, analyse with DSP
        profile.missing["rhythm_model"] = f"{exc}; DSP tracker used"
        return "dsp"


def _finish_model(model: Any, curves: Curves) -> None:
    """Run the model's last block and put its outputs into the curves."""
    from featherbeat.analysis.rhythm import learned

    sink, streamed = model
    sink.flush()
    acts, logits = streamed.finish()
    curves.activations, curves.tempo_logits = acts, logits.astype(np.float32)
    curves.activation_rate = learned.frame_rate(curves.onset_rate)
    curves.activation_offset = learned.frame_time_offset(curves.onset_rate)


def _assemble(frame_rate: float, frames: FrameCurves | None, onset: OnsetCurves | None) -> Curves:
    """The one place the extractors' results become :class:`Curves` (a part whose extractor
    failed stays empty)."""
    curves = Curves(frame_rate=frame_rate)
    if frames is not None:
        curves.frame_rate = frames.frame_rate
        curves.loudness, curves.energy = frames.loudness, frames.energy
        curves.chroma, curves.timbre, curves.centroid = (
            frames.chroma,
            frames.timbre,
            frames.centroid,
        )
        curves.envelope, curves.envelope_rate = frames.envelope, frames.envelope_rate
    if onset is not None:
        curves.onset_rate, curves.onset, curves.onset_low = onset.rate, onset.onset, onset.low
        curves.bass_rate, curves.bass = onset.bass_rate, onset.bass
    return curves


def analyze(
    source: AudioInput,
    progress: Progress | None = None,
    *,
    reduced: bool = False,
    max_duration: float | None = None,
    rhythm: str | None = None,
) -> Profile:
    """Analyse one track: decode it once, streaming, then find rhythm and structure.

    ``source``: a path or a seekable binary file object, in any format libsndfile or FFmpeg
    reads (WAV, FLAC, OGG Vorbis, Opus, MP3, M4A/AAC, ...).

    ``progress(fraction, stage)``: called at most once per percent, never backwards;
    ``fraction`` runs 0..1 over the whole analysis and ``stage`` (a ``progress.Stage``) is
    "decoding", "rhythm", "structure", then "done".

    ``reduced=True``: rhythm and loudness only (segments, key and sections are skipped).

    ``max_duration``: seconds; InputTooLongError as soon as the header or the decoded audio
    passes it.

    ``rhythm``: the beat tracker, "learned" (a small trained network), "fused" (the onset-curve
    tracker with the network's cues), "committee" (whichever of those two and the DSP
    tracker's beats agree most with the others) or "dsp" (the onset-curve tracker); None means
    $FEATHERBEAT_RHYTHM, else the one that measures better on dev (today "fused").
    Missing or damaged weights fall back to "dsp" and say so in ``detailed_status``.

    Returns a :class:`Profile` (``tempo``, ``beats``, ``rhythm``, ``segments``, ``sections``,
    ``tonality``, ``curves`` ...). Raises DecodeError (a ValueError) only when the input cannot
    be read as audio at all. Anything short of that still gives a Profile: a later stage that
    fails, or an input cut short (the readable part is analysed), is named in
    ``Profile.missing`` and makes ``status_code`` 1 (``detailed_status`` says why).
    """
    with _one_blas_thread():
        return _analyze(
            source, progress, reduced=reduced, max_duration=max_duration, rhythm_mode=rhythm
        )


def _analyze(
    source: AudioInput,
    progress: Progress | None,
    *,
    reduced: bool,
    max_duration: float | None,
    rhythm_mode: str | None = None,
) -> Profile:
    started = time.perf_counter()
    report = _Reporter(progress)
    profile = Profile(timestamp=int(time.time()), reduced=reduced)

    # ---- one streaming pass: decode, features, onset, peaks --------------------------------
    stream = open_audio(source, max_duration=max_duration)  # DecodeError propagates: bad input
    # Pre-size the curves from the header, but never trust it beyond a few hours: a lying
    # header must not reserve gigabytes of address space.
    hint = min(stream.duration_hint or 0.0, max_duration or _MAX_PRESIZE_S, _MAX_PRESIZE_S)
    expected = int(hint * ANALYSIS_SAMPLE_RATE)
    features = FrameFeatures(reduced=reduced, expected_frames=expected // 512 + 2)
    peaks = WaveformPeaks(capacity=expected // 441 + 2)
    onset = OnsetStrength(sample_rate=ANALYSIS_SAMPLE_RATE)
    chosen = _rhythm_mode(profile, rhythm_mode)
    model = _attach_model(profile, onset, chosen)
    consumers: dict[str, Callable[[np.ndarray], None]] = {
        "features": features.push,
        "peaks": peaks.push,
        "onset": onset.push,
    }
    report(0.0, Stage.DECODING)
    with stream, _heap_for_streaming():
        for block in stream:
            for name, push in list(consumers.items()):
                # A consumer that breaks is dropped and recorded; decoding and the others go on.
                with guard(profile, name, trim=False):
                    push(block)
                if name in profile.missing:
                    del consumers[name]
            report(_DECODE_SHARE * stream.fraction, Stage.DECODING)
    profile.source = stream.source_info()
    if stream.truncated:
        profile.missing["decode"] = (
            f"input truncated: {stream.truncated}; analysed the readable part"
        )

    frame_curves: FrameCurves | None = None
    onset_curves: OnsetCurves | None = None
    if "features" in consumers:
        with guard(profile, "features"):
            frame_curves = features.finish()
    if "peaks" in consumers:
        with guard(profile, "peaks"):
            profile.peaks = peaks.finish()
    if "onset" in consumers:
        with guard(profile, "onset"):
            onset_curves = onset.finish()
    curves = profile.curves = _assemble(features.frame_rate, frame_curves, onset_curves)
    if model is not None and onset_curves is not None and "rhythm_model" not in profile.missing:
        with guard(profile, "rhythm_model"):
            _finish_model(model, curves)
    # The extractors' work buffers are no longer needed.
    del features, peaks, onset, stream, consumers, frame_curves, onset_curves, model
    _release_memory()

    # ---- rhythm -------------------------------------------------------------------------------
    report(_DECODE_SHARE, Stage.RHYTHM)
    duration = profile.source.duration
    with guard(profile, "rhythm"):
        found = with_intervals(rhythm.track(curves, reduced=reduced, mode=chosen), duration)
        found.check()  # a rhythm whose lists do not line up counts as failed
        profile.rhythm = found

    # ---- structure ------------------------------------------------------------------------------
    report(_DECODE_SHARE + _RHYTHM_SHARE, Stage.STRUCTURE)
    if reduced:
        for stage in ("segments", "key", "sections"):
            profile.missing[stage] = _REDUCED_SKIP
    else:
        with guard(profile, "segments"):
            segments = find_segments(curves, duration)
            segments.check()
            profile.segments = segments
        with guard(profile, "key"):
            profile.tonality = estimate_key(curves.chroma)
        report(_DECODE_SHARE + _RHYTHM_SHARE + 0.04, Stage.STRUCTURE)
        with guard(profile, "sections"):
            profile.sections = sections_until(find_sections(curves, profile.rhythm), duration)
    report(0.97, Stage.STRUCTURE)
    profile.start_of_fade_out = duration  # Spotify's "no fade-out", kept if fades fail
    with guard(profile, "fades"):
        profile.end_of_fade_in, profile.start_of_fade_out = find_fades(curves, duration)
    with guard(profile, "loudness"):
        # With segments: track loudness must agree with their levels (structure/loudness.py).
        profile.loudness = track_loudness(curves, profile.segments)

    profile.analysis_time = time.perf_counter() - started
    report(1.0, Stage.DONE)
    return profile
