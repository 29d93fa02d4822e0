"""bench/codecs.py caches readings under a stamp of the weights *and* the analysis code."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("bench_codecs", ROOT / "bench" / "codecs.py")
assert _spec is not None and _spec.loader is not None
codecs_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(codecs_bench)


def test_readings_stamp_changes_with_the_analysis_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Readings cached under one weights file were reused after a code change that moved every
    # confidence (issue 11): the stamp must also cover the analysis sources.
    import featherbeat.analysis

    real = Path(featherbeat.analysis.__file__).resolve().parent
    copy = tmp_path / "analysis"
    shutil.copytree(real, copy, ignore=shutil.ignore_patterns("__pycache__", "*.npz"))
    monkeypatch.setattr(featherbeat.analysis, "__file__", str(copy / "__init__.py"))
    before = codecs_bench.analysis_stamp()
    assert codecs_bench.analysis_stamp() == before  # deterministic
    tempo = copy / "rhythm" / "tempo.py"
    tempo.write_text(tempo.read_text() + "\n# a change\n")
    assert codecs_bench.analysis_stamp() != before


def test_readings_stamp_follows_the_weights_file_in_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A candidate's readings (FEATHERBEAT_RHYTHM_WEIGHTS) were cached under the packaged
    # weights' stamp: the stamp must hash the file the analysis actually loads.
    from featherbeat.analysis.rhythm import learned

    monkeypatch.delenv("FEATHERBEAT_RHYTHM_WEIGHTS", raising=False)
    packaged = codecs_bench.analysis_stamp()
    candidate = tmp_path / "candidate.npz"
    candidate.write_bytes(learned.WEIGHTS_PATH.read_bytes() + b"\0")
    monkeypatch.setenv("FEATHERBEAT_RHYTHM_WEIGHTS", str(candidate))
    assert codecs_bench.analysis_stamp() != packaged
    monkeypatch.setenv("FEATHERBEAT_RHYTHM_WEIGHTS", str(learned.WEIGHTS_PATH))
    assert codecs_bench.analysis_stamp() == packaged
