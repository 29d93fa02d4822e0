"""Decompress an .sf3 soundfont (Ogg Vorbis samples, MuseScore's format) into a plain .sf2.

fluidsynth decodes every compressed sample of an .sf3 each time it starts (11 s and 500 MB for
MuseScore General), and the corpus starts it once per window; decoded once into an .sf2 the
same instruments load in a fraction of a second. The preset, instrument and generator chunks
are copied unchanged; only the sample data and the sample headers are rewritten:

- sf3 sample header: start/end are byte offsets of the sample's Ogg stream inside `smpl` (end
  exclusive), the
  loop points are frames from the sample's own start, type bit 0x10 marks Vorbis;
- sf2 sample header: start/end/loop points are frames in `smpl` (16-bit PCM), each sample
  followed by 46 zero frames (the SoundFont 2.01 rule).

    python train/sf3_to_sf2.py /usr/share/sounds/sf3/MuseScore_General.sf3 \
        train/out/MuseScore_General.sf2
"""

from __future__ import annotations

import argparse
import io
import struct
from pathlib import Path

import numpy as np
import soundfile as sf

VORBIS = 0x10
SHDR = struct.Struct("<20sIIIIIBbHH")


def chunks(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """(id, payload start, payload end) of the RIFF chunks in data[start:end]."""
    out = []
    pos = start
    while pos + 8 <= end:
        cid, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        out.append((cid, pos + 8, pos + 8 + size))
        pos += 8 + size + (size & 1)
    return out


def chunk(cid: bytes, payload: bytes) -> bytes:
    return cid + struct.pack("<I", len(payload)) + payload + (b"\0" if len(payload) & 1 else b"")


def convert(src: Path, dst: Path) -> int:
    data = src.read_bytes()
    if data[:4] != b"RIFF" or data[8:12] != b"sfbk":
        raise SystemExit(f"{src}: not a SoundFont")
    lists = {}
    for cid, a, b in chunks(data, 12, len(data)):
        if cid == b"LIST":
            lists[data[a : a + 4]] = chunks(data, a + 4, b)
    smpl = next(data[a:b] for cid, a, b in lists[b"sdta"] if cid == b"smpl")
    pdta = [(cid, data[a:b]) for cid, a, b in lists[b"pdta"]]
    shdr = next(p for cid, p in pdta if cid == b"shdr")
    pcm: list[np.ndarray] = []
    headers = []
    frame = 0
    n_vorbis = 0
    for k in range(len(shdr) // SHDR.size):
        name, start, end, ls, le, rate, pitch, corr, link, typ = SHDR.unpack_from(
            shdr, k * SHDR.size
        )
        if name.rstrip(b"\0") == b"EOS" and k == len(shdr) // SHDR.size - 1:
            headers.append(SHDR.pack(name, 0, 0, 0, 0, 0, 0, 0, 0, 0))
            break
        if typ & VORBIS:
            y, _ = sf.read(io.BytesIO(smpl[start:end]), dtype="int16")
            if y.ndim > 1:
                y = y[:, 0]
            n_vorbis += 1
            ls_abs, le_abs = frame + ls, frame + le
            typ &= ~VORBIS
        else:  # already PCM (frames into the old smpl)
            y = np.frombuffer(smpl, "<i2")[start:end].copy()
            ls_abs, le_abs = frame + (ls - start), frame + (le - start)
        n = y.size
        headers.append(
            SHDR.pack(name, frame, frame + n, ls_abs, le_abs, rate, pitch, corr, link, typ)
        )
        pcm.append(y.astype("<i2"))
        pcm.append(np.zeros(46, "<i2"))
        frame += n + 46
    new_shdr = b"".join(headers)
    info = []
    for cid, a, b in lists[b"INFO"]:
        payload = data[a:b]
        if cid == b"ifil":
            payload = struct.pack("<HH", 2, 1)
        info.append(chunk(cid, payload))
    sdta = chunk(b"smpl", np.concatenate(pcm).tobytes())
    pd = [chunk(cid, new_shdr if cid == b"shdr" else p) for cid, p in pdta]
    body = (
        b"sfbk"
        + chunk(b"LIST", b"INFO" + b"".join(info))
        + chunk(b"LIST", b"sdta" + sdta)
        + chunk(b"LIST", b"pdta" + b"".join(pd))
    )
    tmp = dst.with_suffix(".tmp")
    tmp.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    tmp.replace(dst)
    return n_vorbis


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("src")
    ap.add_argument("dst")
    args = ap.parse_args()
    n = convert(Path(args.src), Path(args.dst))
    print(f"{args.dst}: {n} samples decoded", flush=True)


if __name__ == "__main__":
    main()
