"""Host-to-device copies of a batch on a side stream, so they overlap the compute still queued for the last step.

The training step never waits for the device, so when it starts, the previous step's kernels are usually still
running; copies issued on the compute stream would queue behind them. Here they go on a copy stream of their
own; the compute stream waits for them through an event (not the host), and each copied tensor is recorded as
used by the compute stream so the caching allocator does not hand its memory out while a kernel still reads
it (the copy stream allocates from its own pool, so it never writes into memory compute may still use). Source tensors must be pinned (the DataLoader's pin_memory) for the copies to be asynchronous. On a CPU
(or any non-CUDA device) this is a plain `.to(device)`.
"""
from __future__ import annotations

import torch

_STREAMS: dict = {}


def _copy_stream(device: torch.device):
    key = device.index if device.index is not None else torch.cuda.current_device()
    if key not in _STREAMS:
        _STREAMS[key] = torch.cuda.Stream(device=key)
    return _STREAMS[key]


def to_device(tensors: dict, device) -> dict:
    """{name: tensor or None} -> the same names on `device` (None stays None)."""
    device = torch.device(device)
    if device.type != "cuda":
        return {k: None if v is None else v.to(device) for k, v in tensors.items()}
    compute, copy = torch.cuda.current_stream(device), _copy_stream(device)
    with torch.cuda.stream(copy):
        out = {k: None if v is None else v.to(device, non_blocking=True) for k, v in tensors.items()}
        done = torch.cuda.Event()
        done.record(copy)
    compute.wait_event(done)
    for v in out.values():
        if v is not None:
            v.record_stream(compute)
    return out
