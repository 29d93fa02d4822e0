"""`featherbeat analyze`: single and batch modes, formats, errors, exit codes, stderr hygiene."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from featherbeat.cli import main
from featherbeat.testing import signals

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
    code = main(["analyze", str(good), str(bad), str(other), "-o", f"{outdir}/"])
    assert code == 1
    assert sorted(p.name for p in outdir.iterdir()) == ["good.json", "other.json"]
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.mp3" in err[0] and err[0].startswith("featherbeat: ")


def test_batch_with_the_same_stem_keeps_both(audio, tmp_path):
    folder, good, _, _ = audio
    twin = signals.write_audio(folder, "good", signals.noise(2.0), SR, "flac")
    assert main(["analyze", str(good), str(twin), "-o", str(tmp_path), "-f", "beats"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.flac.beats", "good.mp3.beats"]


def test_a_trailing_slash_always_means_a_folder(audio, tmp_path, capfd):
    """Issue 10.1: `-o out/` with one input (a shell glob that matched one file) writes
    out/<name>.json, never a file called `out`; several inputs with a name that is not a folder
    are a usage error, never a folder created under a file's name."""
    _, good, other, _ = audio
    assert main(["analyze", str(good), "-o", f"{tmp_path / 'out'}/", "-q"]) == 0
    assert (tmp_path / "out").is_dir()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.json"]
    # The next batch into it works (it used to fail: "out exists and is not a folder").
    assert main(["analyze", str(good), str(other), "-o", f"{tmp_path / 'out'}/", "-q"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.json", "other.json"]
    capfd.readouterr()
    assert main(["analyze", str(good), str(other), "-o", str(tmp_path / "single.json")]) == 2
    assert not (tmp_path / "single.json").exists()
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "single.json" in err[0] and "FOLDER/" in err[0]


def test_usage_errors(audio, tmp_path, capfd):
    _, good, other, _ = audio
    assert main(["analyze", str(good), str(other)]) == 2
    assert "-o FOLDER" in capfd.readouterr().err
    file_target = tmp_path / "f.json"
    file_target.write_text("{}")
    assert main(["analyze", str(good), str(other), "-o", str(file_target)]) == 2
    assert "is a file" in capfd.readouterr().err
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


def _cut_mp3(folder):
    """An MP3 with a Xing header (it tells the full length) cut to its first 8 %."""
    y = signals.click_track(120.0, 30.0).audio + signals.noise(30.0, amplitude=0.05)
    whole = signals.write_audio(folder, "whole", y, SR, "mp3")
    cut = folder / "cut.mp3"
    cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.08)])
    return cut


def _lying_wav(folder):
    """A WAV whose header claims six hours and holds two seconds."""
    import struct

    path = signals.write_audio(folder, "liar", signals.noise(2.0), SR, "wav")
    data = bytearray(path.read_bytes())
    i = data.find(b"data")
    data[i + 4 : i + 8] = struct.pack("<I", 6 * 3600 * SR * 2)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("make", [_cut_mp3, _lying_wav])
def test_truncated_input_gets_one_warning_line_even_when_quiet(tmp_path, make):
    """Issue 10.2: a cut-off input is analysed (the readable part) and the user is told, on
    stderr, in one line naming the problem; --quiet silences progress, not warnings."""
    path = make(tmp_path)
    out = tmp_path / "out.json"
    cmd = [sys.executable, "-m", "featherbeat.cli", "analyze", str(path), "-o", str(out), "-q"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0  # the output is usable
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"featherbeat: {path}: warning: decode: input truncated: ")
    assert "header says" in lines[0]
    meta = json.loads(out.read_text())["meta"]
    assert meta["status_code"] == 1 and "truncated" in meta["detailed_status"]


def test_help_says_it_rather_than_pointing_at_source():
    """Issue 10.10: the help and the library's docstring explain; they do not send the reader
    to a source file."""
    import featherbeat
    from featherbeat.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    helptext = sub.choices["analyze"].format_help()
    assert ".py" not in helptext and "--via URL" in helptext
    assert "FEATHERBEAT_API_TOKEN" in helptext
    doc = featherbeat.analyze.__doc__
    assert "module docstring" not in doc
    for word in ("progress", "max_duration", "reduced", "DecodeError", "status_code"):
        assert word in doc


@pytest.mark.parametrize("tracker", ["fused", "learned", "committee", "dsp"])
def test_each_rhythm_tracker_is_a_cli_choice(audio, capfd, tracker):
    _, good, _, _ = audio
    from featherbeat.analysis.pipeline import analyze

    assert main(["analyze", "--rhythm", tracker, str(good)]) == 0
    doc = json.loads(capfd.readouterr().out)
    # The tracker asked for is the one that ran (the learned one reads these clicks at 50).
    assert doc["track"]["tempo"] == pytest.approx(
        analyze(str(good), rhythm=tracker).rhythm.tempo, abs=1e-3
    )
    assert doc["track"]["tempo"] in (pytest.approx(100.0, rel=0.04), pytest.approx(50.0, rel=0.04))


def test_an_unknown_rhythm_tracker_is_refused(audio, capfd):
    _, good, _, _ = audio
    with pytest.raises(SystemExit) as exit_:
        main(["analyze", "--rhythm", "oracle", str(good)])
    assert exit_.value.code == 2
    assert "oracle" in capfd.readouterr().err
