"""What a run trains on: the store's label configurations and clips it selects, checked before any work."""
from __future__ import annotations

from spixwalk.preprocess import spconfig
from spixwalk.preprocess.store import StoreReader

from .data import clip_index
from .model import n_patches
from .options import BadInput


def _control(cfg: str) -> bool:
    """A control's label maps (random, grid, randvid cells), not a superpixel algorithm's."""
    return cfg.split("-")[0] in spconfig.CONTROLS


def label_configs(reader: StoreReader, a) -> list[str]:
    """The configuration(s) the run trains on, checked against the store."""
    have = reader.configs()
    if a.nodes == "patches":
        return []
    if a.label_config:
        want = [a.label_config]
    elif a.alg == "random":
        want = a.random_configs.split(",") if a.random_configs else [c for c in have if not _control(c)]
    else:
        want = [spconfig.from_args(a)[2]]
    missing = [c for c in want if c not in have]
    if not want or missing:
        raise BadInput(f"store {a.store}: label configuration {missing or want} not complete on any shard "
                       f"(complete: {have or 'none'}); run `python -m preprocess` for it first")
    return want


def clips_of(reader: StoreReader, cfgs: list[str], a) -> list:
    """The clips of videos complete for every configuration of the run; short videos reported and skipped."""
    refs = reader.videos()
    for c in cfgs:  # a clip may draw any of the configurations: keep videos complete for all of them
        ok = set(reader.videos(c))
        refs = [r for r in refs if r in ok]
    if not refs:
        raise BadInput(f"store {a.store}: no complete shard with frames" + (f" and {cfgs}" if cfgs else ""))
    clips, short = clip_index(refs, a.clip_len, a.clip_stride or a.clip_len, a.clips_per_video)
    for r in short:
        print(f"[train] video {r.video_id} (shard {r.shard}): {r.length} frames < clip length {a.clip_len}, skipped")
    if len(clips) < a.world:
        raise BadInput(f"store {a.store}: {len(clips)} clips of {a.clip_len} frames, not enough to train")
    return clips


def static_nodes(reader: StoreReader, cfgs: list[str], a) -> int:
    """Nodes every device-augmented batch is padded to: one shape for cuDNN and --compile (padding changes no loss)."""
    sp = max([reader.nseg_max(c) for c in cfgs] or [0])
    return max(sp, n_patches(a.img_size)) if a.nodes == "mixed" else sp
