"""Strict DAVIS input on real DAVIS data: JPEGs, annotations and predictions must agree on frame ids,
and a DAVIS-2016 0/1 mask scores exactly as its 0/255 twin (the official reader's `annot > 0`)."""
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spixwalk.evaluate import metrics
from spixwalk.evaluate.cli import main
from spixwalk.evaluate.davis_io import InputError, load_mask, save_indexed, write_listing

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"real DAVIS data not found at {DATA}")


def copy_seq(src_root, seq, dst_root, year, n):
    """The first n frames (JPEGs + annotations) of a real sequence, listed in ImageSets."""
    for kind, ext in (("JPEGImages", "jpg"), ("Annotations", "png")):
        (dst_root / kind / "480p" / seq).mkdir(parents=True)
        for t in range(n):
            shutil.copy(src_root / kind / "480p" / seq / f"{t:05d}.{ext}", dst_root / kind / "480p" / seq)
    write_listing(dst_root, year, "val", [seq])


def eroded_predictions(root, seq, year, out):
    """A prediction that is not perfect: every object mask shrunk by 6 pixels."""
    import cv2

    (out / seq).mkdir(parents=True)
    for p in sorted((root / "Annotations" / "480p" / seq).glob("*.png")):
        gt = load_mask(p, year)
        gt = np.where(gt == 255, 0, gt)
        pred = np.zeros_like(gt)
        for k in range(1, int(gt.max()) + 1):
            pred[cv2.erode((gt == k).astype(np.uint8), np.ones((13, 13), np.uint8)) > 0] = k
        save_indexed(pred, out / seq / p.name)


@pytest.fixture
def swan(tmp_path):
    root = tmp_path / "d"
    copy_seq(DATA / "davis2016-val", "blackswan", root, 2016, 6)
    eroded_predictions(root, "blackswan", 2016, tmp_path / "r")
    return root, tmp_path / "r"


def run_metrics(root, results, year, capsys):
    rc = main(["metrics", "--davis", str(root), "--year", str(year), "--results", str(results)])
    return rc, capsys.readouterr().err


def test_well_formed_copy_scores_and_writes_csv(swan, capsys):
    rc, _ = run_metrics(*swan, 2016, capsys)
    assert rc == 0 and (swan[1] / "global_results-val.csv").exists()


@pytest.mark.parametrize("damage,named", [
    ("JPEGImages/480p/blackswan/00003.jpg", "00003.jpg"),  # a JPEG missing in the middle
    ("Annotations/480p/blackswan/00002.png", "00002.png"),  # an annotation missing
])
def test_missing_frame_or_annotation_fails_the_sequence(swan, capsys, damage, named):
    (swan[0] / damage).unlink()
    rc, err = run_metrics(*swan, 2016, capsys)
    assert rc == 1 and named in err and "blackswan" in err
    assert not (swan[1] / "global_results-val.csv").exists()  # nothing that looks complete


def test_extra_annotation_or_prediction_fails_the_sequence(swan, capsys):
    ann = swan[0] / "Annotations" / "480p" / "blackswan"
    shutil.copy(ann / "00005.png", ann / "00006.png")
    rc, err = run_metrics(*swan, 2016, capsys)
    assert rc == 1 and "annotations without a JPEG frame" in err and "00006.png" in err
    (ann / "00006.png").unlink()
    shutil.copy(swan[1] / "blackswan" / "00005.png", swan[1] / "blackswan" / "00009.png")
    rc, err = run_metrics(*swan, 2016, capsys)
    assert rc == 1 and "predictions without a JPEG frame" in err and "00009.png" in err


def test_davis2016_zero_one_mask_scores_as_its_0_255_twin(swan):
    root, results = swan
    ref = metrics.evaluate(root, 2016, results, progress=False)
    assert 0.3 < ref["global"]["J-Mean"] < 0.99  # a real, imperfect score
    for p in (root / "Annotations" / "480p" / "blackswan").glob("*.png"):
        arr = np.array(Image.open(p))
        Image.fromarray((arr > 0).astype(np.uint8), mode="L").save(p)
    assert np.unique(np.array(Image.open(p))).tolist() == [0, 1]
    res = metrics.evaluate(root, 2016, results, progress=False)
    assert res["complete"] and res["global"] == ref["global"]


def test_davis2016_mask_with_several_object_values_is_refused(swan):
    p = swan[0] / "Annotations" / "480p" / "blackswan" / "00001.png"
    arr = np.array(Image.open(p))
    arr[:10, :10] = 128
    Image.fromarray(arr, mode="L").save(p)
    with pytest.raises(InputError, match=r"00001.png: DAVIS-2016 mask must hold 0 and one object value"):
        load_mask(p, 2016)


def test_davis2017_first_annotation_required_later_ones_for_scoring(tmp_path, capsys):
    root = tmp_path / "d"
    copy_seq(DATA / "davis2017-mini", "breakdance", root, 2017, 5)
    eroded_predictions(root, "breakdance", 2017, tmp_path / "r")
    assert run_metrics(root, tmp_path / "r", 2017, capsys)[0] == 0
    (root / "Annotations" / "480p" / "breakdance" / "00003.png").unlink()
    rc, err = run_metrics(root, tmp_path / "r", 2017, capsys)
    assert rc == 1 and "annotations missing" in err and "00003.png" in err
    # propagation needs only the first-frame annotation (its J&F, every frame's: `davis` without --no-metrics
    # propagates, then fails scoring) ...
    assert main(["davis", "--davis", str(root), "--features", "rgb", "--out", str(tmp_path / "o"),
                 "--no-overlays", "--no-metrics"]) == 0
    assert main(["davis", "--davis", str(root), "--features", "rgb", "--out", str(tmp_path / "o1"),
                 "--no-overlays"]) == 1
    assert (tmp_path / "o1" / "breakdance" / "00004.png").is_file()
    # ... and refuses a sequence without it, naming the file
    (root / "Annotations" / "480p" / "breakdance" / "00000.png").unlink()
    assert main(["davis", "--davis", str(root), "--features", "rgb", "--out", str(tmp_path / "o2")]) == 1
    err = capsys.readouterr().err
    assert "annotations missing" in err and "00000.png" in err
