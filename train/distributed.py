"""DDP under torchrun: the process group, the device of each rank, and the ranks' agreement to stop.

A group signal reaches the ranks at different moments (one mid-step, another waiting for a batch or in a
collective). Before every step the ranks sum their stop flags over a CPU (gloo) group: no device sync, and
every rank stops before the same step, so rank 0's one checkpoint holds what every rank holds.
"""
from __future__ import annotations

import os

import torch

from spixwalk.options import resolve_device

from .options import BadInput

_cpu_group = None  # gloo group for host-side votes (the default group itself on the CPU)


def setup(a):
    """(rank, world, device): DDP when launched by torchrun with WORLD_SIZE > 1."""
    global _cpu_group
    world = int(os.environ.get("WORLD_SIZE", "1"))
    try:
        device = resolve_device(a.device)
    except ValueError as e:
        raise BadInput(str(e)) from None
    cuda = device.type == "cuda"
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if world > 1:
        torch.distributed.init_process_group("nccl" if cuda else "gloo")
        _cpu_group = torch.distributed.new_group(backend="gloo") if cuda else None
    if cuda:
        device = torch.device("cuda", local)  # one GPU per process: torchrun's local rank
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True  # fixed input shapes: let cuDNN pick its fastest kernels once
    return rank, world, device


def any_rank(flag: bool, world: int) -> bool:
    """Whether `flag` holds on any rank (every rank must call this at the same point)."""
    if world == 1:
        return flag
    t = torch.tensor([int(flag)])
    torch.distributed.all_reduce(t, group=_cpu_group)
    return bool(t.item())


def teardown(world: int) -> None:
    if world > 1:
        torch.distributed.destroy_process_group()
