import numpy as np
import pytest

from spixwalk.preprocess.superpixels import check_params, label_video, relabel
from preprocess_fixtures import davis_frames

CASES = [  # (alg, params, S range expected on 256x256 real frames)
    ("slic", {"n_segments": 30, "compactness": 30.0}, (15, 40)),
    ("slic", {"n_segments": 30, "compactness": 30.0, "impl": "skimage"}, (15, 40)),
    ("slic", {"n_segments": 10, "compactness": 30.0}, (4, 16)),
    ("fh", {"scale": 600.0, "sigma": 0.5, "min_size": 400}, (1, 60)),
    ("lsc", {"region_size": 47, "ratio": 0.5, "iterations": 2}, (10, 50)),
    ("random", {"n_segments": 30}, (20, 30)),
]


@pytest.fixture(scope="module")
def frames():
    return davis_frames(n_seq=3, per_seq=2)


@pytest.mark.parametrize("alg,params,srange", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_labels_contiguous_int16_with_s_near_target(frames, alg, params, srange):
    labels, nseg = label_video(frames, alg, params, seed_key="v")
    assert labels.dtype == np.int16 and labels.shape == frames.shape[:3]
    for lab, s in zip(labels, nseg):
        present = np.unique(lab)
        assert np.array_equal(present, np.arange(s)), "labels must be exactly 0..S-1"
        assert srange[0] <= s <= srange[1], (alg, s)


def test_slic_opencv_and_skimage_agree_on_count(frames):
    _, a = label_video(frames, "slic", {"n_segments": 30, "compactness": 30.0})
    _, b = label_video(frames, "slic", {"n_segments": 30, "compactness": 30.0, "impl": "skimage"})
    assert abs(a.mean() - b.mean()) <= 0.2 * b.mean()


def _pieces(labels: np.ndarray) -> int:
    """Connected pieces of a label map (4-connectivity), whatever their labels."""
    from skimage.measure import label

    return int(label(labels.astype(np.int32), background=-1, connectivity=1).max())


def test_lsc_superpixels_are_one_connected_piece_each(frames):
    """Every LSC label of ours is one 4-connected piece (enforceLabelConnectivity), ~30 per frame.

    (The old name claimed LSC without connectivity enforcement would fragment; measured here with OpenCV
    4.x on these frames it gives the same 25 pieces, so that half cannot be asserted.)"""
    labels, nseg = label_video(frames[:2], "lsc", {"region_size": 47, "ratio": 0.5, "iterations": 2})
    for ours, n in zip(labels, nseg):
        assert 10 < n < 100 and _pieces(ours) == n, (n, _pieces(ours))


def test_single_superpixel_frame_is_recorded():
    flat = np.full((2, 64, 64, 3), 128, np.uint8)
    labels, nseg = label_video(flat, "fh", {"scale": 600.0, "sigma": 0.5, "min_size": 400})
    assert nseg.tolist() == [1, 1] and (labels == 0).all()


def test_random_is_deterministic_per_video():
    img = np.zeros((3, 64, 64, 3), np.uint8)
    a, _ = label_video(img, "random", {"n_segments": 10}, seed_key="x")
    b, _ = label_video(img, "random", {"n_segments": 10}, seed_key="x")
    c, _ = label_video(img, "random", {"n_segments": 10}, seed_key="y")
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_relabel_keeps_order_and_fills_gaps():
    lab, s = relabel(np.array([[5, 5, 9], [2, 9, 2]]))
    assert s == 3 and lab.tolist() == [[1, 1, 2], [0, 2, 0]] and lab.dtype == np.int16


@pytest.mark.parametrize("alg,params,msg", [
    ("slic", {"n_segments": 0, "compactness": 30.0}, "n_segments must be > 0"),
    ("slic", {"n_segments": -3, "compactness": 30.0}, "n_segments must be > 0"),
    ("lsc", {"region_size": 300, "ratio": 0.5, "iterations": 2}, "region_size must be in 1..256"),
    ("watershed", {}, "unknown algorithm"),
])
def test_bad_configurations_refused_before_work(alg, params, msg):
    with pytest.raises(ValueError, match=msg):
        check_params(alg, 256, **params)
