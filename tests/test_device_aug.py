"""The batched on-device augmentation (train/device_aug.py) against the loader path it replaces."""
import cv2
import numpy as np
import pytest
import torch

from spixwalk.preprocess.store import StoreReader
from spixwalk.train import device_aug
from spixwalk.train.data import Aug, ClipDataset, clip_index, collate, jitter_frame
from spixwalk.train.loop import train_step
from spixwalk.train.model import WalkNet, patch_grid
from spixwalk.train.walk import walk_loss
from train_synth import make_store


@pytest.mark.parametrize("seed", range(4))
def test_resize_and_jitter_are_opencvs_arithmetic(seed):
    rng = np.random.default_rng(seed)
    H, W = 96, 80
    imgs = rng.integers(0, 256, (6, H, W, 3), dtype=np.uint8)
    boxes, factors = [], rng.uniform(0.6, 1.4, (6, 3))
    for _ in range(6):
        h, w = int(rng.integers(20, H + 1)), int(rng.integers(20, W + 1))
        boxes.append([int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1)), h, w])
    flip = torch.tensor([False, True] * 3)
    for size in (64, 128):
        got = device_aug.resize_linear(torch.from_numpy(imgs), torch.tensor(boxes), size, flip).numpy()
        jit = device_aug.colour_jitter(torch.from_numpy(got), torch.from_numpy(factors)).numpy()
        for n, (y, x, h, w) in enumerate(boxes):
            want = cv2.resize(imgs[n, y:y + h, x:x + w], (size, size), interpolation=cv2.INTER_LINEAR)
            want = want[:, ::-1] if flip[n] else want
            np.testing.assert_array_equal(got[n], want)
            np.testing.assert_array_equal(jit[n], jitter_frame(np.ascontiguousarray(want), factors[n]))


def test_relabel_keeps_order_and_counts():
    lab = torch.tensor([[[7, 3], [3, 9]], [[0, 0], [0, 0]]])
    new, count = device_aug.relabel(lab, 10)
    assert new.tolist() == [[[1, 0], [0, 2]], [[0, 0], [0, 0]]] and count.tolist() == [3, 1]


STORE = dict(shards=((0, 2), (1, 1)), n_frames=8, size=96, n_regions=14)  # the shared `store` fixture (conftest.py) of this module


def both_paths(store, nodes, transforms, seed, size=64):
    r = StoreReader(store)
    clips, _ = clip_index(r.videos("slic-n30-c30"), 4, 2)
    ds = ClipDataset(r, clips, 4, ["slic-n30-c30"], nodes, patch_prob=0.5, seed=seed,
                     aug=Aug.from_transforms(transforms, size))
    keys = [(1, i) for i in range(len(clips))]
    loader = collate([ds[k] for k in keys])
    ds.on_device, ds.node_count = True, 16
    device = device_aug.prepare(collate([ds[k] for k in keys]), torch.device("cpu"))
    return loader, device


@pytest.mark.parametrize("nodes,transforms,seed", [("superpixels", "crop", 0), ("superpixels", "crop,cj,flip", 1),
                                                   ("mixed", "crop,cj,flip", 2), ("mixed", "crop", 3)])
def test_device_path_gives_the_loader_paths_frames_weights_and_node_features(store, nodes, transforms, seed):
    lo, dev = both_paths(store, nodes, transforms, seed)
    assert torch.equal(dev["frames"], lo["frames"]) and torch.equal(dev["patch"], lo["patch"])
    M = lo["mask"].shape[2]
    static = 49 if lo["patch"].any() else 16  # the static node count, or the patch grid's 49 nodes
    assert dev["weights"].shape[2] == static >= M
    torch.testing.assert_close(dev["weights"][:, :, :M], lo["weights"], atol=1e-6, rtol=0)
    assert torch.all(dev["weights"][:, :, M:] == 0) and not dev["mask"][:, :, M:].any()
    assert torch.equal(dev["mask"][:, :, :M], lo["mask"])
    net = WalkNet(*patch_grid(64)).eval()
    with torch.no_grad():
        torch.manual_seed(0)
        q_lo = net(lo["frames"], lo["weights"], lo["patch"])
        torch.manual_seed(0)
        q_dev = net(dev["frames"], dev["weights"], dev["patch"])
    torch.testing.assert_close(q_dev[:, :, :M], q_lo, atol=1e-6, rtol=0)
    l_lo = walk_loss(q_lo, lo["mask"], drop=0.0)[0]
    l_dev = walk_loss(q_dev, dev["mask"], drop=0.0)[0]
    torch.testing.assert_close(l_dev, l_lo, atol=1e-6, rtol=0)  # padding to 16 nodes changes nothing


def test_patch_batches_carry_no_weights(store):
    lo, dev = both_paths(store, "patches", "crop", 0)
    assert lo["weights"] is None and dev["weights"] is None
    assert torch.equal(dev["frames"], lo["frames"]) and dev["mask"].shape[2] == lo["mask"].shape[2] == 49


def test_train_step_takes_a_raw_batch(store):
    r = StoreReader(store)
    clips, _ = clip_index(r.videos("slic-n30-c30"), 4, 4)
    ds = ClipDataset(r, clips, 4, ["slic-n30-c30"], "mixed", seed=0, aug=Aug(size=64))
    ds.on_device = True
    batch = collate([ds[(0, i)] for i in range(3)])
    net = WalkNet(*patch_grid(64))
    opt = torch.optim.Adam(net.parameters())
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)

    class A:
        tau, edge_drop, cycles, edge_drop_mode = 0.05, 0.1, "all", "crw"
    stats = train_step(net, opt, sched, batch, A, torch.device("cpu"), torch.autocast("cpu", enabled=False))
    assert torch.isfinite(stats["loss"]) and stats["nodes"] >= 1


def test_compiled_encoder_keeps_checkpoint_keys():
    """--compile compiles in place: the checkpoint keys stay those of the plain model (a torch.compile wrapper
    would prefix them with _orig_mod.). A compiled step is not run here (inductor took 163 s for one ResNet-18
    step on a 2-core CPU); benchmarks/gpu.py --compile runs and times it on the GPU."""
    net = WalkNet(*patch_grid(64))
    keys = list(net.state_dict())
    net.encoder.compile()  # what --compile does: in place, lazily
    assert list(net.state_dict()) == keys
    assert list(torch.compile(net.encoder).state_dict())[0].startswith("_orig_mod.")  # the wrapper it avoids


def test_trainer_gives_the_same_parameters_with_either_aug_path(tmp_path):
    from spixwalk.train.loop import main

    make_store(tmp_path / "s", shards=((0, 2),), n_frames=8, size=64)
    args = ["--store", str(tmp_path / "s"), "--nodes", "mixed", "--patch-prob", "0.5", "--img-size", "64",
            "--batch", "2", "--workers", "0", "--threads", "1", "--steps", "2", "--edge-drop", "0"]
    for path in ("device", "loader"):
        assert main(args + ["--aug-on", path, "--run", str(tmp_path / path)]) == 0
    ca, cb = (torch.load(tmp_path / p / "checkpoint.pt", weights_only=False)["model"] for p in ("device", "loader"))
    for k in ca:
        torch.testing.assert_close(ca[k], cb[k], atol=1e-5, rtol=1e-4)
