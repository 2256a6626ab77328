"""Small real stores for the trainer's tests, written with the store's public writer functions."""
import numpy as np

from spixwalk.preprocess.store import write_frames, write_labels

PALETTE_STEP = 40  # colour channels of region r: distinct multiples of 40, far apart under bilinear blending


def palette(n: int) -> np.ndarray:
    """n distinct RGB colours (n <= 216)."""
    levels = np.arange(6) * PALETTE_STEP + 20
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(-1, 3)
    return grid[np.random.default_rng(1).permutation(len(grid))[:n]].astype(np.uint8)


def moving_regions(n_frames: int, size: int, n_regions: int, seed: int, speed: float = 2.0):
    """Voronoi regions whose seeds drift: frames coloured by region (colour encodes the label)."""
    rng = np.random.default_rng(seed)
    seeds = rng.uniform(0, size, (n_regions, 2))
    vel = rng.normal(0, speed, (n_regions, 2))
    colours = palette(n_regions)
    yy, xx = np.mgrid[0:size, 0:size]
    frames, labels = [], []
    for t in range(n_frames):
        p = (seeds + t * vel) % size
        d = (yy[..., None] - p[:, 0]) ** 2 + (xx[..., None] - p[:, 1]) ** 2
        lab = d.argmin(-1)
        present = np.unique(lab)
        lut = np.zeros(n_regions, np.int16)
        lut[present] = np.arange(len(present))
        frames.append(colours[lab])
        labels.append(lut[lab])
    return np.stack(frames), np.stack(labels).astype(np.int16)


def make_store(root, cfg="slic-n30-c30", shards=((0, 2),), n_frames=8, size=64, n_regions=12, extra_cfgs=()):
    """shards = ((shard, n_videos), ...); returns {video_id: (frames, labels)}."""
    out = {}
    for shard, n_videos in shards:
        vids = []
        for v in range(n_videos):
            f, l = moving_regions(n_frames, size, n_regions, seed=shard * 100 + v)
            vid = f"s{shard}v{v}"
            out[vid] = (f, l)
            vids.append((vid, f))
        write_frames(root, shard, vids, {"size": size}, [])
        for c in (cfg, *extra_cfgs):
            write_labels(root, shard, c, [out[v][1] for v, _ in vids], {"alg": c}, [])
    return out
