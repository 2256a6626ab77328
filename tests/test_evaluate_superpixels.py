"""Superpixel benchmark: scores follow from the definitions on a synthetic set."""
import json

import numpy as np

from evaluate import superpixels, synth
from evaluate.__main__ import main


def test_overlap_and_scores_on_exact_partition():
    gt = np.zeros((20, 20), np.int64)
    gt[5:15, 5:15] = 1
    ov = superpixels.overlap(gt.copy(), gt, 2)
    assert ov.tolist() == [[300, 0], [0, 100]]
    assert superpixels.boundary_recall(gt, gt) == 1.0


def test_cli_single_config(tmp_path):
    synth.generate(tmp_path / "d", n_sequences=1, n_frames=3, height=60, width=108, n_objects=2, seed=2)
    assert main(["superpixels", "--davis", str(tmp_path / "d"), "--year", "2017", "--alg", "fh",
                 "--scale", "100", "--min-size", "20", "--out", str(tmp_path / "o")]) == 0
    rows = json.loads((tmp_path / "o" / "superpixels.json").read_text())["rows"]
    r = rows[0]
    # the union of mostly-inside superpixels can never be worse than one superpixel literally kept
    assert r["union"]["J"] >= r["first"]["J"] - 1e-9
    assert 0 <= r["ue"] <= 1 and 0 < r["asa"] <= 1 and r["n_sp"] >= 1
    assert (tmp_path / "o" / "superpixels.md").read_text().startswith("| config")
