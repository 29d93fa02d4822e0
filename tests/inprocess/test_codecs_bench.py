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
