"""The training step's device contract (issue 28): no host sync, the reflect pad in the network's layout,
colour jitter in float, uint8 labels on the wire, nothing label-shaped for patch batches."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from spixwalk.preprocess.store import StoreReader
from spixwalk.train import device_aug
from spixwalk.train.data import Aug, ClipDataset, clip_index, collate
from spixwalk.train.loop import train_step
from spixwalk.train.model import Encoder, WalkNet, patch_grid
from spixwalk.train.reflect import ReflectConv2d, reflect_pad

STORE = dict(shards=((0, 2),), n_frames=8, size=96, n_regions=14)  # the `store` fixture (conftest.py)
CPU = torch.device("cpu")
HOST_READS = {"aten::_local_scalar_dense", "aten::nonzero", "aten::nonzero_static", "aten::is_nonzero",
              "aten::equal", "aten::allclose"}


class HostReads(TorchDispatchMode):
    """Records every op that reads a value of a device-side tensor back to the host (.item(), bool(),
    nonzero(), ...). Device-side: the model's parameters, anything a factory op makes (torch.zeros(device=)),
    and whatever is computed from one of those; the host batch the loader delivered is not, nor what is
    computed from it alone (the step may read it: that costs no sync on a GPU)."""

    def __init__(self, device_tensors):
        super().__init__()
        self.ids, self.keep, self.reads = set(), [], []
        for t in device_tensors:
            self._mark(t)

    def __enter__(self):  # tolist() and numpy() read values without dispatching an op: wrapped here
        self._wrapped = {name: getattr(torch.Tensor, name) for name in ("tolist", "numpy")}
        for name, f in self._wrapped.items():
            setattr(torch.Tensor, name, self._reader(name, f))
        return super().__enter__()

    def __exit__(self, *exc):
        for name, f in self._wrapped.items():
            setattr(torch.Tensor, name, f)
        return super().__exit__(*exc)

    def _reader(self, name, f):
        def read(t, *args, **kwargs):
            if id(t) in self.ids:
                self.reads.append(f"Tensor.{name}")
            return f(t, *args, **kwargs)
        return read

    def _mark(self, t):
        self.ids.add(id(t))
        self.keep.append(t)  # ids stay unique while the test runs

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        tensors = [a for a in torch.utils._pytree.tree_leaves((args, kwargs)) if isinstance(a, torch.Tensor)]
        on_device = not tensors or any(id(t) in self.ids for t in tensors)
        if on_device and func._schema.name in HOST_READS:
            self.reads.append(func._schema.name)
        out = func(*args, **kwargs)
        if on_device:
            for t in torch.utils._pytree.tree_leaves(out):
                if isinstance(t, torch.Tensor):
                    self._mark(t)
        return out


class Opts:
    tau, edge_drop, cycles, edge_drop_mode = 0.05, 0.1, "all", "crw"


def raw_batch(store, nodes, transforms="crop,cj,flip", n=3):
    r = StoreReader(store, label_cache_mb=64)
    clips, _ = clip_index(r.videos("slic-n30-c30"), 4, 2)
    ds = ClipDataset(r, clips, 4, ["slic-n30-c30"], nodes, patch_prob=0.5, seed=1, aug=Aug.from_transforms(transforms, 64))
    ds.on_device, ds.node_count = True, 16
    return collate([ds[(0, i)] for i in range(n)])


@pytest.mark.parametrize("nodes", ["mixed", "superpixels"])  # mixed: both node builders and the split
def test_a_training_step_reads_nothing_back_from_the_device(store, nodes):
    torch.manual_seed(0)
    net = WalkNet(*patch_grid(64), padding="reflect", patch_jitter="crw")  # crw: the redraws that used to sync
    opt = torch.optim.Adam(net.parameters())
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    batch = raw_batch(store, nodes)
    if nodes == "mixed":
        assert 0 < int(batch["patch"].sum()) < len(batch["patch"])  # both node types: the split is exercised
    params = list(net.parameters()) + list(net.buffers())
    with HostReads(params) as mode:
        stats = train_step(net, opt, sched, batch, Opts, CPU, torch.autocast("cpu", enabled=False))
    assert torch.isfinite(stats["loss"])
    assert mode.reads == [], f"host reads of device tensors in the step: {mode.reads}"


def test_the_host_read_check_catches_a_sync():
    x = torch.ones(3)
    with HostReads([x]) as mode:
        (x > 0).nonzero()
        bool((x * 2).all())
        float(torch.zeros(1).sum())  # a factory tensor is device-side too
        bool(torch.tensor([True]).cpu().all())  # a host tensor made here is not... (torch.tensor: no op)
    assert mode.reads == ["aten::nonzero", "aten::_local_scalar_dense", "aten::_local_scalar_dense"]
    net = WalkNet(*patch_grid(64)).eval()
    with torch.no_grad(), HostReads(list(net.parameters())) as mode:
        net(torch.zeros(1, 2, 3, 64, 64, dtype=torch.uint8), None, torch.ones(1, dtype=torch.bool))
    assert mode.reads == ["Tensor.tolist"]  # node types as a device tensor: read back, and caught


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: torch.cuda.set_sync_debug_mode")
def test_a_cuda_training_step_makes_no_sync(store):
    dev = torch.device("cuda")
    net = WalkNet(*patch_grid(64), padding="reflect", patch_jitter="crw").to(dev).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters())
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    batch = {k: v.pin_memory() if torch.is_tensor(v) else v for k, v in raw_batch(store, "mixed").items()}
    train_step(net, opt, sched, batch, Opts, dev, torch.autocast("cuda", dtype=torch.bfloat16))  # warm: allocator
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        train_step(net, opt, sched, batch, Opts, dev, torch.autocast("cuda", dtype=torch.bfloat16))
    finally:
        torch.cuda.set_sync_debug_mode("default")


@pytest.mark.parametrize("layout", [torch.channels_last, torch.contiguous_format])
@pytest.mark.parametrize("p", [1, 3])
def test_reflect_pad_is_fpads_reflect_in_the_inputs_layout(layout, p):
    x = torch.randn(2, 5, 9, 7, dtype=torch.float64).contiguous(memory_format=layout).requires_grad_()
    got, want = reflect_pad(x, p), F.pad(x, (p, p, p, p), mode="reflect")
    assert torch.equal(got, want)
    assert got.is_contiguous(memory_format=layout)
    g = torch.randn_like(want)
    torch.testing.assert_close(torch.autograd.grad(got, x, g)[0], torch.autograd.grad(want, x, g)[0], rtol=0, atol=1e-12)


def test_reflect_encoder_gives_nn_conv2ds_outputs():
    torch.manual_seed(0)
    enc = Encoder(padding="reflect").to(memory_format=torch.channels_last)
    convs = [m for m in enc.modules() if isinstance(m, ReflectConv2d)]
    assert len(convs) == 17 and all(c.padding_mode == "reflect" for c in convs)  # every 3x3 and the 7x7
    x = torch.randn(2, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    new = enc(x)
    for c in convs:
        c.__class__ = nn.Conv2d  # the former module: nn.Conv2d's own reflect path (F.pad)
    old = enc(x)
    torch.testing.assert_close(new, old, rtol=0, atol=1e-5)  # the same conv on the same padded input
    assert new.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("seed", range(3))
def test_float_jitter_gives_the_integer_arithmetics_bytes(seed):
    g = torch.Generator().manual_seed(seed)
    frames = torch.randint(0, 256, (8, 33, 31, 3), dtype=torch.uint8, generator=g)
    factors = 1 + (torch.rand(8, 3, generator=g, dtype=torch.float64) * 2 - 1) * (0.1, 0.5, 1.0)[seed]
    assert torch.equal(device_aug.colour_jitter(frames, factors), jitter_int64(frames, factors))


def jitter_int64(frames, factors):
    """device_aug.colour_jitter as it was: int64 fixed point (CUDA has no int64 einsum)."""
    gray = torch.tensor(device_aug.GRAY, dtype=torch.float64)
    b, c, s = factors.double().unbind(1)
    mean = b * (frames.double().mean((1, 2)) @ gray)
    A, B, C = s * c * b, (1 - s) * c * b, (1 - c) * mean
    m = (A[:, None, None] * torch.eye(3, dtype=torch.float64) + B[:, None, None] * gray[None, None, :]).float()
    mi = torch.round(m.double() * 1024).long()
    ti = torch.round(C.float().double() * 1024).long() + 512
    out = (torch.einsum("nhwc,ndc->nhwd", frames.long(), mi) + ti[:, None, None, None]) >> 10
    return out.clamp(0, 255).to(torch.uint8)


def test_patch_batches_carry_no_labels(store):
    raw = raw_batch(store, "patches")
    assert raw["labels"] is None
    assert device_aug.prepare(raw, CPU)["weights"] is None


def test_uint8_labels_pool_as_int16(store):
    raw = raw_batch(store, "mixed")
    assert raw["labels"].dtype == torch.uint8  # 14 regions: the ids fit a byte
    wide = {**raw, "labels": raw["labels"].to(torch.int16)}
    a, b = device_aug.prepare(raw, CPU), device_aug.prepare(wide, CPU)
    assert torch.equal(a["weights"], b["weights"]) and torch.equal(a["mask"], b["mask"])
    assert device_aug.label_dtype(256) == torch.uint8 and device_aug.label_dtype(257) == torch.int16
