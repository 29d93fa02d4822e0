"""`featherbeat analyze`: single and batch modes, formats, errors, exit codes, stderr hygiene."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import signals

from featherbeat.cli import main

SR = 22050


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    clicks = signals.click_track(100.0, 12.0, 4)
    good = signals.write_audio(folder, "good", clicks.audio, SR, "mp3")
    other = signals.write_audio(folder, "other", clicks.audio, SR, "wav")
    bad = folder / "bad.mp3"
    bad.write_text("this is a text file, not music\n" * 10)
    return folder, good, other, bad


def test_one_file_to_stdout_as_spotify_json(audio, capfd):
    _, good, _, _ = audio
    assert main(["analyze", str(good)]) == 0
    out, err = capfd.readouterr()
    doc = json.loads(out)
    for key in ("meta", "track", "bars", "beats", "tatums", "sections", "segments", "featherbeat"):
        assert key in doc
    assert doc["track"]["tempo"] == pytest.approx(100.0, rel=0.04)
    assert err == ""  # no progress bar when stderr is not a terminal, no libmpg123 chatter


def test_one_file_to_output_file_and_folder(audio, tmp_path, capfd):
    _, good, _, _ = audio
    target = tmp_path / "x.beats"
    assert main(["analyze", str(good), "-o", str(target), "--format", "beats"]) == 0
    rows = np.loadtxt(target, ndmin=2)
    assert rows.shape[1] == 2 and rows.shape[0] > 10
    assert np.all(np.diff(rows[:, 0]) > 0) and set(rows[:, 1]) <= {1, 2, 3, 4, 5, 6, 7}
    assert oct(target.stat().st_mode & 0o777) != oct(0o600)  # not mkstemp's private mode
    assert main(["analyze", str(good), "-o", str(tmp_path), "-f", "jams", "-q"]) == 0
    assert json.loads((tmp_path / "good.jams").read_text())["file_metadata"]["duration"] > 11
    assert capfd.readouterr().out == ""


def test_batch_goes_on_past_a_bad_file(audio, tmp_path, capfd):
    _, good, other, bad = audio
    outdir = tmp_path / "out"
    code = main(["analyze", str(good), str(bad), str(other), "-o", str(outdir)])
    assert code == 1
    assert sorted(p.name for p in outdir.iterdir()) == ["good.json", "other.json"]
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.mp3" in err[0] and err[0].startswith("featherbeat: ")


def test_batch_with_the_same_stem_keeps_both(audio, tmp_path):
    folder, good, _, _ = audio
    twin = signals.write_audio(folder, "good", signals.noise(2.0), SR, "flac")
    assert main(["analyze", str(good), str(twin), "-o", str(tmp_path), "-f", "beats"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.flac.beats", "good.mp3.beats"]


def test_usage_errors(audio, tmp_path, capfd):
    _, good, other, _ = audio
    assert main(["analyze", str(good), str(other)]) == 2
    assert "-o FOLDER" in capfd.readouterr().err
    file_target = tmp_path / "f.json"
    file_target.write_text("{}")
    assert main(["analyze", str(good), str(other), "-o", str(file_target)]) == 2
    with pytest.raises(SystemExit) as exc:
        main(["analyze", str(good), "--format", "xml"])
    assert exc.value.code == 2


def test_missing_file_exit_code_and_one_line(tmp_path):
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.run(
        [sys.executable, "-m", "featherbeat.cli", "analyze", str(tmp_path / "nope.flac")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.strip() == f"featherbeat: {tmp_path / 'nope.flac'}: no such file"


def test_version():
    proc = subprocess.run(
        [sys.executable, "-m", "featherbeat.cli", "--version"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and proc.stdout.startswith("featherbeat ")


@pytest.mark.eval
def test_batch_on_real_recordings(eval_dir, tmp_path, capfd):
    """Real OGG Vorbis music (librosa's example tracks) through the batch mode, end to end."""
    names = ["librosa_brahms_hungarian_dance_5.ogg", "librosa_sweet_waltz.ogg"]
    files = [str(eval_dir / "unannotated" / n) for n in names]
    assert main(["analyze", *files, "-o", str(tmp_path), "-q"]) == 0
    for name in names:
        doc = json.loads((tmp_path / (name[:-4] + ".json")).read_text())
        assert doc["track"]["duration"] > 20 and 40 < doc["track"]["tempo"] < 220
        assert len(doc["beats"]) > 20 and len(doc["segments"]) > 50
        assert doc["meta"]["status_code"] == 0, doc["meta"]["detailed_status"]
    assert capfd.readouterr().err == ""


def _run_on_a_pty(cmd: list[str]) -> tuple[int, str]:
    """Run ``cmd`` with stderr on a pseudo-terminal; return (exit code, what stderr showed)."""
    import pty

    master, slave = pty.openpty()
    proc = subprocess.run(cmd, stderr=slave, stdout=subprocess.PIPE, timeout=60)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the pty is drained and closed
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.returncode, b"".join(chunks).decode()


def test_progress_bar_only_on_a_terminal_and_not_when_quiet(audio, tmp_path):
    _, good, _, _ = audio
    out = tmp_path / "o.json"
    cmd = [sys.executable, "-m", "featherbeat.cli", "analyze", str(good), "-o", str(out)]
    code, shown = _run_on_a_pty(cmd)
    assert code == 0 and json.loads(out.read_text())["beats"]
    assert "decoding" in shown and "100%" in shown and "#" * 30 in shown
    code, shown = _run_on_a_pty([*cmd, "--quiet"])
    assert code == 0 and shown == ""


def test_reader_closing_the_pipe_is_not_an_error(tmp_path):
    # Two minutes give a JSON far larger than a pipe's 64 kB buffer: the writer must hit EPIPE.
    y = signals.click_track(120.0, 120.0).audio + signals.noise(120.0, amplitude=0.05)
    path = signals.write_audio(tmp_path, "long", y, SR, "flac")
    cmd = [sys.executable, "-m", "featherbeat.cli", "analyze", str(path)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.read(10).startswith(b"{")
    proc.stdout.close()  # as `| head -c 10` does
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and err == b""
    full = subprocess.run(cmd, capture_output=True, timeout=60)
    assert len(full.stdout) > 2 * 65536


def test_max_minutes(audio, tmp_path, capfd):
    _, good, _, _ = audio  # 12 seconds
    assert main(["analyze", str(good), "--max-minutes", "0.1", "-o", str(tmp_path / "a.json")]) == 1
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "good.mp3" in err[0] and "limit" in err[0]
    assert not (tmp_path / "a.json").exists()
    assert main(["analyze", str(good), "--max-minutes", "1", "-o", str(tmp_path / "b.json")]) == 0
    with pytest.raises(SystemExit) as exc:
        main(["analyze", str(good), "--max-minutes", "0"])
    assert exc.value.code == 2
