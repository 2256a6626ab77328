"""Clips from a real on-disk store: augmentation keeps labels on their pixels, batches pad with a mask."""
import numpy as np
import pytest
import torch
from scipy import ndimage

from spixwalk.preprocess.store import StoreReader
from spixwalk.train.data import Aug, ClipDataset, StreamSampler, augment, clip_index, collate, contiguous
from spixwalk.train.workers import stop
from train_synth import moving_regions, palette


def test_contiguous_keeps_order():
    lab = np.array([[7, 3], [3, 9]], np.int16)
    np.testing.assert_array_equal(contiguous(lab), [[1, 0], [0, 2]])


def boundary_distance(lab):
    """Distance of every pixel to the nearest pixel that has a 4-neighbour with another label."""
    b = np.zeros(lab.shape, bool)
    b[:-1] |= lab[:-1] != lab[1:]
    b[1:] |= lab[:-1] != lab[1:]
    b[:, :-1] |= lab[:, :-1] != lab[:, 1:]
    b[:, 1:] |= lab[:, :-1] != lab[:, 1:]
    return ndimage.distance_transform_edt(~b)


def colour_disagreement(frame, lab, colours):
    """Pixels whose colour does not belong to their label's region (labels map to regions in order)."""
    nearest = ((frame[:, :, None, :].astype(np.int32) - colours) ** 2).sum(-1).argmin(-1)
    major = np.array([np.bincount(nearest[lab == s]).argmax() for s in range(lab.max() + 1)])
    return major, major[lab] != nearest


@pytest.mark.parametrize("seed", range(6))
def test_augmented_labels_stay_on_their_colours(seed):
    _, labels = moving_regions(4, 96, 20, seed=seed)
    colours = palette(labels.max() + 1).astype(np.int32)
    frames = colours[labels].astype(np.uint8)  # the colour of a pixel encodes its label
    f, l = augment(frames, labels, np.random.default_rng(seed), Aug(size=128, jitter=0.0))
    assert f.shape == (4, 128, 128, 3) and l.shape == (4, 128, 128) and l.dtype == np.int16
    for t in range(4):
        assert l[t].max() + 1 == len(np.unique(l[t]))  # contiguous 0..S-1
        major, wrong = colour_disagreement(f[t], l[t], colours)
        assert np.all(np.diff(major) > 0)  # relabelling keeps the order of the ids
        # bilinear pixels blend colours only next to an edge; a label off by one pixel would show further in
        assert wrong.mean() < 0.06
        assert boundary_distance(l[t])[wrong].max(initial=0) <= 1


def test_misaligned_labels_would_be_caught():
    _, labels = moving_regions(1, 96, 20, seed=0)
    colours = palette(labels.max() + 1).astype(np.int32)
    f, l = augment(colours[labels].astype(np.uint8), labels, np.random.default_rng(0), Aug(size=128, jitter=0.0))
    shifted = np.roll(l[0], 2, axis=1)
    _, wrong = colour_disagreement(f[0], shifted, colours)
    assert boundary_distance(shifted)[wrong].max() > 1
    _, wrong = colour_disagreement(f[0], l[0][:, ::-1], colours)  # a flip applied to the frame only
    assert wrong.mean() > 0.2


STORE = dict(shards=((0, 2), (1, 1)), n_frames=9, size=64, extra_cfgs=("fh-s600-g0.5-m400",))  # the shared `store` fixture (conftest.py) of this module


def test_dataset_items_and_collate(store):
    r = StoreReader(store)
    clips, short = clip_index(r.videos("slic-n30-c30"), 4, 4)
    assert len(clips) == 3 * 2 and not short
    ds = ClipDataset(r, clips, 4, ["slic-n30-c30", "fh-s600-g0.5-m400"], "mixed", patch_prob=0.5, seed=0,
                     aug=Aug(size=128))
    items = [ds[(0, i)] for i in range(len(clips))]
    assert {it["patch"] for it in items} == {True, False}
    batch = collate(items + [None])
    assert batch["dropped"] == 1
    B, T, M, cells = batch["weights"].shape
    assert (B, T, cells) == (6, 4, 256) and batch["frames"].shape == (6, 4, 3, 128, 128)
    for b, it in enumerate(items):
        n = 49 if it["patch"] else None  # CRW's 7x7 grid, scaled to 128 px (32 px windows at stride 16)
        for t in range(T):
            real = batch["mask"][b, t].sum().item()
            assert real == (n or len(it["weights"][t]))
            if not it["patch"]:
                torch.testing.assert_close(batch["weights"][b, t, :real].sum(-1), torch.ones(real))
            assert torch.all(batch["weights"][b, t, real:] == 0)
    again = ds[(0, 3)]  # same (epoch, index): same clip, whatever process loads it
    assert torch.equal(again["frames"], items[3]["frames"])


def test_spawned_workers_give_the_same_batches(store):
    r = StoreReader(store)
    clips, _ = clip_index(r.videos("slic-n30-c30"), 4, 2)
    ds = ClipDataset(r, clips, 4, ["slic-n30-c30"], "superpixels", seed=3, aug=Aug(size=64))

    def batches(workers):
        dl = torch.utils.data.DataLoader(ds, batch_size=3, sampler=StreamSampler(len(clips), 3, start=2),
                                         num_workers=workers, collate_fn=collate,
                                         multiprocessing_context="spawn" if workers else None)
        it = iter(dl)
        try:
            return [next(it) for _ in range(3)]
        finally:
            stop(it)  # as the trainer does: workers end here, not at garbage collection (SIGABRT mid-exit)

    for a, b in zip(batches(0), batches(2)):
        assert torch.equal(a["frames"], b["frames"]) and torch.equal(a["weights"], b["weights"])


def test_stream_sampler_resumes_mid_epoch():
    full = StreamSampler(10, seed=1)
    it = iter(full)
    seq = [next(it) for _ in range(25)]
    it2 = iter(StreamSampler(10, seed=1, start=13))
    assert [next(it2) for _ in range(12)] == seq[13:]
    assert sorted(i for e, i in seq[:10]) == list(range(10)) and seq[10][0] == 1


def test_label_cache_serves_the_stored_maps(store):
    plain, cached = StoreReader(store), StoreReader(store, label_cache_mb=64)
    tiny = StoreReader(store, label_cache_mb=0.001)  # the store's maps do not fit: read per clip
    for ref in plain.videos("slic-n30-c30"):
        f0, l0 = plain.read_clip(ref, 1, 4, "slic-n30-c30")
        for r in (cached, tiny):
            f, l = r.read_clip(ref, 1, 4, "slic-n30-c30")
            assert l.dtype == np.int16 and np.array_equal(l, l0) and np.array_equal(f, f0)
    assert cached._labels and not tiny._labels
    import pickle
    assert pickle.loads(pickle.dumps(cached)).label_cache_mb == 64
