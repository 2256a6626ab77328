"""Superpixel benchmark: hand-computed BR/UE/ASA, the store's own label maps, resumable sweep, real DAVIS."""
import json
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from spixwalk.evaluate import superpixel_benchmark, superpixel_metrics
from spixwalk.evaluate.cli import main
from spixwalk.evaluate.davis_io import load_frame, write_listing

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"real DAVIS data not found at {DATA}")
REPO = Path(__file__).resolve().parents[1]


def test_boundary_recall_hand_cases():
    gt = np.zeros((8, 8), int)
    gt[:, 4:] = 1  # boundary pixels: column 3 (right neighbour differs), 8 pixels
    sp = np.zeros((8, 8), int)
    sp[:, 6:] = 1  # superpixel boundary at column 5: 2 columns away
    assert superpixel_metrics.boundaries(gt).sum() == 8 and superpixel_metrics.boundaries(gt)[:, 3].all()
    assert superpixel_metrics.boundary_recall(sp, gt, tol=2) == 1.0
    assert superpixel_metrics.boundary_recall(sp, gt, tol=1) == 0.0
    sp[:4, 4:] = 2  # now rows 0-3 also have a boundary at column 3
    assert superpixel_metrics.boundary_recall(sp, gt, tol=0) == 0.5
    assert np.isnan(superpixel_metrics.boundary_recall(sp, np.zeros_like(gt)))  # nothing to recall


def test_undersegmentation_error_and_asa_hand_cases():
    gt = np.zeros((4, 4), int)
    gt[:, 2:] = 1  # two 8-pixel segments
    assert superpixel_metrics.undersegmentation_error(gt, gt) == 0.0 and superpixel_metrics.achievable_accuracy(gt, gt) == 1.0
    sp = np.zeros((4, 4), int)
    sp[:, 3:] = 1  # superpixel 0 = 8 px of segment 0 + 4 px of segment 1; superpixel 1 = 4 px of segment 1
    # UE: superpixel 0 leaks min(8, 4) + min(4, 8) = 8; superpixel 1 min(4, 0) = 0 -> 8 / 16
    assert superpixel_metrics.overlap(sp, gt).tolist() == [[8, 4], [0, 4]]
    assert superpixel_metrics.undersegmentation_error(sp, gt) == 0.5
    assert superpixel_metrics.achievable_accuracy(sp, gt) == 12 / 16
    assert superpixel_metrics.undersegmentation_error(np.zeros_like(gt), gt) == 1.0  # one superpixel, half inside


def test_cropped_j_and_f_equal_the_whole_frame():
    from spixwalk.evaluate.metrics import boundary_radius, f_boundary, jaccard

    rng = np.random.default_rng(0)
    for _ in range(50):
        a, b = np.zeros((60, 90), bool), np.zeros((60, 90), bool)
        for m in (a, b):
            y, x = rng.integers(0, 60), rng.integers(0, 90)
            m[y:y + rng.integers(1, 30), x:x + rng.integers(1, 30)] = True
        assert superpixel_benchmark.j_and_f(a, b, boundary_radius(a.shape)) == (float(jaccard(a, b)), f_boundary(a, b))


def copy_frames(dst, seq="blackswan", n=7):
    src = DATA / "davis2016-val"
    for kind, ext in (("JPEGImages", "jpg"), ("Annotations", "png")):
        (dst / kind / "480p" / seq).mkdir(parents=True, exist_ok=True)
        for t in range(n):
            shutil.copy(src / kind / "480p" / seq / f"{t:05d}.{ext}", dst / kind / "480p" / seq)
    return dst


def bench(root, out, *extra):
    return main(["superpixels", "--davis", str(root), "--year", "2016", "--sequences", "blackswan",
                 "--every", "3", "--jobs", "1", "--out", str(out), *extra])


@needs_data
def test_benchmark_scores_the_maps_the_store_holds(tmp_path):
    from spixwalk.preprocess.superpixels import label_video

    root = copy_frames(tmp_path / "d")
    # options spelled as preprocess spells them; the row is named as the store names the configuration
    assert bench(root, tmp_path / "o", "--alg", "lsc", "--region-size", "47", "--lsc-iterations", "2") == 0
    (row,) = json.loads((tmp_path / "o" / "superpixels.json").read_text())["rows"]
    assert row["config"] == "lsc-r47-a0.5-i2" and row["frames"] == 3  # frames 0, 3, 6
    frames = [cv2.resize(load_frame(root / "JPEGImages/480p/blackswan" / f"{t:05d}.jpg"), (256, 256),
                         interpolation=cv2.INTER_AREA) for t in (0, 3, 6)]
    _, nseg = label_video(np.stack(frames), "lsc", {"region_size": 47, "ratio": 0.5, "iterations": 2})
    assert row["n_sp"] == pytest.approx(nseg.mean())  # exactly the store's segment counts
    # the union of mostly-inside superpixels is never worse than one superpixel kept literally
    assert row["union"]["J"] >= row["first"]["J"] and 0 < row["asa"] <= 1 and 0 <= row["ue"] <= 1
    assert 0 < row["br"] <= 1


@needs_data
def test_sweep_results_are_kept_per_configuration_and_a_rerun_continues(tmp_path, capsys):
    root = copy_frames(tmp_path / "d", n=4)
    configs = "slic-n10-c30,fh-s600-g0.5-m400"
    assert bench(root, tmp_path / "o", "--configs", configs) == 0
    done = tmp_path / "o" / "configs"
    assert sorted(p.name for p in done.glob("*.json")) == ["fh-s600-g0.5-m400.json", "slic-n10-c30.json"]
    saved = json.loads((done / "slic-n10-c30.json").read_text())
    saved["row"]["br"] = -1.0  # a marker: kept if the rerun does not recompute this configuration
    (done / "slic-n10-c30.json").write_text(json.dumps(saved))
    (done / "fh-s600-g0.5-m400.json").unlink()
    capsys.readouterr()
    assert bench(root, tmp_path / "o", "--configs", configs) == 0
    assert "1 of 2 configurations already" in capsys.readouterr().err
    rows = {r["config"]: r for r in json.loads((tmp_path / "o" / "superpixels.json").read_text())["rows"]}
    assert rows["slic-n10-c30"]["br"] == -1.0 and rows["fh-s600-g0.5-m400"]["br"] > 0
    # other sampling: the saved result does not describe it and is recomputed
    assert bench(root, tmp_path / "o", "--configs", "slic-n10-c30", "--every", "2") == 0
    assert json.loads((done / "slic-n10-c30.json").read_text())["row"]["br"] > 0


@needs_data
def test_bad_sequence_named_and_skipped_bad_options_exit_2(tmp_path, capsys):
    root = copy_frames(tmp_path / "d", n=4)
    copy_frames(root, "car-shadow", n=4)
    (root / "JPEGImages/480p/car-shadow/00002.jpg").unlink()
    write_listing(root, 2016, "val", ["blackswan", "car-shadow"])
    rc = main(["superpixels", "--davis", str(root), "--year", "2016", "--configs", "slic-n10-c30", "--jobs", "1",
               "--out", str(tmp_path / "o")])
    assert rc == 1 and "car-shadow: frames missing" in capsys.readouterr().err
    res = json.loads((tmp_path / "o" / "superpixels.json").read_text())
    assert res["sampling"]["sequences"] == ["blackswan"] and not res["complete"]
    for bad in (["--configs", "slic-n10"], ["--alg", "lsc", "--region-size", "400"], ["--every", "0"]):
        assert main(["superpixels", "--davis", str(root), "--year", "2016", *bad, "--out", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()


def test_make_passes_extra_and_superpixel_options():
    cmd = ["make", "-n", "-o", ".venv/.installed", "superpixel-benchmark", "DAVIS=somewhere", "YEAR=2016",
           "EXTRA=--every 5 --sequences a,b"]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=True).stdout.replace("\\\n", " ")
    line = next(ln for ln in out.splitlines() if "-m evaluate superpixels" in ln)
    assert "--sweep" in line and "--every 5 --sequences a,b" in line and "--jobs 2" in line
    out = subprocess.run(cmd[:5] + ["SWEEP=", "ALG=lsc", "REGION=40"], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout.replace("\\\n", " ")
    line = next(ln for ln in out.splitlines() if "-m evaluate superpixels" in ln)
    assert "--sweep" not in line and "--alg lsc" in line and "--region-size 40" in line
