"""Step statistics: what a log row holds (summed on the device, one host sync per row) and the end-of-run table."""
from __future__ import annotations

import time

import torch

from .clock import data_wait

SUMMARY_KEYS = ("nodes", "label_configs", "steps", "batch", "train_seconds", "clips_per_s", "data_wait_fraction",
                "first_loss", "final_loss", "final_acc", "dropped_clips", "checkpoint")


def stat_keys(a) -> list[str]:
    """The per-step statistics of this run: the loss, then cross-entropy and accuracy per cycle length."""
    ks = range(1, a.clip_len) if a.cycles == "all" else range(2, a.clip_len)
    return ["loss", *(f"xent_{k}" for k in ks), *(f"acc_{k}" for k in ks)]


class Window:
    """Step stats since the last log row: summed on the device, synced once per row (and across ranks)."""

    def __init__(self, keys: list[str], device):
        self.keys, self.device = keys, device
        self.reset()

    def reset(self):
        self.sums = torch.zeros(len(self.keys), device=self.device)
        self.n = self.ok = self.skipped = self.dropped = self.patch_clips = self.clips = self.nodes_max = 0
        self.wait, self.t0 = 0.0, time.perf_counter()

    def add(self, stats, batch, wait: float, batch_size: int):
        self.n += 1
        self.wait += wait
        if stats is None:
            self.skipped += 1
            self.dropped += batch_size
            return
        self.sums += torch.stack([stats[k] for k in self.keys])
        self.ok += 1
        self.dropped += batch["dropped"]
        self.patch_clips += int(batch["patch"].sum())
        self.clips += len(batch["patch"])
        self.nodes_max = max(self.nodes_max, stats["nodes"])

    def row(self, step: int, world: int, flags: list[float], busy: float) -> tuple[dict, list[float]]:
        """The log row (means over steps and ranks) and the flags summed over ranks: the window's one sync.

        data_wait: train/clock.py's data_wait of `busy`, the window's device-busy seconds (Clock.busy: CUDA
        events on CUDA, the steps' host time on the CPU), the definition benchmarks/gpu.py reports too;
        next_wait: the host's time in next() / wall."""
        vec = torch.cat([self.sums, torch.tensor([self.ok, self.clips, *flags], device=self.device)])
        if world > 1:
            torch.distributed.all_reduce(vec)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        vals = vec.tolist()
        dt = time.perf_counter() - self.t0
        ok, clips, flags = vals[len(self.keys)], vals[len(self.keys) + 1], vals[len(self.keys) + 2:]
        row = {"step": step, "steps_in_row": self.n}
        if ok:
            row.update({k: v / ok for k, v in zip(self.keys, vals)})
        row.update({"clips_per_s": clips / dt, "data_wait": data_wait(busy, dt), "next_wait": self.wait / dt,
                    "patch_clips": self.patch_clips,
                    "nodes_max": self.nodes_max, "dropped_clips": self.dropped, "seconds": round(dt, 4)})
        if self.skipped:
            row["skipped_steps"] = self.skipped
        return row, flags


def summary_table(s: dict) -> str:
    """The end-of-run table printed after training: one `key  value` line per summary entry."""
    w = max(map(len, SUMMARY_KEYS))
    return "\n".join(f"{k:<{w}}  {s.get(k)}" for k in SUMMARY_KEYS)
