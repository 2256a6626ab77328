"""The study's arms and recipes: what `spixwalk study` trains and `spixwalk train --preset study-<arm>` reads.

An arm is what a study compares (the node type, the loss, the label configuration); a recipe is the
optimisation every arm is tuned over with the same effort (one small grid, the same seeds, the dev split);
the recipe chosen for each arm is written into FROZEN and is what its preset trains. Reported figures come
from seeds the choice never saw (docs/study-protocol.md).
"""
from __future__ import annotations

# arm -> the base preset (the loss and every CRW choice) and the nodes it walks over
ARMS = {
    "superpixels": {"preset": "thesis", "nodes": "superpixels", "label_config": "slic-n30-c30"},
    "patches-crw": {"preset": "crw", "nodes": "patches"},  # CRW as shipped: cycles 2..T-1 averaged
    "patches-thesis": {"preset": "thesis", "nodes": "patches"},
    # the frame encoded once and pooled like superpixels, over a fixed 5x5 grid (SLIC-30 yields 25 on average
    # on the DAVIS-2016 train frames): superpixels' cost without their shape
    "grid-cells": {"preset": "thesis", "nodes": "superpixels", "label_config": "grid-n25"},
    # 25 random Voronoi cells drawn once per video: shapeless, but temporally coherent like the grid
    "random-cells": {"preset": "thesis", "nodes": "superpixels", "label_config": "randvid-n25"},
    "mixed": {"preset": "thesis", "nodes": "mixed", "label_config": "slic-n30-c30"},
}
PRIMARY = ("superpixels", "patches-crw")  # the one comparison named before the runs: superpixels - CRW patches

# shared by every arm and cell: CRW's clip, 256 px crops, batch 4 (what 2 CPU cores train), 10 warm-up steps
COMMON = {"img_size": 256, "batch": 4, "warmup": 10, "clip_len": 4, "precision": "auto"}
# the tuning grid, the same for every arm: lr, annealed to 0 by a cosine over the run's steps (a fixed budget
# ends where it ends, so the schedule needs no drop step); "const" cells stay available for wider grids
GRID = {
    "lr1e-4-cos": {"lr": 1e-4, "lr_schedule": "cosine"},
    "lr3e-4-cos": {"lr": 3e-4, "lr_schedule": "cosine"},
    "lr1e-4-const": {"lr": 1e-4, "lr_schedule": "drop", "lr_drop_at": 0.0},
    "lr3e-4-const": {"lr": 3e-4, "lr_schedule": "drop", "lr_drop_at": 0.0},
}
TUNING_CELLS = ("lr1e-4-cos", "lr3e-4-cos")  # what `make study-tune` runs for every arm
TUNING_SEEDS = (0, 1)  # the dev seeds the grid is chosen on; reported seeds start at REPORT_SEED
REPORT_SEED = 10

# arm -> the grid cell chosen on the dev split. Until the tuning has run, every arm carries the same
# provisional cell (the previous CPU recipe's lr and schedule), marked so by FROZEN_ON.
FROZEN = {arm: "lr3e-4-cos" for arm in ARMS}
FROZEN_ON = None  # the date and the study folder the choice was read from, once it is made


def recipe(arm: str, cell: str | None = None) -> dict:
    """The train options of `arm` under grid `cell` (default: its frozen cell), without the base preset's."""
    if arm not in ARMS:
        raise KeyError(f"unknown arm {arm!r}; choose among {', '.join(ARMS)}")
    cell = cell or FROZEN[arm]
    if cell not in GRID:
        raise KeyError(f"unknown grid cell {cell!r}; choose among {', '.join(GRID)}")
    return {**COMMON, **{k: v for k, v in ARMS[arm].items() if k != "preset"}, **GRID[cell]}


def presets(bases: dict) -> dict:
    """`study-<arm>` presets: the arm's base preset with its frozen recipe on top."""
    return {f"study-{arm}": {**bases[spec["preset"]], **recipe(arm)} for arm, spec in ARMS.items()}
