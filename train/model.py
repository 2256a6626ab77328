"""ResNet-18 encoder at output stride 8 and the 128-d node head.

The encoder is a plain torchvision resnet18 whose layer3 and layer4 run at stride 1, so a 256x256
frame gives a 32x32x512 map. Only strides (and, with padding="reflect", the padding mode of every
conv that pads, as CRW's `scratch` model) change: every parameter keeps torchvision's name and shape,
so `encoder.state_dict()` loads into `torchvision.models.resnet18()` (minus `fc`). The padding is not
in the weights: checkpoints carry it (`padding`) and `train.weights.load_encoder` rebuilds the encoder as trained.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.ops import roi_align

from .pool import pool
from .reflect import keep_layout


def _unstride(layer: nn.Sequential) -> None:
    block = layer[0]
    block.conv1.stride = (1, 1)
    if block.downsample is not None:
        block.downsample[0].stride = (1, 1)


PADDINGS = ("reflect", "zeros")


class Encoder(nn.Module):
    """ResNet-18 trunk, output stride 8. `drop_layer4=True` gives CRW's evaluation features (res3, 256-d).

    padding="reflect": CRW's `scratch` model (README command, published weights); "zeros": `scratch_zeropad`.
    """

    def __init__(self, drop_layer4: bool = False, padding: str = "zeros"):
        super().__init__()
        if padding not in PADDINGS:
            raise ValueError(f"padding {padding!r} not in {PADDINGS}")
        net = torchvision.models.resnet18(weights=None)
        _unstride(net.layer3)
        _unstride(net.layer4)
        for m in net.modules():  # the max-pool keeps its implicit -inf padding, as in CRW
            if isinstance(m, nn.Conv2d) and sum(m.padding) > 0:
                m.padding_mode = padding
                keep_layout(m)  # reflect: the pad keeps channels_last (train/reflect.py)
        self.padding = padding
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3 = net.layer1, net.layer2, net.layer3
        self.layer4 = nn.Identity() if drop_layer4 else net.layer4
        self.out_channels = 256 if drop_layer4 else 512

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class NodeHead(nn.Module):
    """Linear 512->128 then L2 normalisation, applied to pooled node features (..., 512)."""

    def __init__(self, in_dim: int = 512, out_dim: int = 128):
        super().__init__()
        self.fc = nn.Linear(in_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.fc(x), dim=-1)


# ---- training-time network: encoder + node construction + head (added for the trainer) ----

# (mean, std) of the input normalisation. CRW trains with CIFAR's statistics and evaluates with ImageNet's.
NORMS = {"imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
         "cifar": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))}
PATCH_JITTERS = ("crw", "clamp")


def patch_grid(size: int) -> tuple[int, int]:
    """(patch, stride) of CRW's 7x7 grid, 64 px at stride 32 on 256 px frames, scaled with the frame."""
    return size // 4, size // 8


def n_patches(size: int) -> int:
    """Nodes of CRW's patch grid on a size x size frame (7x7 = 49 at any size, see patch_grid)."""
    patch, stride = patch_grid(size)
    return ((size - patch) // stride + 1) ** 2


def _jitter_wh(n_frames: int, n: int, patch: int, mode: str, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Box sizes of RandomResizedCrop(scale 0.7-0.9, ratio 3/4-4/3) inside a patch x patch window.

    crw: like torchvision, a box larger than the window is redrawn (10 tries, then the whole window);
    clamp: one draw, each side clamped to the window (more boxes span a full side).
    """
    if mode == "clamp":
        area = torch.empty(n_frames, n, device=device).uniform_(0.7, 0.9) * patch * patch
        ratio = torch.exp(torch.empty(n_frames, n, device=device).uniform_(math.log(3 / 4), math.log(4 / 3)))
        return torch.sqrt(area * ratio).clamp(max=patch), torch.sqrt(area / ratio).clamp(max=patch)
    # all 10 tries drawn at once and the first that fits taken: no host sync to ask whether every box fits
    area = torch.empty(10, n_frames, n, device=device).uniform_(0.7, 0.9) * patch * patch
    ratio = torch.exp(torch.empty(10, n_frames, n, device=device).uniform_(math.log(3 / 4), math.log(4 / 3)))
    w, h = torch.sqrt(area * ratio), torch.sqrt(area / ratio)
    ok = (w <= patch) & (h <= patch)
    first = ok.int().argmax(0, keepdim=True)  # the first fitting try (0 where none fits: replaced below)
    w, h, ok = w.gather(0, first)[0], h.gather(0, first)[0], ok.any(0)
    full = torch.full_like(w, float(patch))
    return torch.where(ok, w, full), torch.where(ok, h, full)


def patch_boxes(n_frames: int, size: int = 256, patch: int = 64, stride: int = 32, jitter: bool | str = False,
                device="cpu") -> list[torch.Tensor]:
    """CRW's 7x7 grid of 64 px windows at stride 32, as roi_align boxes (x1, y1, x2, y2) per frame.

    jitter ("crw" or True, "clamp") draws a per-patch random resized crop inside each window (_jitter_wh).
    """
    starts = torch.arange(0, size - patch + 1, stride, device=device, dtype=torch.float32)
    y0, x0 = torch.meshgrid(starts, starts, indexing="ij")
    n = y0.numel()
    x0, y0 = x0.reshape(1, n).expand(n_frames, n), y0.reshape(1, n).expand(n_frames, n)
    if jitter:
        w, h = _jitter_wh(n_frames, n, patch, "crw" if jitter is True else jitter, device)
        x0 = x0 + torch.rand(n_frames, n, device=device) * (patch - w)
        y0 = y0 + torch.rand(n_frames, n, device=device) * (patch - h)
    else:
        w = h = torch.full((n_frames, n), float(patch), device=device)
    return list(torch.stack([x0, y0, x0 + w, y0 + h], -1).unbind(0))


def _on(t: torch.Tensor, device) -> torch.Tensor:
    """A small host tensor on `device` without a sync: a copy from pageable memory waits for the stream."""
    return t.pin_memory().to(device, non_blocking=True) if device.type == "cuda" else t


class WalkNet(nn.Module):
    """Encoder (`encoder.*` keys = torchvision resnet18 names) + node builder + 128-d head.

    Superpixel clips: each full frame encoded once, pooled with the overlap weights (eq. 3.5).
    Patch clips (CRW baseline): 49 crops of 64 px per frame, each encoded and mean-pooled.
    """

    def __init__(self, patch: int = 64, patch_stride: int = 32, padding: str = "zeros", norm: str = "imagenet",
                 patch_jitter: str = "clamp"):
        super().__init__()
        if patch_jitter not in PATCH_JITTERS:
            raise ValueError(f"patch_jitter {patch_jitter!r} not in {PATCH_JITTERS}")
        self.encoder = Encoder(padding=padding)
        self.head = NodeHead(self.encoder.out_channels, 128)
        self.patch, self.patch_stride, self.patch_jitter = patch, patch_stride, patch_jitter
        mean, std = NORMS[norm]
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1) * 255, persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1) * 255, persistent=False)

    def normalise(self, frames: torch.Tensor) -> torch.Tensor:
        return ((frames.float() - self.mean) / self.std).contiguous(memory_format=torch.channels_last)

    def superpixel_nodes(self, frames: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return pool(self.encoder(self.normalise(frames)), weights)

    def patch_nodes(self, frames: torch.Tensor) -> torch.Tensor:
        x = self.normalise(frames)
        jitter = self.patch_jitter if self.training else False
        boxes = patch_boxes(len(x), x.shape[-1], self.patch, self.patch_stride, jitter=jitter, device=x.device)
        crops = roi_align(x, boxes, self.patch, spatial_scale=1.0, sampling_ratio=1, aligned=True)
        feats = self.encoder(crops.contiguous(memory_format=torch.channels_last)).mean((2, 3))
        return feats.view(len(x), -1, feats.shape[-1])

    def forward(self, frames: torch.Tensor, weights: torch.Tensor | None, is_patch) -> torch.Tensor:
        """frames uint8 (B, T, 3, H, W), weights (B, T, M, cells), is_patch (B,) -> nodes (B, T, M, 128).

        weights None: a batch of patch clips only (M = the patch grid's nodes). is_patch: a host (CPU) tensor
        or a sequence of bools, so that splitting the batch by node type needs no device sync (a device
        tensor is read back once, a sync)."""
        B, T = frames.shape[:2]
        M = weights.shape[2] if weights is not None else ((frames.shape[-1] - self.patch) // self.patch_stride + 1) ** 2
        flags = [bool(v) for v in (is_patch.tolist() if torch.is_tensor(is_patch) else is_patch)]
        feats = None
        for build, rows in (("sp", [i for i, p in enumerate(flags) if not p]), ("patch", [i for i, p in enumerate(flags) if p])):
            if not rows:
                continue
            whole = len(rows) == B  # one node type: no gather, no scatter
            idx = None if whole else _on(torch.tensor(rows), frames.device)
            x = (frames if whole else frames[idx]).flatten(0, 1)
            w = None if build == "patch" else (weights if whole else weights[idx]).flatten(0, 1)
            f = self.superpixel_nodes(x, w) if build == "sp" else self.patch_nodes(x)
            if f.shape[1] > M:  # F.pad with a negative width would silently drop nodes
                raise ValueError(f"{f.shape[1]} {build} nodes per frame but the batch was padded to {M}")
            f = F.pad(f, (0, 0, 0, M - f.shape[1])).view(len(rows), T, M, -1)
            if whole:
                return self.head(f)
            if feats is None:
                feats = f.new_zeros(B, T, M, f.shape[-1])
            feats = feats.index_copy(0, idx, f)
        return self.head(feats)
