"""One task per manifest shard: decode frames (where missing), label maps, markers last."""
from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from . import store
from .decode import DecodeError, decode
from .superpixels import label_video


def read_manifest(path) -> dict[int, list[dict]]:
    shards = defaultdict(list)
    with open(path) as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                shards[int(row["shard"])].append(row)
    return dict(sorted(shards.items()))


def select_shards(all_shards: list[int], shard=None, shard_index=None, num_shards=None) -> list[int]:
    """--shard K[,K2,..] or the i-th of n contiguous ranges (one SLURM array task per range)."""
    if shard is not None:
        wanted = [int(s) for s in str(shard).split(",") if s != ""]
        missing = sorted(set(wanted) - set(all_shards))
        if missing:
            raise ValueError(f"shard(s) {missing} not in the manifest (it has {all_shards[0]}..{all_shards[-1]})")
        return wanted
    if num_shards is not None:
        if not 0 <= shard_index < num_shards:
            raise ValueError(f"--shard-index must be in 0..{num_shards - 1}, got {shard_index}")
        return [s for k, s in enumerate(all_shards) if k * num_shards // len(all_shards) == shard_index]
    return list(all_shards)


def _log(msg: str) -> None:
    print(msg, flush=True)


def process_shard(root, shard: int, rows: list[dict], alg: str, params: dict, cfg: str,
                  fps: float = 8.0, size: int = 256, quality: int = 90, timeout: float = 600.0,
                  force: bool = False) -> dict:
    """Bring one shard to complete frames + labels[cfg]. Returns its stats; never raises on bad input."""
    import cv2

    cv2.setNumThreads(1)  # one core per task: parallelism comes from running tasks side by side
    t0 = time.perf_counter()
    sp = store.shard_path(root, shard)
    stats = {"shard": shard, "frames": 0, "decoded": False, "labelled": False, "failed": [],
             "decode_s": 0.0, "label_s": 0.0, "write_s": 0.0}
    fmark = store.read_marker(sp / store.FRAMES_MARKER)
    if fmark is None or force:
        videos, failed = [], []
        td = time.perf_counter()
        for row in rows:
            try:
                arr = decode(row["path"], fps, size, timeout, src_fps=row.get("fps"))
                videos.append((row["id"], arr))
            except DecodeError as e:
                failed.append({"id": row["id"], "path": row["path"], "stage": "decode", "reason": str(e)})
                _log(f"FAILED {row['path']}: {e}")
        stats["decode_s"] = time.perf_counter() - td
        tw = time.perf_counter()
        store.write_frames(root, shard, videos, {"fps": fps, "size": size}, failed, quality=quality,
                           fps=fps, paths={r["id"]: r["path"] for r in rows})
        stats["write_s"] += time.perf_counter() - tw
        stats["decoded"] = True
        fmark = store.read_marker(sp / store.FRAMES_MARKER)
    stats["failed"] += fmark["failed"]

    if store.read_marker(sp / store.labels_marker(cfg)) is None or force or stats["decoded"]:
        import zarr

        g = zarr.open_group(sp, mode="r")
        index = g.attrs["videos"]
        # labels are computed on the stored (JPEG) frames: exactly what the trainer reads, and the
        # same result whether or not the frames were written by an earlier, interrupted run
        frames = g["frames"][:] if index else None
        labels, nsegs, lfailed = [], [], []
        tl = time.perf_counter()
        for v in index:
            clip = frames[v["start"]:v["start"] + v["length"]]
            try:
                lab, ns = label_video(clip, alg, params, seed_key=v["id"])
            except Exception as e:  # a library error on one video must not sink the shard
                lab, ns = np.zeros(clip.shape[:3], np.int16), np.zeros(len(clip), np.int16)
                lfailed.append({"id": v["id"], "path": v.get("path"), "stage": "labels",
                                "reason": f"{type(e).__name__}: {e}"})
                _log(f"FAILED {v.get('path') or v['id']}: {alg} labels: {e}")
            labels.append(lab)
            nsegs.append(ns)
        stats["label_s"] = time.perf_counter() - tl
        tw = time.perf_counter()
        store.write_labels(root, shard, cfg, labels, {"alg": alg, "params": params}, lfailed, nseg=nsegs)
        stats["write_s"] += time.perf_counter() - tw
        stats["labelled"] = True
        stats["failed"] += lfailed
    m = store.read_marker(sp / store.labels_marker(cfg))
    stats["frames"] = m["frames"]
    stats["nseg_min"], stats["nseg_max"] = m["nseg_min"], m["nseg_max"]
    stats["seconds"] = time.perf_counter() - t0
    return stats


def parallel_map(fn, tasks: list[dict], jobs: int, backend: str, scheduler: str | None = None):
    """Yield fn(**task) as tasks finish, on joblib's loky / dask / ray backend (same call for all)."""
    from joblib import Parallel, delayed, parallel_config

    if backend == "dask":
        from dask.distributed import Client

        client = Client(scheduler) if scheduler else Client(n_workers=jobs, threads_per_worker=1)
        cfg = parallel_config(backend="dask", wait_for_workers_timeout=600)
    elif backend == "ray":
        import ray
        from ray.util.joblib import register_ray

        register_ray()
        ray.init(address=scheduler or None, ignore_reinit_error=True)
        client, cfg = None, parallel_config(backend="ray", n_jobs=jobs)
    else:
        client, cfg = None, parallel_config(backend=backend, n_jobs=jobs)
    with cfg:
        par = Parallel(n_jobs=jobs, return_as="generator_unordered")
        yield from par(delayed(fn)(**t) for t in tasks)
    if client is not None:
        client.close()


def write_run_config(root, cfg: str, config: dict) -> Path:
    path = Path(root) / f"config-{cfg}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(config, indent=1, sort_keys=True))
    os.replace(tmp, path)
    return path
