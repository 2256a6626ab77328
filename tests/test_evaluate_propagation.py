"""Propagation: local windows equal the full-affinity reference; ground-truth features give near-perfect
scores on real DAVIS; synthetic generator; bad inputs; CLI end to end."""
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from davis_fixtures import truncated
from spixwalk.evaluate import davis_run, metrics, synth
from spixwalk.evaluate.cli import main
from spixwalk.evaluate.davis_io import load_mask, mask_path, frame_paths, save_indexed
from spixwalk.evaluate.propagate import Propagator, local_topk, propagate_full

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"real DAVIS data not found at {DATA}")


@pytest.mark.parametrize("h,w,radius,tile,n_context", [(20, 28, 12.0, 8, 20), (13, 30, 3.0, 8, 4), (17, 9, 5.5, 4, 6)])
def test_local_equals_full_affinity(h, w, radius, tile, n_context):
    torch.manual_seed(0)
    base = F.normalize(torch.randn(8, h, w), dim=0)
    feats = [F.normalize(base + 0.5 * torch.randn(8, h, w), dim=0) for _ in range(n_context + 5)]
    lab0 = torch.softmax(3 * torch.randn(3, h, w), 0)
    prop = Propagator(n_context=n_context, radius=radius, tile=tile)
    prop.start(feats[0], lab0)
    ours = [prop.step(f) for f in feats[1:]]
    ref = propagate_full(feats, lab0, n_context=n_context, radius=radius)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_local_topk_respects_radius():
    h, w, r = 15, 15, 4.0
    q = F.normalize(torch.randn(4, h, w), dim=0)
    _, idx = local_topk(q, q, r, topk=5, tile=8)
    ys, xs = idx // w, idx % w
    qy, qx = torch.arange(h * w)[:, None] // w, torch.arange(h * w)[:, None] % w
    assert (((ys - qy) ** 2 + (xs - qx) ** 2).float().sqrt() < r).all()


class GroundTruthFeatures:
    """Features = the one-hot ground truth of each frame at stride 8: a perfect encoder."""

    def __init__(self, root, year, seq, n_labels):
        self.masks = iter([load_mask(mask_path(root, seq, p.stem), year) for p in frame_paths(root, seq)])
        self.n = n_labels

    def __call__(self, frame):
        m = next(self.masks)
        m = np.where(m == 255, 0, m)
        onehot = torch.from_numpy((m[None] == np.arange(self.n)[:, None, None]).astype(np.float32))
        return F.normalize(F.avg_pool2d(onehot[None], 8, 8, ceil_mode=True)[0], dim=0)


@needs_data
@pytest.mark.parametrize("root,year,seq,n", [("davis2016-val", 2016, "car-shadow", 2),
                                             ("davis2017-mini", 2017, "breakdance", 2)])
def test_ground_truth_features_score_near_one(tmp_path, root, year, seq, n):
    root = truncated(DATA / root, seq, 14, tmp_path / "davis")  # 14 real frames keep the test short
    out = tmp_path / "out"
    out.mkdir()
    stats = davis_run.propagate_sequence(root, year, seq, GroundTruthFeatures(root, year, seq, n), out, overlays=False)
    assert stats["frames"] == 14
    res = metrics.evaluate(root, year, out, sequences=[seq], progress=False)
    assert res["global"]["J-Mean"] > 0.9 and res["global"]["F-Mean"] > 0.8, res["global"]


def test_synth_is_deterministic_and_well_formed(tmp_path):
    a = synth.generate(tmp_path / "a", n_sequences=2, n_frames=6, height=64, width=112, n_objects=3, seed=3)
    synth.generate(tmp_path / "b", n_sequences=2, n_frames=6, height=64, width=112, n_objects=3, seed=3)
    digest = lambda root: hashlib.sha256(b"".join(p.read_bytes() for p in sorted(root.rglob("*.*")))).hexdigest()
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert (tmp_path / "a" / "ImageSets" / "2017" / "val.txt").read_text().split() == a
    for seq in a:
        masks = [load_mask(p, 2017) for p in sorted((tmp_path / "a" / "Annotations" / "480p" / seq).glob("*.png"))]
        assert Image.open(tmp_path / "a" / "Annotations" / "480p" / seq / "00000.png").mode == "P"
        assert set(np.unique(masks[0])) == {0, 1, 2, 3, 255}  # every object visible in the first frame
        assert not np.array_equal(masks[0], masks[-1])  # things move
        frame = np.array(Image.open(tmp_path / "a" / "JPEGImages" / "480p" / seq / "00000.jpg"))
        assert frame.shape == (64, 112, 3)


SYNTH_DAVIS = dict(n_sequences=2, n_frames=5, height=64, width=112, n_objects=2, seed=0)  # conftest.synth_davis


def test_cli_propagation_then_metrics(synth_davis, tmp_path):
    out = tmp_path / "out"
    assert main(["davis", "--davis", str(synth_davis), "--year", "2017", "--init", "random", "--out", str(out)]) == 0
    for seq in ("synth-00", "synth-01"):
        pngs = sorted((out / seq).glob("*.png"))
        assert [p.stem for p in pngs] == [f"{t:05d}" for t in range(5)]
        im = Image.open(pngs[-1])
        assert im.mode == "P" and set(np.unique(np.array(im))) <= {0, 1, 2}
        assert len(list((out / seq / "overlay").glob("*.png"))) == 4
    assert (out / "config.json").exists()
    assert main(["metrics", "--davis", str(synth_davis), "--year", "2017", "--results", str(out)]) == 0
    assert (out / "global_results-val.csv").exists() and (out / "per-sequence_results-val.csv").exists()


def test_bad_inputs_fail_clearly(synth_davis, tmp_path, capsys):
    import shutil
    root = tmp_path / "d"
    shutil.copytree(synth_davis, root)
    ann = root / "Annotations" / "480p"
    # unknown sequence on the command line: unusable input, exit 2 before any output
    assert main(["davis", "--davis", str(root), "--sequences", "nope", "--features", "rgb", "--out",
                 str(tmp_path / "o1")]) == 2
    assert "unknown sequence(s) nope" in capsys.readouterr().err and not (tmp_path / "o1").exists()
    # non-palette 2017 first mask
    Image.open(ann / "synth-00" / "00000.png").convert("L").save(ann / "synth-00" / "00000.png")
    # first mask missing
    (ann / "synth-01" / "00000.png").unlink()
    assert main(["davis", "--davis", str(root), "--features", "rgb", "--out", str(tmp_path / "o2")]) == 1
    err = capsys.readouterr().err
    assert "must be an indexed (palette) PNG" in err and "annotations missing in" in err and "00000.png" in err
    assert not (tmp_path / "o2" / "synth-00").exists() and not (tmp_path / "o2" / "synth-01").exists()
    # size mismatch between a frame and the first mask
    shutil.rmtree(root)
    shutil.copytree(synth_davis, root)
    Image.open(root / "JPEGImages" / "480p" / "synth-00" / "00003.jpg").resize((100, 60)).save(
        root / "JPEGImages" / "480p" / "synth-00" / "00003.jpg")
    save_indexed(np.zeros((10, 10), np.uint8) + 1, ann / "synth-01" / "00000.png")
    assert main(["davis", "--davis", str(root), "--features", "rgb", "--out", str(tmp_path / "o3")]) == 1
    err = capsys.readouterr().err
    assert "00003.jpg: frame size" in err and "mask size (10, 10) differs" in err
    assert not list((tmp_path / "o3").glob("*synth*"))  # no partial sequence folder left behind
