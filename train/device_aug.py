"""The clip augmentation of train/data.py, batched on the model's device (`--aug-on device`).

Loader workers only read: stored uint8 frames, label maps (uint8 where the ids fit) and the clip's random parameters
(crop boxes, flip, jitter factors: `data.draw_params`, the same generator and draw order as the loader
path). Here, for the whole batch at once and on any device: crop + bilinear resize of the frames, colour
jitter, flip, centre-aligned nearest gather of the label maps, relabel to 0..S-1 and the overlap
weights (one scatter-add), padded to a static node count.

The arithmetic is OpenCV's, so both paths give the same tensors: cv2.resize INTER_LINEAR on uint8 is
11-bit fixed point (its SIMD rounding, which also covers the rows and columns past the border),
cv2.transform on uint8 is 10-bit fixed point, INTER_NEAREST_EXACT is floor((x + 0.5) * src / dst)
(exact for power-of-two output sizes; at other sizes OpenCV's own rounding can differ at exact ties).
"""
from __future__ import annotations

import numpy as np
import torch

from . import transfer
from .model import n_patches

GRAY = (0.299, 0.587, 0.114)
CHUNK = 256  # frames resized at a time: bounds the int32 intermediates (~4 x 0.8 MB per 256 px frame)


def _linear_taps(start, length, size: int):
    """OpenCV's INTER_LINEAR table along one axis for N crops (start, length): indices and 11-bit weights."""
    scale = length.double() / size
    f = ((torch.arange(size, device=start.device, dtype=torch.float64)[None] + 0.5) * scale[:, None] - 0.5).float()
    s = torch.floor(f)
    frac = f - s
    s = s.long()
    last = length[:, None] - 1
    w1 = torch.round(frac * 2048).int()
    w0 = torch.round((1 - frac) * 2048).int()
    i0, i1 = s.clamp(min=0).minimum(last), (s + 1).clamp(min=0).minimum(last)
    return start[:, None] + i0, start[:, None] + i1, w0, w1


def resize_linear(frames, boxes, size: int, flip):
    """frames uint8 (N, H, W, 3), boxes (N, 4) = (y, x, h, w), flip (N,) -> uint8 (N, size, size, 3)."""
    y0, y1, b0, b1 = _linear_taps(boxes[:, 0], boxes[:, 2], size)
    x0, x1, a0, a1 = _linear_taps(boxes[:, 1], boxes[:, 3], size)
    x0, x1, a0, a1 = (torch.where(flip[:, None], v.flip(1), v) for v in (x0, x1, a0, a1))
    f = frames.int()
    n = torch.arange(len(f), device=f.device)[:, None, None]

    def rows(r):  # horizontal pass for the source rows r (N, size): exact int32, as cv2's buffer
        r = r[:, :, None]
        return f[n, r, x0[:, None]] * a0[:, None, :, None] + f[n, r, x1[:, None]] * a1[:, None, :, None]
    s0, s1 = rows(y0) >> 4, rows(y1) >> 4
    out = (((s0 * b0[:, :, None, None]) >> 16) + ((s1 * b1[:, :, None, None]) >> 16) + 2) >> 2
    return out.clamp(0, 255).to(torch.uint8)


def nearest_index(start, length, size: int, flip=None):
    """INTER_NEAREST_EXACT source indices (N, size): floor((x + 0.5) * length / size), in integers."""
    x = torch.arange(size, device=start.device)
    idx = ((2 * x[None] + 1) * length[:, None]) // (2 * size)
    idx = idx.minimum(length[:, None] - 1)
    if flip is not None:
        idx = torch.where(flip[:, None], idx.flip(1), idx)
    return start[:, None] + idx


def resize_nearest(labels, boxes, size: int, flip):
    """labels (N, H, W) -> (N, size, size) int64 of the same boxes, flipped like the frames."""
    yi = nearest_index(boxes[:, 0], boxes[:, 2], size)
    xi = nearest_index(boxes[:, 1], boxes[:, 3], size, flip)
    n = torch.arange(len(labels), device=labels.device)[:, None, None]
    return labels[n, yi[:, :, None], xi[:, None, :]].long()


def colour_jitter(frames, factors):
    """data.colour_jitter for a batch: frames uint8 (N, h, w, 3), factors (N, 3) float64 (b, c, s).

    x' = A x + B gray(x) + C as cv2.transform computes it on uint8: 10-bit fixed-point coefficients. The
    fixed-point sums are integers below 2^24 (255 x 3 coefficients below 2^11, plus the offset), so float32
    holds them exactly: float arithmetic on every device (CUDA has no int64 matmul), the same bytes as the
    integer arithmetic. Elementwise products, not a matmul, so TF32 never rounds them."""
    gray = torch.tensor(GRAY, dtype=torch.float64, device=frames.device)
    b, c, s = factors.double().unbind(1)
    mean = b * (frames.double().mean((1, 2)) @ gray)  # cv2.mean: exact sums in double
    A, B, C = s * c * b, (1 - s) * c * b, (1 - c) * mean
    eye = torch.eye(3, dtype=torch.float64, device=frames.device)
    m = (A[:, None, None] * eye + B[:, None, None] * gray[None, None, :]).float()  # (N, 3, 3), float32 as cv2
    mi = torch.round(m.double() * 1024).float()[:, None, None]  # (N, 1, 1, 3 out, 3 in)
    ti = (torch.round(C.float().double() * 1024) + 512).float()[:, None, None, None]
    x = frames.float()
    out = x[..., None, 0] * mi[..., 0] + x[..., None, 1] * mi[..., 1] + x[..., None, 2] * mi[..., 2] + ti
    return torch.floor(out / 1024).clamp(0, 255).to(torch.uint8)


def relabel(labels, n_in: int):
    """Ids 0..n_in-1 -> 0..S-1 keeping their order (a crop drops some); returns (labels, S per frame)."""
    N = len(labels)
    present = torch.zeros(N, n_in, dtype=torch.int32, device=labels.device)
    present.scatter_(1, labels.flatten(1), 1)
    new = present.cumsum(1) - 1
    return new.gather(1, labels.flatten(1)).view_as(labels), present.sum(1)


def overlap_weights(labels, M: int, stride: int = 8):
    """(N, M, cells) float32 |r_ij ∩ s| / |s| for labels (N, H, W) in 0..M-1 (pool.overlap_weights, batched)."""
    N, H, W = labels.shape
    C = (H // stride) * (W // stride)
    ys = torch.arange(H, device=labels.device) // stride
    xs = torch.arange(W, device=labels.device) // stride
    cell = (ys[:, None] * (W // stride) + xs[None]).flatten()
    key = (torch.arange(N, device=labels.device)[:, None] * M + labels.flatten(1)) * C + cell[None]
    counts = torch.zeros(N * M * C, device=labels.device).index_add_(
        0, key.flatten(), torch.ones(key.numel(), device=labels.device))  # small integers: exact in float32
    counts = counts.view(N, M, C)
    return counts / counts.sum(2, keepdim=True).clamp_min(1)


def label_dtype(n_in: int) -> torch.dtype:
    """uint8 on the wire where every id fits (the label cache holds uint8 too), else int16 as stored."""
    return torch.uint8 if n_in <= 256 else torch.int16


def collate_raw(items: list) -> dict:
    """Stack what the workers read (ClipDataset.on_device); `prepare` finishes the batch on the device.

    Labels travel as uint8 where the batch's ids allow; a batch of patch clips only carries none."""
    B = len(items)
    T, H, W = items[0]["frames"].shape[:3]
    if any(it["frames"].shape[1:3] != (H, W) for it in items):
        raise ValueError("--aug-on device stacks stored frames: every shard must have the same frame size "
                         "(use --aug-on loader for a store of mixed sizes)")
    n_in = max(it["n_in"] for it in items)
    labels = None
    if any(it["labels"] is not None for it in items):
        labels = torch.zeros(B, T, H, W, dtype=label_dtype(n_in))
        for b, it in enumerate(items):
            if it["labels"] is not None:
                labels[b] = it["labels"]  # ids < n_in: the cast keeps them
    jit = [it["jitter"] for it in items]
    return {"frames": torch.stack([it["frames"] for it in items]), "labels": labels,
            "boxes": torch.from_numpy(np.stack([it["boxes"] for it in items])),
            "flip": torch.tensor([it["flip"] for it in items]),
            "jitter": torch.from_numpy(np.stack(jit)) if jit[0] is not None else None,
            "patch": torch.tensor([it["patch"] for it in items]), "n_in": n_in,
            **{k: items[0][k] for k in ("size", "stride", "nodes")}}


def prepare(raw: dict, device) -> dict:
    """A collate_raw batch -> the trainer's batch (frames uint8 (B, T, 3, s, s), weights or None, mask, patch).

    No host sync: the copies go on a side stream (train/transfer.py), every shape and branch comes from host
    values; `patch` stays the host tensor (the model splits the batch by it without reading the device)."""
    B, T = raw["frames"].shape[:2]
    size = raw["size"]
    d = transfer.to_device({k: raw[k] for k in ("frames", "boxes", "flip", "jitter", "labels", "patch")}, device)
    boxes, frames = d["boxes"].flatten(0, 1), d["frames"].flatten(0, 1)
    flip = d["flip"].repeat_interleave(T)
    jitter = d["jitter"].flatten(0, 1) if d["jitter"] is not None else None
    out = []
    for k in range(0, B * T, CHUNK):
        sl = slice(k, k + CHUNK)
        f = resize_linear(frames[sl], boxes[sl], size, flip[sl])
        out.append(colour_jitter(f, jitter[sl]) if jitter is not None else f)
    frames = torch.cat(out).view(B, T, size, size, 3).permute(0, 1, 4, 2, 3)
    n_patch = n_patches(size)
    if bool(raw["patch"].all()):  # host tensor: no device sync
        mask = torch.ones(B, T, n_patch, dtype=torch.bool, device=device)
        return {"frames": frames, "weights": None, "mask": mask, "patch": raw["patch"], "dropped": raw.get("dropped", 0)}
    M = max(raw["nodes"], raw["n_in"], n_patch if bool(raw["patch"].any()) else 0)
    labels, count = relabel(resize_nearest(d["labels"].flatten(0, 1), boxes, size, flip), raw["n_in"])
    sp = ~d["patch"].repeat_interleave(T)
    weights = overlap_weights(labels, M, raw["stride"]) * sp[:, None, None]
    count = torch.where(sp, count, n_patch)
    mask = torch.arange(M, device=device)[None] < count[:, None]
    return {"frames": frames, "weights": weights.view(B, T, M, -1), "mask": mask.view(B, T, M), "patch": raw["patch"],
            "dropped": raw.get("dropped", 0)}
