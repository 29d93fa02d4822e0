"""Is this upload audio, which container, and how long? From its headers, in pure Python.

The web process must stay small (the whole service has 200 MB): soundfile would load numpy
(~15 MB) and PyAV the FFmpeg libraries (~18 MB) into every web worker. A few header reads
answer the two questions the upload needs (415 not audio, 422 too long) in microseconds; the
analysis child decodes the file for real and fails the job with a clear reason if the body
turns out to be broken.

``sniff(path) -> Sniffed(format, duration)``; ``duration`` is None when the container does not
say it cheaply (e.g. Matroska); raises ``NotAudioError`` for anything we do not recognise.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import BinaryIO

HEAD = 64 * 1024


class NotAudioError(ValueError):
    """The bytes are not in an audio container we can decode."""


@dataclass(frozen=True)
class Sniffed:
    format: str
    duration: float | None
    media_type: str


_MEDIA = {
    "wav": "audio/wav",
    "flac": "audio/flac",
    "ogg": "audio/ogg",
    "opus": "audio/ogg",
    "mp3": "audio/mpeg",
    "m4a": "audio/mp4",
    "aac": "audio/aac",
    "aiff": "audio/aiff",
    "caf": "audio/x-caf",
    "webm": "audio/webm",
    "wma": "audio/x-ms-wma",
    "au": "audio/basic",
}


def sniff(path: str | os.PathLike[str]) -> Sniffed:
    size = os.path.getsize(path)
    if size == 0:
        raise NotAudioError("the file is empty")
    with open(path, "rb") as fp:
        head = fp.read(HEAD)
        fmt, duration = _detect(fp, head, size)
    if duration is not None and duration <= 0:
        raise NotAudioError(f"the {fmt.upper()} file contains no audio")
    return Sniffed(fmt, duration, _MEDIA[fmt])


def _detect(fp: BinaryIO, head: bytes, size: int) -> tuple[str, float | None]:
    if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        return "wav", _wav(head, size)
    if head[:4] == b"fLaC":
        return "flac", _flac(head)
    if head[:4] == b"OggS":
        return _ogg(fp, head, size)
    if head[4:8] == b"ftyp":
        return "m4a", _mp4(fp, size)
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff", _aiff(head)
    if head[:4] == b"caff":
        return "caf", None
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "webm", None
    if head[:16] == bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c"):
        return "wma", None
    if head[:4] == b".snd":
        return "au", None
    return _mpeg(head, size)


def _wav(head: bytes, size: int) -> float | None:
    pos, byte_rate, data_size = 12, 0, None
    while pos + 8 <= len(head):
        cid, csize = head[pos : pos + 4], struct.unpack("<I", head[pos + 4 : pos + 8])[0]
        if cid == b"fmt " and pos + 16 <= len(head):
            byte_rate = struct.unpack("<I", head[pos + 16 : pos + 20])[0]
        elif cid == b"data":
            # Streamed/RF64 files put 0 or 0xFFFFFFFF here: use what is actually there.
            data_size = csize if 0 < csize < 0xFFFFFFFF else size - pos - 8
            data_size = min(data_size, size - pos - 8)
            break
        pos += 8 + csize + (csize & 1)
    if not byte_rate:
        raise NotAudioError("the WAV file has no valid format chunk")
    if data_size is None:
        return None
    return data_size / byte_rate


def _flac(head: bytes) -> float | None:
    if len(head) < 8 + 34 or head[4] & 0x7F != 0:
        raise NotAudioError("the FLAC file has no STREAMINFO block")
    info = head[8:42]
    rate = (info[10] << 12) | (info[11] << 4) | (info[12] >> 4)
    total = ((info[13] & 0x0F) << 32) | struct.unpack(">I", info[14:18])[0]
    if not rate:
        raise NotAudioError("the FLAC file has no sample rate")
    return total / rate if total else None


def _ogg_audio(payload: bytes) -> tuple[str, int] | None:
    """(format, sample rate) if this first packet of a stream starts Opus, Vorbis or FLAC."""
    if payload.startswith(b"OpusHead"):
        return "opus", 48000
    if payload.startswith(b"\x01vorbis") and len(payload) >= 16:
        return "ogg", struct.unpack("<I", payload[12:16])[0]
    if payload.startswith(b"\x7fFLAC") and len(payload) >= 9 + 8 + 34:
        info = payload[17:51]
        return "ogg", (info[10] << 12) | (info[11] << 4) | (info[12] >> 4)
    return None


def _ogg(fp: BinaryIO, head: bytes, size: int) -> tuple[str, float | None]:
    # Every stream starts with a BOS page, all before any other page: the audio one need not
    # be the first (Theora cover art, a skeleton track).
    pos, found = 0, None
    while found is None and pos + 27 <= len(head) and head[pos : pos + 4] == b"OggS":
        if not head[pos + 5] & 0x02:  # past the BOS pages
            break
        segments = head[pos + 26]
        start = pos + 27 + segments
        length = sum(head[pos + 27 : start])
        audio = _ogg_audio(head[start : start + length])
        if audio is not None:
            found = (audio, head[pos + 14 : pos + 18])
        pos = start + length
    if found is None:
        raise NotAudioError("the Ogg file holds no Vorbis, Opus or FLAC audio")
    (fmt, rate), serial = found
    payload = head[pos - length : pos]
    # The last page of the audio stream: its granule position is the length in samples.
    fp.seek(max(0, size - HEAD))
    tail = fp.read(HEAD)
    at = len(tail)
    while (at := tail.rfind(b"OggS", 0, at)) >= 0:
        if tail[at + 14 : at + 18] == serial:
            break
    if at < 0 or at + 14 > len(tail) or not rate:
        return fmt, None
    granule = struct.unpack("<q", tail[at + 6 : at + 14])[0]
    if fmt == "opus":
        granule -= struct.unpack("<H", payload[10:12])[0]  # pre-skip
    return fmt, (granule / rate if granule > 0 else None)


# Top-level MP4 boxes walked before giving up on the duration: real files have a handful (a
# fragmented one a few thousand); a crafted one with millions kept the web process busy 13 s.
MAX_MP4_BOXES = 20_000


def _mp4(fp: BinaryIO, size: int) -> float | None:
    # Walk the top-level boxes to moov (often at the end), then its mvhd.
    pos = 0
    for _ in range(MAX_MP4_BOXES):
        if pos + 8 > size:
            break
        fp.seek(pos)
        box = fp.read(16)
        if len(box) < 8:
            break
        length, kind = struct.unpack(">I4s", box[:8])
        header = 8
        if length == 1 and len(box) >= 16:
            length, header = struct.unpack(">Q", box[8:16])[0], 16
        elif length == 0:
            length = size - pos
        if length < header:
            break
        if kind == b"moov":
            body = fp.read(min(length - header, HEAD)) if header == 8 else fp.read(HEAD)
            body = (box[8:] + body) if header == 8 else body
            at = body.find(b"mvhd")
            if at < 4:
                return None
            mv = body[at + 4 :]
            if mv[:1] == b"\x01":
                scale, dur = struct.unpack(">IQ", mv[20:32])
            else:
                scale, dur = struct.unpack(">II", mv[12:20])
            return dur / scale if scale else None
        pos += length
    return None


def _aiff(head: bytes) -> float | None:
    at = head.find(b"COMM")
    if at < 0 or at + 26 > len(head):
        raise NotAudioError("the AIFF file has no COMM chunk")
    frames = struct.unpack(">I", head[at + 10 : at + 14])[0]
    exp, mant = struct.unpack(">HQ", head[at + 16 : at + 26])  # 80-bit extended float
    rate = mant * 2.0 ** ((exp & 0x7FFF) - 16383 - 63) if mant else 0.0
    return frames / rate if rate else None


_MP3_BITRATES = {
    (3, 1): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),  # MPEG1 L3
    (3, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),  # MPEG1 L2
    (3, 3): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),  # MPEG1 L1
}
_MP3_LSF = (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)  # MPEG2/2.5 L2/L3
_MP3_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _frame(head: bytes, i: int) -> tuple[int, int, int, int] | None:
    """(frame length, sample rate, samples per frame, bitrate kbps) of an MPEG audio frame."""
    if i + 4 > len(head) or head[i] != 0xFF or head[i + 1] & 0xE0 != 0xE0:
        return None
    version, layer = (head[i + 1] >> 3) & 3, (head[i + 1] >> 1) & 3
    bidx, ridx, pad = head[i + 2] >> 4, (head[i + 2] >> 2) & 3, (head[i + 2] >> 1) & 1
    if version == 1 or layer == 0 or bidx in (0, 15) or ridx == 3:
        return None
    kbps = _MP3_BITRATES[(3, layer)][bidx] if version == 3 else _MP3_LSF[bidx]
    rate = _MP3_RATES[version][ridx]
    if layer == 3:  # Layer I
        return (12 * kbps * 1000 // rate + pad) * 4, rate, 384, kbps
    samples = 1152 if (layer == 2 or version == 3) else 576
    return samples // 8 * kbps * 1000 // rate + pad, rate, samples, kbps


def _mpeg(head: bytes, size: int) -> tuple[str, float | None]:
    start = 0
    if head[:3] == b"ID3" and len(head) >= 10:
        tag = (head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9]
        start = 10 + tag + (10 if head[5] & 0x10 else 0)
        if start + 4 > len(head):
            # A huge tag (cover art): trust the tag, measure from what follows it later.
            return "mp3", None
    if len(head) > start + 1 and head[start] == 0xFF and head[start + 1] & 0xF6 == 0xF0:
        return "aac", None  # ADTS AAC
    # Find two consecutive valid frames near the start (a lone 0xFFE could be anything).
    limit = min(len(head) - 4, start + 8192)
    for i in range(start, max(start, limit)):
        first = _frame(head, i)
        if first is None or _frame(head, i + first[0]) is None:
            continue
        length, rate, samples, kbps = first
        frame = head[i : i + length]
        for marker in (b"Xing", b"Info"):
            at = frame.find(marker)
            if at >= 0 and frame[at + 7] & 1:
                frames = struct.unpack(">I", frame[at + 8 : at + 12])[0]
                return "mp3", frames * samples / rate
        at = frame.find(b"VBRI")
        if at >= 0:
            frames = struct.unpack(">I", frame[at + 14 : at + 18])[0]
            return "mp3", frames * samples / rate
        return "mp3", (size - i) * 8 / (kbps * 1000)  # constant bitrate estimate
    raise NotAudioError(
        "the file is not in an audio format we can read "
        "(MP3, WAV, FLAC, OGG, Opus, M4A/AAC, AIFF, AU, WebM, WMA)"
    )
