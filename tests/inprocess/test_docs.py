"""The documents say what the program does (issue 10.11): each claim below is read from the
doc and checked against the running code, so a change to either shows up here."""

from __future__ import annotations

import gzip
import io
import json
import re
from pathlib import Path

from featherbeat.jobs.log import log_event
from featherbeat.testing import signals

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SRC = ROOT / "src" / "featherbeat"


def test_formats_input_process_example_is_what_the_analysis_writes(tmp_path: Path) -> None:
    import numpy as np

    import featherbeat
    from featherbeat.analysis import formats

    doc = (DOCS / "formats.md").read_text()
    example = re.search(r"`input_process` \| how the audio was read, e\.g\. `\"([^\"]+)\"`", doc)
    assert example, "formats.md lost its input_process example"
    y = signals.click_track(120.0, 3.0).audio
    stereo = signals.to_rate(np.stack([y, y], axis=1), signals.SR, 44100)
    path = signals.write_audio(tmp_path, "x", stereo, 44100, "mp3")
    out = io.StringIO()
    formats.write(featherbeat.analyze(path), "spotify", out)
    assert json.loads(out.getvalue())["meta"]["input_process"] == example.group(1)


def test_the_415_message_names_every_format_the_api_doc_lists(tmp_path: Path) -> None:
    from featherbeat.web.sniff import NotAudioError, sniff

    doc = (DOCS / "api.md").read_text()
    # The list in "It is sniffed from its headers (...) (WAV, FLAC, ..., AU; duration ...)".
    listed = re.search(r"\((WAV, [^;)]+);", " ".join(doc.split()))
    assert listed, "api.md lost its list of sniffed formats"
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"certainly not audio " * 50)
    try:
        sniff(junk)
    except NotAudioError as exc:
        message = str(exc)
    else:
        raise AssertionError("junk bytes were taken for audio")
    for name in re.split(r",\s*", listed.group(1)):
        first = name.split("/")[0].split()[0]  # "Ogg Vorbis/Opus/FLAC" -> "Ogg"
        assert re.search(rf"\b{re.escape(first)}\b", message, re.IGNORECASE), (first, message)


def test_every_log_event_the_architecture_names_is_logged() -> None:
    doc = (DOCS / "architecture.md").read_text()
    line = doc[doc.index("jobs/log.py: one JSON log line") :]
    line = line[: line.index("```")]
    named = re.findall(r"`(job\.[a-z_]+)`", line)
    assert len(named) >= 5, line
    code = "\n".join(p.read_text() for p in SRC.rglob("*.py"))
    logged = set(re.findall(r"log_event\(\s*f?\"(job\.[a-z_{}.]+)\"", code))
    if "job.{outcome.ending.value}" in logged:  # runner logs job.lost / job.stopped this way
        logged |= {"job.lost", "job.stopped"}
    assert set(named) <= logged, (set(named) - logged, logged)
    assert callable(log_event)


def test_user_guide_page_size_is_the_size_of_the_page() -> None:
    guide = (DOCS / "user-guide.md").read_text().replace("\n", " ")
    claim = re.search(r"about (\d+) kB of source, (\d+) kB gzipped", guide)
    assert claim, "user-guide.md lost its page size"
    web = SRC / "web"
    files = [p for p in (web / "static").rglob("*") if p.is_file()] + [web / "templates/page.html"]
    raw = sum(p.stat().st_size for p in files) / 1024
    packed = sum(len(gzip.compress(p.read_bytes(), 9)) for p in files) / 1024
    assert abs(raw - int(claim.group(1))) <= 0.1 * raw, raw
    assert abs(packed - int(claim.group(2))) <= 0.1 * packed, packed


def test_readme_says_what_make_test_installs_and_how_without_root() -> None:
    """Issue 10.9: `make test` installs redis-server and Chromium with apt as root; the README
    says so, and what to install by hand without root, on Ubuntu and on macOS."""
    readme = (ROOT / "README.md").read_text()
    for needed in ("make run", "make test", "root", "redis-server", "Chromium", "apt-get"):
        assert needed in readme, needed
    for where in ("Without root", "Ubuntu", "macOS", "brew install redis", "CHROMIUM="):
        assert where in readme, where
    makefile = (ROOT / "Makefile").read_text()
    assert "test: $(STAMP) system-deps" in makefile  # what the README describes


def test_system_deps_takes_a_chromium_named_by_chromium(tmp_path: Path) -> None:
    """A Chromium that is not `chromium` on PATH (macOS, Playwright's build) is named by
    CHROMIUM; the script then installs nothing and reports both programs."""
    import os
    import subprocess

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_redis = bin_dir / "redis-server"
    fake_redis.write_text("#!/bin/sh\necho 'Redis server v=7.9.9 sha=0'\n")
    fake_chrome = tmp_path / "Chromium.app-chrome"
    fake_chrome.write_text("#!/bin/sh\necho 'Chromium 999.0 (fake)'\n")
    for f in (fake_redis, fake_chrome):
        f.chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "CHROMIUM": str(fake_chrome),
        "HOME": str(tmp_path),
    }
    # A system chromium may be on that PATH too: the fake one's version in the report shows
    # that CHROMIUM, not PATH, chose the browser.
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "system-deps.sh")],
        capture_output=True,
        text=True,
        env={**env, "LANG": os.environ.get("LANG", "C")},
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert "v=7.9.9" in done.stdout and "Chromium 999.0 (fake)" in done.stdout


def _render_env() -> dict[str, str]:
    """render.yaml's `envVars` as key -> value (the blueprint is flat enough for a regex)."""
    text = (ROOT / "render.yaml").read_text()
    pairs = re.findall(r"- key: (\w+)\n\s+value: \"?([^\"\n]+)\"?", text)
    return dict(pairs)


def test_render_blueprint_admits_a_file_as_long_as_its_own_duration_limit() -> None:
    """A first user on the free plan uploads a 128 kbit/s MP3 of the stated maximum length: the
    upload limit must not refuse it first (100 MB was ~1.7 h against a 2-hour limit)."""
    env = _render_env()
    max_duration = float(env["FEATHERBEAT_MAX_DURATION"])
    upload_bytes = float(env["FEATHERBEAT_MAX_UPLOAD_MB"]) * 1024 * 1024
    assert upload_bytes >= max_duration * 128_000 / 8 * 1.02  # 2 % for tags and framing
    # The same figures as the deployment page states them.
    deployment = (DOCS / "deployment.md").read_text()
    assert f"FEATHERBEAT_MAX_UPLOAD_MB={env['FEATHERBEAT_MAX_UPLOAD_MB']}" in deployment
    assert f"FEATHERBEAT_MAX_DURATION={env['FEATHERBEAT_MAX_DURATION']}" in deployment
