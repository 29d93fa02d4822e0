"""The paired comparison of bench/accuracy.py (--compare): sign test and per-clip counts.

It decides whether a change to the rhythm stage is a gain or noise, so it is tested like code
of the product. No audio needed."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "bench" / "accuracy.py"
_spec = importlib.util.spec_from_file_location("bench_accuracy", _PATH)
acc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(acc)


def test_sign_test_values():
    assert acc.sign_test(0, 0) == 1.0
    assert acc.sign_test(3, 3) == 1.0
    # 10 wins, 0 losses: 2 * (1/2)^10
    assert math.isclose(acc.sign_test(10, 0), 2.0 / 1024.0)
    assert math.isclose(acc.sign_test(0, 10), 2.0 / 1024.0)
    # 5 vs 1: 2 * (1 + 6) / 64
    assert math.isclose(acc.sign_test(5, 1), 14.0 / 64.0)
    # Two clips flipping the right way out of 63 is no evidence at all.
    assert acc.sign_test(2, 0) == 0.5


def test_sign_test_rejects_negative_counts():
    with pytest.raises(ValueError):
        acc.sign_test(-1, 2)


def test_paired_counts_ties_and_missing_files():
    before = {"a": {"F": 0.5}, "b": {"F": 0.9}, "c": {"F": 0.7}, "d": {"F": 0.1}}
    after = {"a": {"F": 0.8}, "b": {"F": 0.9}, "c": {"F": 0.6}, "e": {"F": 1.0}}
    c = acc.paired(before, after, "F")
    assert c["n"] == 3  # only files scored by both runs
    assert (c["better"], c["worse"]) == (1, 1)  # "b" is a tie
    assert math.isclose(c["before"], (0.5 + 0.9 + 0.7) / 3)
    assert math.isclose(c["after"], (0.8 + 0.9 + 0.6) / 3)
    assert c["p"] == 1.0


def test_paired_metric_absent_and_table():
    before = {"a": {"F": 0.5}}
    assert acc.paired(before, before, "DbF")["n"] == 0
    text = acc.compare_text(before, {"a": {"F": 0.75}})
    assert "| F | 1 | 0.500 | 0.750 | 1 | 0 |" in text


def test_oracle_takes_the_best_run_per_clip(tmp_path, capsys):
    one = {"a": {"F": 0.5, "DbF": 0.2}, "b": {"F": 0.9}}
    two = {"a": {"F": 0.7, "DbF": math.nan}, "b": {"F": 0.4}, "c": {"F": 0.1}}
    best = acc.oracle([one, two])
    assert best["F"] == (pytest.approx((0.7 + 0.9 + 0.1) / 3), 3)
    assert best["DbF"] == (pytest.approx(0.2), 1)  # NaN and missing scores are no choice
    assert math.isnan(best["CMLt"][0]) and best["CMLt"][1] == 0
    paths = []
    for i, run in enumerate((one, two)):
        paths.append(tmp_path / f"{i}.json")
        paths[-1].write_text(json.dumps(run))
    assert acc.main(["--oracle", *map(str, paths)]) == 0
    assert "F 0.567 (n 3)" in capsys.readouterr().out


def test_cached_curves_give_the_products_rhythm(tmp_path, monkeypatch):
    """--cached-curves re-runs only the rhythm stage on curves cached by
    bench/fusion_weights.py; its beats, tempo and downbeats must be the product's for the same
    audio (else a decoder change measured on them would not be the product's change)."""
    import featherbeat
    from featherbeat.testing.browser import drum_track

    monkeypatch.syspath_prepend(str(_PATH.parent))
    import fusion_weights

    monkeypatch.setattr(fusion_weights, "CACHE", tmp_path / "cache")
    audio = str(drum_track(tmp_path / "drums.wav"))
    cache = acc.fill_curve_cache([audio], 1)
    assert cache.parent == tmp_path / "cache" and (cache / "drums.npz").exists()
    for mode in ("fused", "dsp"):
        est = acc.run_cached(audio, mode, str(cache))
        r = featherbeat.analyze(audio, rhythm=mode).rhythm
        assert len(est["beats"]) > 20 and len(est["downbeats"]) > 5
        assert est["beats"] == r.beats.tolist()
        assert est["downbeats"] == r.downbeats.tolist()
        assert est["tempo"] == r.tempo and est["meter"] == r.time_signature
