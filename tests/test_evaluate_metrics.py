"""J/F metrics: hand-computed cases, the toolkit's conventions, GT against itself on real DAVIS."""
import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spixwalk.evaluate import metrics
from spixwalk.evaluate.davis_io import InputError, load_mask, save_indexed, write_listing

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"real DAVIS data not found at {DATA}")


def square(shape, y0, x0, size):
    m = np.zeros(shape, bool)
    m[y0:y0 + size, x0:x0 + size] = True
    return m


def test_jaccard_hand_cases():
    empty = np.zeros((10, 10), bool)
    assert metrics.jaccard(empty, empty) == 1.0
    assert metrics.jaccard(square((10, 10), 0, 0, 4), empty) == 0.0
    assert metrics.jaccard(empty, square((10, 10), 0, 0, 4)) == 0.0
    # 4x4 vs the same square shifted by 2 columns: 8 shared pixels, 24 in the union
    assert metrics.jaccard(square((10, 10), 0, 0, 4), square((10, 10), 0, 2, 4)) == pytest.approx(8 / 24)


def test_boundary_hand_cases():
    empty = np.zeros((50, 50), bool)
    a = square((50, 50), 10, 10, 10)
    assert metrics.f_boundary(empty, empty) == 1.0
    assert metrics.f_boundary(a, empty) == 0.0
    assert metrics.f_boundary(empty, a) == 0.0
    assert metrics.f_boundary(a, a) == 1.0
    # radius ceil(0.008 * hypot(50, 50)) = 1: a 1-pixel shift still matches, a 5-pixel one does not fully
    assert metrics.boundary_radius((50, 50)) == 1
    assert metrics.f_boundary(a, square((50, 50), 10, 11, 10)) == 1.0
    assert metrics.f_boundary(a, square((50, 50), 10, 15, 10)) < 0.7
    assert metrics.boundary_radius((480, 854)) == 8


def test_boundary_map_is_seg2bmap():
    m = np.zeros((5, 5), bool)
    m[1:3, 1:3] = True
    b = metrics.boundary_map(m)
    # pixel differs from its E, S or SE neighbour: boundaries sit half a pixel towards the origin
    expected = np.array([[1, 1, 1, 0, 0],
                         [1, 0, 1, 0, 0],
                         [1, 1, 1, 0, 0],
                         [0, 0, 0, 0, 0],
                         [0, 0, 0, 0, 0]], bool)
    expected[0, 0] = True  # SE neighbour (1,1) is object
    np.testing.assert_array_equal(b, expected)


def test_statistics_decay_bins():
    v = np.arange(8) / 7.0
    mean, recall, decay = metrics.statistics(v)
    assert mean == pytest.approx(0.5)
    assert recall == pytest.approx(0.5)  # 4/7, 5/7, 6/7, 1 are > 0.5
    # edges round(linspace(1, 8, 5)) - 1 = [0, 2, 4, 5, 7]; bins v[0:3] and v[5:8]
    assert decay == pytest.approx(1 / 7 - 6 / 7)
    # constant values decay 0
    assert metrics.statistics(np.ones(30))[2] == 0.0


def write_seq(root, name, masks, year=2017):
    (root / "JPEGImages" / "480p" / name).mkdir(parents=True)
    (root / "Annotations" / "480p" / name).mkdir(parents=True)
    for t, m in enumerate(masks):
        Image.fromarray(np.zeros((*m.shape, 3), np.uint8)).save(root / "JPEGImages" / "480p" / name / f"{t:05d}.jpg")
        p = root / "Annotations" / "480p" / name / f"{t:05d}.png"
        if year == 2016:
            Image.fromarray((m > 0).astype(np.uint8) * 255, mode="L").save(p)
        else:
            save_indexed(m, p)
    write_listing(root, year, "val", [name])


def write_results(out, name, masks):
    (out / name).mkdir(parents=True)
    for t, m in enumerate(masks):
        save_indexed(m, out / name / f"{t:05d}.png")


def test_void_is_background_and_first_last_frames_excluded(tmp_path):
    gt = np.zeros((4, 20, 20), np.uint8)
    gt[:, 5:10, 5:10] = 1
    gt[:, 10:12, 5:10] = 255  # void ring below the object
    res = (gt == 1).astype(np.uint8)
    res[1, 10:12, 5:10] = 1  # frame 1 also paints the void pixels: counts as false positive
    res[0] = 0  # first and last frames are never scored
    res[3] = 0
    write_seq(tmp_path / "d", "s", gt)
    write_results(tmp_path / "r", "s", res)
    (o,) = metrics.score_sequence(tmp_path / "d", 2017, tmp_path / "r", "s")
    assert o["n_frames"] == 2
    assert o["J-Mean"] == pytest.approx((25 / 35 + 1.0) / 2)


def test_missing_object_scores_zero_and_extra_id_is_an_error(tmp_path):
    gt = np.zeros((5, 20, 20), np.uint8)
    gt[:, 2:6, 2:6] = 1
    gt[:, 12:16, 12:16] = 2
    write_seq(tmp_path / "d", "s", gt)
    write_results(tmp_path / "r", "s", (gt == 1).astype(np.uint8))
    objs = metrics.score_sequence(tmp_path / "d", 2017, tmp_path / "r", "s")
    assert [o["J-Mean"] for o in objs] == [1.0, 0.0]
    assert [o["F-Mean"] for o in objs] == [1.0, 0.0]
    bad = gt.copy()
    bad[2, 0, 0] = 3
    write_results(tmp_path / "r3", "s", bad)
    with pytest.raises(InputError, match="object id 3"):
        metrics.score_sequence(tmp_path / "d", 2017, tmp_path / "r3", "s")


def test_missing_result_frame_fails_without_complete_csv(tmp_path, capsys):
    gt = np.zeros((5, 20, 20), np.uint8)
    gt[:, 2:6, 2:6] = 1
    write_seq(tmp_path / "d", "s", gt)
    write_results(tmp_path / "r", "s", gt)
    (tmp_path / "r" / "s" / "00002.png").unlink()
    from spixwalk.evaluate.cli import main
    rc = main(["metrics", "--davis", str(tmp_path / "d"), "--year", "2017", "--results", str(tmp_path / "r")])
    assert rc == 1
    assert "result frames missing in" in (err := capsys.readouterr().err) and "00002.png" in err
    assert not (tmp_path / "r" / "global_results-val.csv").exists()
    assert (tmp_path / "r" / "metrics-val.json").exists()


def test_csv_format(tmp_path):
    gt = np.zeros((5, 20, 20), np.uint8)
    gt[:, 2:6, 2:6] = 1
    write_seq(tmp_path / "d", "s", gt)
    write_results(tmp_path / "r", "s", gt)
    res = metrics.score_and_write(tmp_path / "d", 2017, tmp_path / "r", progress=False, quiet=True)
    assert res["complete"]
    rows = list(csv.reader(open(tmp_path / "r" / "global_results-val.csv")))
    assert rows[0] == ["J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"]
    assert rows[1] == ["1.000", "1.000", "1.000", "0.000", "1.000", "1.000", "0.000"]
    rows = list(csv.reader(open(tmp_path / "r" / "per-sequence_results-val.csv")))
    assert rows == [["Sequence", "J-Mean", "F-Mean"], ["s_1", "1.000", "1.000"]]
    rows = list(csv.reader(open(tmp_path / "r" / "per-object_results-val.csv")))
    assert rows == [["Sequence", *metrics.MEASURES], ["s_1", "1.000", "1.000", "1.000", "0.000", "1.000", "1.000",
                                                      "0.000"]]


@needs_data
def test_mask_loading_by_year(tmp_path):
    m16 = load_mask(DATA / "davis2016-val/Annotations/480p/cows/00000.png", 2016)
    assert set(np.unique(m16)) == {0, 1}
    m17 = load_mask(DATA / "davis2017-mini/Annotations/480p/tennis/00000.png", 2017)
    assert set(np.unique(m17)) == {0, 1, 2, 255}
    # a mode-L 2016 mask is not a DAVIS-2017 palette mask: refused, never read as labels 0/255
    with pytest.raises(InputError, match="indexed"):
        load_mask(DATA / "davis2016-val/Annotations/480p/cows/00000.png", 2017)
    rgb = tmp_path / "rgb.png"
    Image.open(DATA / "davis2017-mini/Annotations/480p/tennis/00000.png").convert("RGB").save(rgb)
    with pytest.raises(InputError, match="indexed"):
        load_mask(rgb, 2017)


def gt_as_results(root, seq, out):
    shutil.copytree(root / "Annotations" / "480p" / seq, out / seq)


@needs_data
@pytest.mark.parametrize("year,root,seqs", [(2016, "davis2016-val", ["car-shadow", "blackswan"]),
                                            (2017, "davis2017-mini", ["breakdance"])])
def test_ground_truth_scores_one(tmp_path, year, root, seqs):
    root = DATA / root
    for s in seqs:
        gt_as_results(root, s, tmp_path)
    if year == 2016:  # 2016 masks hold 255 for the object: results are 0/1 indexed PNGs
        for p in tmp_path.rglob("*.png"):
            save_indexed(load_mask(p, 2016), p)
    res = metrics.evaluate(root, year, tmp_path, sequences=seqs, progress=False)
    assert res["complete"] and len(res["per_object"]) == len(seqs)
    for k in ("J&F-Mean", "J-Mean", "J-Recall", "F-Mean", "F-Recall"):
        assert res["global"][k] == 1.0
    assert res["global"]["J-Decay"] == 0.0


def test_sequences_scored_in_parallel_give_the_serial_result(tmp_path):
    import shutil

    from spixwalk.evaluate import metrics
    from spixwalk.evaluate.synth import generate

    generate(tmp_path / "d", n_sequences=3, n_frames=5, height=48, width=64, n_objects=2, seed=5)
    res = tmp_path / "res"
    shutil.copytree(tmp_path / "d" / "Annotations" / "480p", res)
    for png in res.rglob("*.png"):  # ground truth as the prediction, void as background
        save_indexed(np.where(load_mask(png, 2017) == 255, 0, load_mask(png, 2017)), png)
    shutil.rmtree(res / "synth-01")  # one sequence fails, by name, in both
    one = metrics.evaluate(tmp_path / "d", 2017, res, progress=False, jobs=1)
    two = metrics.evaluate(tmp_path / "d", 2017, res, progress=False, jobs=2)
    assert one["global"] == two["global"] and one["per_object"] == two["per_object"]
    assert [f["sequence"] for f in two["failures"]] == ["synth-01"] and two["global"]["J-Mean"] == 1.0


def first_frames(src: Path, seqs, n: int, dst: Path) -> Path:
    """A DAVIS root with copies of the first n frames and masks of real sequences."""
    for seq in seqs:
        for sub, ext in (("JPEGImages", "jpg"), ("Annotations", "png")):
            (dst / sub / "480p" / seq).mkdir(parents=True)
            for p in sorted((src / sub / "480p" / seq).glob(f"*.{ext}"))[:n]:
                shutil.copy(p, dst / sub / "480p" / seq / p.name)
    return dst


@needs_data
def test_per_object_jf_is_the_mean_of_j_and_f(tmp_path):
    """Real propagations (RGB features: imperfect, objects scored differently) of a 2-object DAVIS-2017-format
    set and two real DAVIS-2016 sequences: the J&F column is mean(J-Mean, F-Mean) of that object's row."""
    import json

    from spixwalk.evaluate.cli import main
    from spixwalk.evaluate.synth import generate

    generate(tmp_path / "synth", n_sequences=2, n_frames=6, height=64, width=112, n_objects=2, seed=1)
    d16 = first_frames(DATA / "davis2016-val", ["car-shadow", "blackswan"], 8, tmp_path / "d16")
    for root, year, seqs, n_objects in [(tmp_path / "synth", 2017, "synth-00,synth-01", 4),
                                        (d16, 2016, "car-shadow,blackswan", 2)]:
        out = tmp_path / f"out{year}"
        common = ["--davis", str(root), "--year", str(year), "--sequences", seqs]
        assert main(["davis", *common, "--features", "rgb", "--out", str(out), "--no-overlays"]) == 0
        assert main(["metrics", *common, "--results", str(out)]) == 0
        res = json.loads((out / "metrics-val.json").read_text())
        rows = list(csv.DictReader(open(out / "per-object_results-val.csv")))
        assert [r["Sequence"] for r in rows] == [o["name"] for o in res["per_object"]] and len(rows) == n_objects
        for r, o in zip(rows, res["per_object"]):
            assert float(r["J&F-Mean"]) == pytest.approx((o["J-Mean"] + o["F-Mean"]) / 2, abs=5e-4)
            assert float(r["J-Mean"]) == pytest.approx(o["J-Mean"], abs=5e-4)
            assert o["J&F-Mean"] == (o["J-Mean"] + o["F-Mean"]) / 2
        assert len({r["J&F-Mean"] for r in rows}) == n_objects  # real scores, not one constant
        assert res["global"]["J&F-Mean"] == pytest.approx(np.mean([o["J&F-Mean"] for o in res["per_object"]]))
