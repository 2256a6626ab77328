"""Training seconds on the clock a budget is counted in: the process's CPU seconds, or device-busy seconds.

On a shared CPU, wall time measures the neighbours; the training process's CPU time does not (with
`--workers 0` it includes the loader's work). On a GPU the fair cost is the time the device is busy
with the steps, from CUDA events recorded around each step: no host sync per step, summed when the
loop syncs anyway (at its log rows).

The data wait is defined here once (`data_wait`: 1 - busy / wall, busy from `Clock.busy`), for the trainer's
log rows (train/stats.py) and for benchmarks/gpu.py alike.
"""
from __future__ import annotations

import time

import torch

CLOCKS = ("auto", "cpu", "device")


def data_wait(busy: float, wall: float) -> float:
    """The share of `wall` seconds in which the device was not busy with steps: 1 - busy / wall (0 for no wall
    time). The one definition of the data wait: the trainer logs it, benchmarks/gpu.py reports it."""
    return max(0.0, 1.0 - busy / wall) if wall > 0 else 0.0


def resolve(kind: str, device: torch.device) -> str:
    """auto: device-busy seconds on CUDA, process CPU seconds elsewhere."""
    if kind == "auto":
        return "device" if device.type == "cuda" else "cpu"
    return kind


class Clock:
    """Seconds used so far (`before`: what a resumed run had used), on the cpu or the device clock."""

    def __init__(self, kind: str, device: torch.device, cpu_before: float = 0.0, device_before: float = 0.0):
        self.kind = resolve(kind, device)
        self.cuda = device.type == "cuda"
        self.cpu0, self.cpu_before = time.process_time(), cpu_before
        self.device_seconds, self.pending, self.open = device_before, [], None
        self.host_seconds, self.host_open = 0.0, None

    def step_start(self) -> None:
        if self.cuda:
            self.open = torch.cuda.Event(enable_timing=True)
            self.open.record()
        else:
            self.host_open = time.perf_counter()

    def step_end(self) -> None:
        if self.cuda and self.open is not None:
            end = torch.cuda.Event(enable_timing=True)
            end.record()
            self.pending.append((self.open, end))
            self.open = None
        elif self.host_open is not None:
            self.host_seconds += time.perf_counter() - self.host_open
            self.host_open = None

    def cpu(self) -> float:
        return self.cpu_before + time.process_time() - self.cpu0

    def device(self) -> float:
        """Device-busy seconds (0 without CUDA); syncs on the last recorded step."""
        if self.pending:
            self.pending[-1][1].synchronize()
            self.device_seconds += sum(a.elapsed_time(b) for a, b in self.pending) / 1000.0
            self.pending = []
        return self.device_seconds

    def busy(self) -> float:
        """Seconds the steps kept the device busy, this process: CUDA events on CUDA (syncs on the last step, as
        device()); elsewhere the host's wall time inside the steps, which the CPU runs synchronously."""
        return self.device() if self.cuda else self.host_seconds

    def now(self) -> float:
        return self.device() if self.kind == "device" else self.cpu()
