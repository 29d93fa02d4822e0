"""The stage-5 corpus sources without rendering: ABC tunes through abc2midi (pickup bars moved
onto the bar grid), the Mutopia licence and pickup filter, and the .sf3 -> .sf2 decompressor.
The abc2midi test runs only where abc2midi (Debian package `abcmidi`) and mido are installed."""

from __future__ import annotations

import io
import shutil
import struct
import sys
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="module")
def abc_corpus(train_module):
    return train_module("abc_corpus")


@pytest.fixture(scope="module")
def mutopia(train_module):
    return train_module("mutopia_corpus")


@pytest.fixture(scope="module")
def sf3(train_module):
    return train_module("sf3_to_sf2")


JIG = """X: 7
T:Test Jig
M:6/8
L:1/8
Q:1/4=120
K:G
d|"G"g2g B2B|"D"A2A F2F|"G"GAB "C"c2e|"D"d3 d2d|
"G"g2g B2B|"D"A2A F2F|"G"GAB "D"AGF|"G"G3 G2:|
|:B|"G"d2d e2e|"D"f2f a2a|"G"g2g "C"e2c|"D"d3 d2d|
"G"g2g B2B|"D"A2A F2F|"G"GAB "D"AGF|"G"G3 G2:|
"""


def test_prepare_writes_tempo_and_instruments_into_the_header(abc_corpus):
    text, meter = abc_corpus.prepare(JIG, np.random.default_rng(0))
    assert meter == "6/8"
    lines = text.splitlines()
    k = next(i for i, ln in enumerate(lines) if ln.startswith("K:"))
    assert [ln for ln in lines[:k] if ln.startswith("Q:")] == [
        lines[k - 1]
    ]  # the tune's own Q: gone
    assert lines[k + 1].startswith("%%MIDI program ")
    # a dotted-quarter beat of 55-150 BPM is 1.5 times as many quarters
    qpm = int(lines[k - 1].split("=")[1])
    assert 55 * 1.5 - 1 <= qpm <= 150 * 1.5 + 1


@pytest.mark.parametrize(
    "header",
    ["M:6/8\nK:G\n[M:3/4] abc|", "M:5/4\nK:G\n", "M:none\nK:G\n"],
    ids=["two meters", "meter not taken", "free meter"],
)
def test_prepare_skips_what_it_cannot_label(abc_corpus, header):
    assert abc_corpus.prepare(f"X:1\nT:t\n{header}abc|abc|\n", np.random.default_rng(0)) is None


def test_split_tunes(abc_corpus):
    tunes = abc_corpus.split_tunes("% file\nX:1\nT:a\nK:C\nabc|\n\nX:2\nT:b\nK:C\ncde|\n")
    assert [t.splitlines()[1] for t in tunes] == ["T:a", "T:b"]


def test_a_pickup_bar_is_moved_onto_the_bar_grid(abc_corpus, tmp_path, train_module):
    mido = pytest.importorskip("mido")
    if shutil.which("abc2midi") is None:
        pytest.skip("abc2midi (Debian package abcmidi) not installed")
    midi_corpus = sys.modules.get("midi_corpus") or train_module("midi_corpus")
    out = tmp_path / "jig.mid"
    # The jig as written (Q:1/4=120, so an eighth is 0.25 s and a bar 1.5 s), no random header.
    res = abc_corpus.convert_one(JIG, "6/8", np.random.default_rng(3), tmp_path, out)
    assert res == "ok"
    piece = midi_corpus.parse(out)
    assert piece is not None and piece.meter_known
    mid = mido.MidiFile(str(out))
    onsets = sorted(
        t for t, msg in _abs(mid) if msg.type == "note_on" and msg.velocity > 0 and msg.channel == 0
    )
    pickup, first_bar = onsets[0], onsets[1]
    assert first_bar - pickup == pytest.approx(0.25, abs=0.01)  # the pickup is one eighth
    downbeats = piece.beats[piece.positions == 1]
    assert downbeats[0] == pytest.approx(first_bar, abs=0.01)
    np.testing.assert_allclose(np.diff(downbeats[:8]), 1.5, atol=0.01)
    np.testing.assert_allclose(np.diff(piece.beats[:8]), 0.75, atol=0.01)  # dotted quarters


def _abs(mid):
    """(seconds, message) of every message (one tempo, as abc2midi writes a Q: tune)."""
    tempo = 500000
    for track in mid.tracks:
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.type == "set_tempo":
                tempo = msg.tempo
            yield tick * tempo / 1e6 / mid.ticks_per_beat, msg


def _piece(tmp_path: Path, name: str, text: str) -> list[Path]:
    d = tmp_path / name
    d.mkdir()
    (d / f"{name}.ly").write_text(text)
    return [d / f"{name}.ly"]


SCORE = '\\version "2.22.0"\n\\header {{ {lic} }}\n\\score {{ {{ {music} }} \\layout {{}} \\midi {{}} }}\n'


@pytest.mark.parametrize(
    ("lic", "music", "verdict"),
    [
        ('license = "Public Domain"', "c'4 d' e' f'", "ok"),
        ('copyright = "Creative Commons Attribution-ShareAlike 3.0"', "c'4 d' e' f'", "ok"),
        ('license = "Creative Commons Attribution 4.0"', "c'4 d' e' f'", "ok"),
        ('license = "Creative Commons Attribution-NonCommercial 4.0"', "c'4", "licence"),
        ("", "c'4", "licence"),
        ('license = "Public Domain"', "\\partial 4 c'4 | d'1", "pickup or free time"),
        ('license = "Public Domain"', "\\cadenzaOn c'4 d' e'", "pickup or free time"),
    ],
)
def test_mutopia_keeps_only_free_pieces_without_a_pickup(mutopia, tmp_path, lic, music, verdict):
    files = _piece(tmp_path, "p", SCORE.format(lic=lic, music=music))
    got, mains = mutopia.piece_verdict(files)
    assert got == verdict
    assert (mains == files) if verdict == "ok" else (mains == [])


def test_mutopia_skips_sources_for_old_lilypond(mutopia, tmp_path):
    text = SCORE.format(lic='license = "Public Domain"', music="c'4").replace("2.22.0", "2.10.33")
    assert mutopia.piece_verdict(_piece(tmp_path, "old", text))[0] == "old lilypond"


def test_sf3_samples_are_decoded_into_sf2_frames(sf3, tmp_path):
    sf = pytest.importorskip("soundfile")
    if "OGG" not in sf.available_formats():
        pytest.skip("libsndfile without Ogg Vorbis")
    rng = np.random.default_rng(0)
    y = (0.3 * np.sin(np.arange(4000) * 0.05) + 0.01 * rng.normal(size=4000)).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, y, 22050, format="OGG", subtype="VORBIS")
    ogg = buf.getvalue()
    shdr = sf3.SHDR.pack(b"tone", 0, len(ogg), 100, 3000, 22050, 60, 0, 0, 1 | sf3.VORBIS)
    shdr += sf3.SHDR.pack(b"EOS", 0, 0, 0, 0, 0, 0, 0, 0, 0)
    pdta = b"pdta" + b"".join(sf3.chunk(c, b"\0" * 4) for c in (b"phdr", b"pbag", b"inst"))
    pdta += sf3.chunk(b"shdr", shdr)
    body = (
        b"sfbk"
        + sf3.chunk(b"LIST", b"INFO" + sf3.chunk(b"ifil", struct.pack("<HH", 3, 1)))
        + sf3.chunk(b"LIST", b"sdta" + sf3.chunk(b"smpl", ogg))
        + sf3.chunk(b"LIST", pdta)
    )
    src, dst = tmp_path / "t.sf3", tmp_path / "t.sf2"
    src.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    assert sf3.convert(src, dst) == 1
    data = dst.read_bytes()
    lists = {
        data[a : a + 4]: sf3.chunks(data, a + 4, b)
        for cid, a, b in sf3.chunks(data, 12, len(data))
        if cid == b"LIST"
    }
    ifil = next(data[a:b] for cid, a, b in lists[b"INFO"] if cid == b"ifil")
    assert struct.unpack("<HH", ifil) == (2, 1)
    smpl = next(data[a:b] for cid, a, b in lists[b"sdta"] if cid == b"smpl")
    new_shdr = next(data[a:b] for cid, a, b in lists[b"pdta"] if cid == b"shdr")
    _, start, end, ls, le, rate, _, _, _, typ = sf3.SHDR.unpack_from(new_shdr, 0)
    pcm = np.frombuffer(smpl, "<i2")
    assert (start, rate, typ) == (0, 22050, 1)  # Vorbis bit cleared
    assert end == pcm.size - 46 and abs(end - y.size) <= 1 and not pcm[end:].any()
    assert (ls, le) == (100, 3000)  # frames from the sample's start, start being 0
    decoded = pcm[:end].astype(np.float32) / 32768
    assert np.corrcoef(decoded[: y.size], y[: decoded.size])[0, 1] > 0.99


@pytest.mark.parametrize(
    ("num", "den", "bpm_now"),
    [(4, 4, 120.0), (6, 8, 80.0), (2, 2, 60.0)],  # a quarter at 120: the beat's tempo per meter
)
def test_mutopia_tempo_scale_counts_the_beat_of_the_meter(mutopia, num, den, bpm_now):
    mido = pytest.importorskip("mido")
    mid = mido.MidiFile()
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("time_signature", numerator=num, denominator=den, time=0))
    track.append(mido.MetaMessage("set_tempo", tempo=500000, time=0))
    mid.tracks.append(track)
    assert mutopia._tempo_scale(mid, 1.0) == pytest.approx(bpm_now)
    # scaling the microseconds per quarter by the factor puts the beat at the asked tempo
    assert mutopia._tempo_scale(mid, 100.0) == pytest.approx(bpm_now / 100.0)
