"""Training seconds on the clock a budget is counted in: the process's CPU seconds, or device-busy seconds.

On a shared CPU, wall time measures the neighbours; the training process's CPU time does not (with
`--workers 0` it includes the loader's work). On a GPU the fair cost is the time the device is busy
with the steps, from CUDA events recorded around each step: no host sync per step, summed when the
loop syncs anyway (at its log rows).
"""
from __future__ import annotations

import time

import torch

CLOCKS = ("auto", "cpu", "device")


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

    def step_start(self) -> None:
        if self.cuda:
            self.open = torch.cuda.Event(enable_timing=True)
            self.open.record()

    def step_end(self) -> None:
        if self.cuda and self.open is not None:
            end = torch.cuda.Event(enable_timing=True)
            end.record()
            self.pending.append((self.open, end))
            self.open = None

    def cpu(self) -> float:
        return self.cpu_before + time.process_time() - self.cpu0

    def device(self) -> float:
        """Device-busy seconds (0 without CUDA); syncs on the last recorded step."""
        if self.pending:
            self.pending[-1][1].synchronize()
            self.device_seconds += sum(a.elapsed_time(b) for a, b in self.pending) / 1000.0
            self.pending = []
        return self.device_seconds

    def now(self) -> float:
        return self.device() if self.kind == "device" else self.cpu()
