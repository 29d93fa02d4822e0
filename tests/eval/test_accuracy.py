"""Accuracy floor on real music: the first clip of each genre of ../shared/eval/dev, scored
with mir_eval through the product (featherbeat.analyze). Skips when the eval set is absent.
The full benchmark, with peers side by side, is bench/accuracy.py (docs/benchmarks/accuracy.md)."""

from __future__ import annotations

import csv

import mir_eval
import numpy as np
import pytest

import featherbeat

pytestmark = pytest.mark.eval


def _first_of_each_genre(dev) -> list[dict]:
    seen: dict[str, dict] = {}
    with open(dev / "manifest.csv") as fh:
        for row in csv.DictReader(fh):
            seen.setdefault(row["genre"], row)
    return list(seen.values())


def test_accuracy_floor(eval_dir):
    dev = eval_dir / "dev"
    f, amlt, acc2, dbf = [], [], [], []
    for row in _first_of_each_genre(dev):
        ann = np.loadtxt(dev / f"{row['name']}.beats", ndmin=2)
        r = featherbeat.analyze(dev / row["audio_file"]).rhythm
        scores = mir_eval.beat.evaluate(ann[:, 0], r.beats.astype(np.float64))
        f.append(scores["F-measure"])
        amlt.append(scores["Any Metric Level Total"])
        ref = 60.0 / np.median(np.diff(ann[:, 0]))
        acc2.append(any(abs(r.tempo - k * ref) <= 0.04 * k * ref for k in (1, 2, 0.5, 3, 1 / 3)))
        if ann.shape[1] > 1:
            down = ann[ann[:, 1] == 1, 0]
            dbf.append(
                mir_eval.beat.f_measure(
                    mir_eval.beat.trim_beats(down),
                    mir_eval.beat.trim_beats(r.downbeats.astype(np.float64)),
                )
            )
    print(
        f"F {np.mean(f):.3f} AMLt {np.mean(amlt):.3f} Acc2 {np.mean(acc2):.3f} DbF {np.mean(dbf):.3f}"
    )
    # Floors under what we measure on these 13 clips (F 0.80, AMLt 0.94, Acc2 1.0, DbF 0.47),
    # one clip's worth (~0.08) below, so that a real regression fails but a changed chroma
    # from the features stage does not by itself.
    assert np.mean(f) >= 0.72
    assert np.mean(amlt) >= 0.88
    assert np.mean(acc2) >= 0.84
    assert np.mean(dbf) >= 0.30
