"""Superpixel pooling, eq. 3.5: q_s = sum_ij (|r_ij ∩ s| / |s|) f_ij.

r_ij is the stride cell (8x8 pixels) of feature (i, j). The overlap weights are a (S, cells) matrix
built from the int16 label map with one bincount (numpy, in the data-loader workers); applying them is
a dense batched matmul against the channels-last feature map, which the benchmark measured fastest.
`pool_scatter` and `pool_naive` are the alternatives the benchmark and the tests compare against.
"""
import numpy as np
import torch


_CELL_CACHE: dict = {}


def _cells(H: int, W: int, stride: int) -> np.ndarray:
    key = (H, W, stride)
    if key not in _CELL_CACHE:
        ys, xs = np.divmod(np.arange(H * W), W)
        _CELL_CACHE[key] = (ys // stride) * (W // stride) + xs // stride
    return _CELL_CACHE[key]


def overlap_weights(labels: np.ndarray, stride: int = 8) -> np.ndarray:
    """(S, (H/stride)*(W/stride)) float32 weights |r_ij ∩ s| / |s| for labels 0..S-1 of one (H, W) map."""
    H, W = labels.shape
    C = (H // stride) * (W // stride)
    lab = labels.reshape(-1).astype(np.int64)
    S = int(lab.max()) + 1
    counts = np.bincount(lab * C + _cells(H, W, stride), minlength=S * C).reshape(S, C)
    return (counts / np.maximum(counts.sum(1, keepdims=True), 1)).astype(np.float32)  # absent label: zero row


def pool(feats: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """feats (F, C, h, w) encoder maps, weights (F, M, h*w) -> (F, M, C) node features (padded rows give 0)."""
    f = feats.flatten(2).transpose(1, 2)  # (F, h*w, C): channels-last view, no copy for channels_last tensors
    return torch.bmm(weights.to(f.dtype), f)


def pool_scatter(feats: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The same pooling as an index_add scatter over the non-zero weights (benchmark alternative)."""
    Fn, C = feats.shape[:2]
    M, P = weights.shape[1:]
    f = feats.flatten(2).transpose(1, 2).reshape(Fn * P, C)
    frame, node, cell = weights.nonzero(as_tuple=True)
    w = weights[frame, node, cell].to(f.dtype)
    out = f.new_zeros(Fn * M, C)
    out.index_add_(0, frame * M + node, f[frame * P + cell] * w[:, None])
    return out.view(Fn, M, C)


def pool_onehot(feats: torch.Tensor, labels: torch.Tensor, M: int) -> torch.Tensor:
    """Full-resolution one-hot matmul: features upsampled to pixels, one mask per superpixel (benchmark only)."""
    Fn, C, h, w = feats.shape
    H, W = labels.shape[1:]
    up = torch.nn.functional.interpolate(feats, size=(H, W), mode="nearest").flatten(2)  # (F, C, H*W)
    onehot = torch.nn.functional.one_hot(labels.long().flatten(1), M).to(feats.dtype)  # (F, H*W, M)
    sums = torch.bmm(up, onehot).transpose(1, 2)  # (F, M, C)
    return sums / onehot.sum(1).clamp_min(1)[..., None]


def pool_naive(feats: torch.Tensor, labels: torch.Tensor, M: int, stride: int = 8) -> torch.Tensor:
    """Reference: a Python loop per frame and superpixel, literally eq. 3.5."""
    Fn, C, h, w = feats.shape
    rows = []
    for f in range(Fn):
        frame_rows = []
        for s in range(M):
            mask = (labels[f] == s).to(feats.dtype)
            area = mask.sum()
            if area == 0:
                frame_rows.append(feats.new_zeros(C))
                continue
            overlap = mask.reshape(h, stride, w, stride).sum((1, 3)) / area  # |r_ij ∩ s| / |s|
            frame_rows.append((feats[f] * overlap).sum((1, 2)))
        rows.append(torch.stack(frame_rows))
    return torch.stack(rows)
