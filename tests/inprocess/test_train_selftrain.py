"""The self-training corpus (train/selftrain_corpus.py): which windows of a pseudo-labelled
track are kept, and when their downbeats are trusted; and the trainer's reading of the new
shard fields (that part runs only where torch is installed: the `train` extra)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def st(train_module):
    return train_module("selftrain_corpus")


def _grid(bpm: float, t0: float, t1: float, meter: int, phase: int = 0):
    beats = np.arange(t0, t1, 60.0 / bpm)
    pos = ((np.arange(beats.size) + phase) % meter + 1).astype(np.int16)
    return beats, pos


def _readings(dur: float, **modes) -> dict[str, np.ndarray]:
    z: dict[str, np.ndarray] = {"duration": np.float64(dur)}
    for m, (beats, pos) in modes.items():
        z[f"{m}_beats"], z[f"{m}_pos"] = beats, pos
    return z


def test_agreeing_readings_keep_every_window_with_their_bars(st):
    b, p = _grid(120, 0.3, 180, 4)
    z = _readings(180, fused=(b, p), dsp=(b + 0.01, p), learned=(b - 0.02, p))
    ws = st.windows(z, 0.9, 0.8, np.random.default_rng(0))
    assert len(ws) == 5  # (180 - 2) // 30 windows of 30 s
    for w in ws:
        assert w.down_ok
        assert w.beats.min() >= 0 and w.beats.max() < 30
        # The labels are the fused reading, shifted to the window's start.
        assert np.allclose(np.diff(w.beats), 0.5)
        assert w.pos.max() == 4


def test_a_tempo_octave_disagreement_drops_the_window(st):
    b, p = _grid(120, 0.3, 180, 4)
    half, hp = _grid(60, 0.3, 180, 4)
    z = _readings(180, fused=(b, p), dsp=(b, p), learned=(half, hp))
    assert st.windows(z, 0.9, 0.8, np.random.default_rng(0)) == []


def test_off_beat_readings_drop_the_window(st):
    b, p = _grid(100, 0.3, 120, 4)
    z = _readings(120, fused=(b, p), dsp=(b, p), learned=(b + 0.3, p))
    assert st.windows(z, 0.9, 0.8, np.random.default_rng(1)) == []


def test_disagreeing_bars_keep_the_beats_and_mask_the_downbeats(st):
    b, p = _grid(120, 0.3, 120, 4)
    _, shifted = _grid(120, 0.3, 120, 4, phase=2)
    z = _readings(120, fused=(b, p), dsp=(b, p), learned=(b, shifted))
    ws = st.windows(z, 0.9, 0.8, np.random.default_rng(2))
    assert len(ws) == 3
    assert not any(w.down_ok for w in ws)


def test_f_measure_matches_one_to_one(st):
    ref = np.array([1.0, 2.0, 3.0])
    assert st.f_measure(ref, ref + 0.05) == pytest.approx(1.0)
    assert st.f_measure(ref, ref + 0.08) == 0.0
    # Two estimates near one reference count once.
    assert st.f_measure(ref, np.array([1.0, 1.01])) == pytest.approx(
        2 * 0.5 * (1 / 3) / (0.5 + 1 / 3)
    )


def test_trainer_masks_downbeats_of_untrusted_pseudo_windows(tmp_path, train_module):
    pytest.importorskip("torch")
    train = train_module("train")
    x = np.zeros((1300, 72), np.float16)
    beats = np.arange(0.5, 29.5, 0.5).astype(np.float32)
    pos = (np.arange(beats.size) % 4 + 1).astype(np.int16)
    np.savez(
        tmp_path / "shard_00000.npz", n=np.int64(1), **{"0_x": x, "0_beats": beats, "0_pos": pos}
    )
    np.savez(
        tmp_path / "shard_pseudo_00000.npz",
        n=np.int64(1),
        **{
            "0_x": x,
            "0_beats": beats,
            "0_pos": pos,
            "0_source": np.array("pkg:track.ogg"),
            "0_pseudo": np.int8(1),
            "0_down_ok": np.int8(0),
        },
    )
    data: list[dict] = []
    train.load_shards([tmp_path], set(), data)
    old, new = data  # sorted: shard_00000 before shard_pseudo_00000
    assert (old["pseudo"], old["real"], old["down_ok"]) == (False, False, True)
    assert (new["pseudo"], new["real"], new["down_ok"]) == (True, False, False)
    rng = np.random.default_rng(0)
    *_, down_mask = train.batch(data, rng, 8, 256, 0.0, [], 0.0, 0.0, [1], 1.0)
    assert down_mask.tolist() == [0.0] * 8  # every crop from the pseudo window: masked
    # With a pseudo share, the rest of the crops come from the other corpora only.
    *_, down_mask = train.batch(data, rng, 16, 256, 0.0, [], 0.0, 0.0, [1], 1e-9)
    assert down_mask.tolist() == [1.0] * 16


def _wav(path, seconds: float, freq: float) -> None:
    import wave

    t = np.arange(int(seconds * 8000)) / 8000.0
    y = (0.3 * np.sin(2 * np.pi * freq * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(y.tobytes())


@pytest.mark.skipif(
    __import__("shutil").which("ffprobe") is None or __import__("shutil").which("git") is None,
    reason="needs ffprobe and git",
)
def test_git_songs_are_taken_at_their_commit_and_evaluation_copies_refused(st, tmp_path):
    """A git source (stage 7's songs with vocals) through a local mirror: the file at the
    pinned commit is listed, a later commit's change is not seen, short files are left out,
    and a copy of an evaluation file (by sha256) is refused."""
    import subprocess

    work = tmp_path / "work"
    (work / "songs").mkdir(parents=True)
    _wav(work / "songs" / "long.wav", 50.0, 440.0)
    _wav(work / "songs" / "short.wav", 10.0, 330.0)
    git = ["git", "-C", str(work), "-c", "user.name=t", "-c", "user.email=t@t.invalid"]
    subprocess.run(["git", "init", "-q", str(work)], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "one"], check=True)
    commit = subprocess.run(
        [*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    pinned = (work / "songs" / "long.wav").read_bytes()
    _wav(work / "songs" / "long.wav", 60.0, 220.0)  # a later commit changes the song
    subprocess.run([*git, "commit", "-q", "-am", "two"], check=True)
    mirrors = tmp_path / "mirrors"
    subprocess.run(
        ["git", "clone", "-q", "--bare", str(work), str(mirrors / "someone+songs" / "repo")],
        check=True,
    )
    src = st.midi_corpus.Source("songs", "https://github.com/someone/songs", commit, "songs", "x")

    root = tmp_path / "root"
    rows: list = []
    st.fetch_git(root, [src], mirrors, rows, set(), set())
    assert [(r[0], r[1]) for r in rows] == [("songs", "git/songs/long.wav")]
    assert (root / "git/songs/long.wav").read_bytes() == pinned
    assert abs(float(rows[0][2]) - 50.0) < 0.1

    refused: list = []
    st.fetch_git(tmp_path / "root2", [src], mirrors, refused, set(), {rows[0][3]})
    assert refused == []
    assert not (tmp_path / "root2/git/songs/long.wav").exists()  # not even copied to disk
