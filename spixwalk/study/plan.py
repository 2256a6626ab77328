"""What a study runs: arms x grid cells x seeds, each trained for the same training FLOPs.

The budget is FLOPs (spixwalk.train.flops), not seconds: the same number buys every arm the same arithmetic on
any machine, whatever runs beside it. An arm's run gets floor(F / its step's FLOPs) steps; snapshots at
`points` budgets, each twice the one before and the last F, and at step 0 (the same weights for every arm of a
seed). Seconds, device, precision and threads are recorded beside, never used to decide when to stop.
"""
from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from pathlib import Path

from spixwalk.train import recipes


@dataclass(frozen=True)
class Run:
    arm: str
    cell: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.arm}/{self.cell}/seed{self.seed}"


def runs(arms: list[str], cells: list[str], seeds: list[int]) -> list[Run]:
    """Seed-major, so a study cut short holds whole seeds of every arm (`cells` may be ['frozen'])."""
    return [Run(arm, recipes.FROZEN[arm] if cell == "frozen" else cell, seed)
            for seed in seeds for cell in cells for arm in arms]


def marks(budget: float, points: int) -> list[float]:
    """`points` FLOP budgets ending at `budget`, each twice the one before."""
    return [budget / 2 ** (points - 1 - i) for i in range(points)]


def step_flops(work: Path, arm: str, n_nodes: int, img_size: int | None = None, batch: int | None = None) -> int:
    """FLOPs of one training step of `arm` (its recipe's batch and shape unless given), counted once, cached in
    WORK/flops.json."""
    from spixwalk.train.flops import step_flops as count
    from spixwalk.train.presets import PRESETS

    path = work / "flops.json"
    cache = json.loads(path.read_text()) if path.exists() else {}
    r = {**PRESETS[f"study-{arm}"]}
    r.update({k: v for k, v in (("img_size", img_size), ("batch", batch)) if v})
    key = f"{arm}:{r['nodes']}:{r['img_size']}:{r['clip_len']}:{r['batch']}:{r['cycles']}:{n_nodes}"
    if key not in cache:
        cache[key] = count("patches" if r["nodes"] == "patches" else "superpixels", r["batch"], img_size=r["img_size"],
                           clip_len=r["clip_len"], n_nodes=n_nodes, cycles=r["cycles"], padding=r["padding"])
        path.write_text(json.dumps(cache, indent=1, sort_keys=True))
    return cache[key]


def steps_at(budgets: list[float], flops_per_step: int) -> list[int]:
    """Steps of a run at each FLOP budget (at least 1)."""
    return [max(1, int(b // flops_per_step)) for b in budgets]


def machine() -> str:
    """The device's name as rows record it: the GPU's, else the CPU model's."""
    import torch
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
