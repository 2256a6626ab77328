"""Training presets: every choice where CRW as shipped (ajabri/videowalk) and spixwalk could differ.

crw: videowalk's README command (`--model-type scratch --frame-transforms crop --dropout 0.1 --temp 0.05
--clip-len 4 --lr 0.0001`, Adam, MultiStepLR gamma 0.3 whose first milestone, epoch 20 of 25, falls at
80% of training, RandomClipSampler with 5 clips per video, CIFAR statistics in training).
thesis: the thesis's choices where they differ from CRW (every cycle length summed, as its text
states after eq. 3.5; superpixel nodes) on top of crw.
legacy: spixwalk's defaults before the presets, to reproduce older runs.
study-<arm>: an arm of the study (train/recipes.py) on its base preset, with the recipe chosen for it.
Explicit options override the preset; config.json records the preset and every resolved value.
"""
from .recipes import presets as _study_presets

CRW = {"nodes": "patches", "cycles": "crw", "edge_drop_mode": "crw", "edge_drop": 0.1, "tau": 0.05,
       "padding": "reflect", "frame_transforms": "crop", "norm": "cifar", "patch_jitter": "crw",
       "clips_per_video": 5, "clip_len": 4, "lr": 1e-4, "lr_drop_at": 0.8, "lr_gamma": 0.3}
# the size of a run, not one of CRW's choices (it trained batch 20 for 25 epochs on GPUs): what a plain
# `python -m train` / `make train` does under every preset unless the preset or the command line says otherwise
RUN_DEFAULTS = {"batch": 8, "steps": 200, "img_size": 256, "lr_schedule": "drop", "warmup": 0, "precision": "auto"}
PRESETS = {
    "crw": CRW,
    "thesis": {**CRW, "cycles": "all", "nodes": "superpixels"},
    "legacy": {**CRW, "nodes": "superpixels", "cycles": "all", "edge_drop_mode": "independent", "padding": "zeros",
               "frame_transforms": "crop,cj,flip", "norm": "imagenet", "patch_jitter": "clamp",
               "clips_per_video": 0, "lr_drop_at": 0.0},
}
PRESETS = {name: {**RUN_DEFAULTS, **p} for name, p in PRESETS.items()}
PRESETS.update(_study_presets(PRESETS))
DEFAULT_PRESET = "thesis"


def apply_preset(a) -> None:
    """Fill every option left unset (None or absent) from the chosen preset, in place."""
    for k, v in PRESETS[a.preset].items():
        if getattr(a, k, None) is None:
            setattr(a, k, v)


def shown(key: str) -> str:
    """What the presets set `key` to, for an option's --help, grouped by value: ' (preset: 0.05)' where they all
    agree, else ' (presets crw, legacy: patches; thesis, study-*: superpixels)' (study-*: every study-<arm>)."""
    groups: dict[str, list[str]] = {}
    for name, preset in PRESETS.items():
        if key in preset:
            groups.setdefault(str(preset[key]), []).append(name)
    if len(groups) == 1 and sum(map(len, groups.values())) == len(PRESETS):
        return f" (preset: {next(iter(groups))})"
    study = {n for n in PRESETS if n.startswith("study-")}
    parts = []
    for value, names in groups.items():
        if study and study <= set(names):
            names = [n for n in names if n not in study] + ["study-*"]
        parts.append(f"{', '.join(names)}: {value}")
    return " (presets " + "; ".join(parts) + ")"
