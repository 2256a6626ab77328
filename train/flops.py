"""Training FLOPs per step: the budget unit that means the same on every machine.

One training step of an arm costs the forward and backward of the encoder, the node head, the pooling and
the walk. `torch.utils.flop_counter` counts them (matmuls and convolutions, forward and backward; norms,
activations, roi_align and the softmax are not counted, as everywhere that quotes FLOPs) on one real clip
of the arm's input shape; a step of B clips costs B times that, since nothing in the step couples clips.
The data loader's cost is not in the count: the study reports it beside (seconds of data wait per step).
"""
from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from .model import WalkNet, n_patches, patch_grid
from .walk import walk_loss


def clip_inputs(nodes: str, img_size: int, clip_len: int, n_nodes: int, seed: int = 0):
    """One synthetic clip (frames, weights, is_patch, mask) of the trainer's shapes; superpixel nodes are
    n_nodes equal horizontal bands (their shape changes no FLOP, only their count does)."""
    g = torch.Generator().manual_seed(seed)
    frames = torch.randint(0, 256, (1, clip_len, 3, img_size, img_size), dtype=torch.uint8, generator=g)
    if nodes == "patches":
        m = n_patches(img_size)
        return frames, None, torch.ones(1, dtype=torch.bool), torch.ones(1, clip_len, m, dtype=torch.bool)
    cells = (img_size // 8) ** 2
    band = torch.arange(cells) * n_nodes // cells
    w = torch.nn.functional.one_hot(band, n_nodes).T.float()
    w = (w / w.sum(1, keepdim=True)).expand(1, clip_len, n_nodes, cells).contiguous()
    return frames, w, torch.zeros(1, dtype=torch.bool), torch.ones(1, clip_len, n_nodes, dtype=torch.bool)


def clip_flops(nodes: str, img_size: int = 256, clip_len: int = 4, n_nodes: int = 25, cycles: str = "all",
               padding: str = "reflect") -> int:
    """FLOPs of one clip's forward + backward (encoder, head, pooling, walk) on the CPU in fp32."""
    torch.manual_seed(0)
    net = WalkNet(*patch_grid(img_size), padding=padding, norm="cifar", patch_jitter="crw").train()
    frames, weights, is_patch, mask = clip_inputs(nodes, img_size, clip_len, n_nodes)
    with FlopCounterMode(display=False) as fc:
        q = net(frames, weights, is_patch)
        loss, _, _ = walk_loss(q.float(), mask, 0.05, 0.1, cycles)
        loss.backward()
    return int(fc.get_total_flops())


def step_flops(nodes: str, batch: int, **shape) -> int:
    """FLOPs of one training step of `batch` clips (see clip_flops for the shape keywords)."""
    return batch * clip_flops(nodes, **shape)
