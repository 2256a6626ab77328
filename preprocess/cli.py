"""python -m preprocess [run] --manifest M --store S --alg slic ...  |  status  |  show  |  export"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from spixwalk.options import stage_parser
from spixwalk.data_manifest import manifest as manifest_file

from . import generations, spconfig, store
from .engines import BACKENDS, check_backend
from .run import select_shards
from .spconfig import ALGORITHMS
from .superpixels import check_params


def alg_params(a) -> dict:
    return spconfig.params_from_args(a.alg, a)


def run_parser(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--manifest", required=True, help="manifest.jsonl from `python -m data_manifest build`")
    p.add_argument("--store", required=True, help="store root (one Zarr v3 group per shard)")
    p.add_argument("--alg", default="slic", choices=list(ALGORITHMS), help="superpixel algorithm")
    spconfig.add_options(p.add_argument_group("algorithm parameters (preprocess/spconfig.py)"))
    g = p.add_argument_group("frames")
    g.add_argument("--fps", type=float, default=spconfig.FRAME_RATE, help="sampling frame rate")
    g.add_argument("--size", type=int, default=spconfig.FRAME_SIZE, help="frames are resized to size x size")
    g.add_argument("--quality", type=int, default=90, help="JPEG quality of stored frames")
    g.add_argument("--timeout", type=float, default=600.0, help="per-video ffmpeg timeout (s)")
    g = p.add_argument_group("work split")
    g.add_argument("--jobs", type=int, default=1,
                   help="loky: worker processes; ray: tasks in flight; dask: local workers "
                        "(ignored with --scheduler: the cluster decides)")
    g.add_argument("--backend", default="loky", choices=BACKENDS,
                   help="loky (joblib processes), dask (distributed; [dask] extra), ray ([ray] extra)")
    g.add_argument("--scheduler", default=None, help="dask scheduler / ray cluster address")
    g.add_argument("--shard", default=None, help="only these shards: K or K1,K2")
    g.add_argument("--shard-index", type=int, default=None,
                   help="this task's index i (with --num-shards n or --shards-per-task k)")
    g.add_argument("--num-shards", type=int, default=None, help="split the manifest's shards into n ranges")
    g.add_argument("--shards-per-task", type=int, default=None,
                   help="task i takes the manifest's shards i*k..i*k+k-1 (SLURM arrays: stable under resubmission)")
    g = p.add_argument_group("redoing work")
    g.add_argument("--force", action="store_true", help="recompute this label configuration (frames kept)")
    g.add_argument("--redecode", action="store_true",
                   help="decode the frames again (drops every label configuration of the shards)")
    g.add_argument("--retry-failed", action="store_true",
                   help="re-attempt only the videos recorded as failed; finished ones are kept")
    return p


def _check_frames_options(a) -> None:
    if not (a.fps > 0 and a.fps < 1000):
        raise ValueError(f"--fps must be in (0, 1000), got {a.fps:g}")
    if not 16 <= a.size <= 4096:
        raise ValueError(f"--size must be in 16..4096, got {a.size}")
    if not 1 <= a.quality <= 100:
        raise ValueError(f"--quality must be in 1..100, got {a.quality}")
    if not (a.timeout > 0 and a.timeout < 10**6):  # inf/nan would reach ffmpeg's timer as an OverflowError
        raise ValueError(f"--timeout must be in (0, 1e6) s, got {a.timeout:g}")
    if a.shard is not None and not all(k.strip().isdigit() for k in str(a.shard).split(",") if k != ""):
        raise ValueError(f"--shard {a.shard}: not a shard number K or a comma list K1,K2")
    if a.jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {a.jobs}")
    if a.num_shards is not None and a.shards_per_task is not None:
        raise ValueError("--num-shards and --shards-per-task exclude each other")
    if (a.shard_index is None) != (a.num_shards is None and a.shards_per_task is None):
        raise ValueError("--shard-index goes with --num-shards or --shards-per-task")
    if a.shard is not None and a.shard_index is not None:
        raise ValueError("--shard and --shard-index exclude each other")


def _check_store(root: str) -> None:
    """The store must be (or be creatable as) a writable folder; checked without creating it."""
    p = os.path.abspath(root)
    if os.path.exists(p) and not os.path.isdir(p):
        raise ValueError(f"--store {root}: exists and is not a folder")
    parent = p
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"--store {root}: {parent} is not a writable folder")


def _check_frames_match(root: str, manifest: dict, shards: list[int], fps: float, size: int, quality: int) -> None:
    """Frames already stored at another --fps/--size/--quality, or of other videos than the manifest lists
    for their shard, would be labelled (and recorded) under a config that lies."""
    for sp in sorted(Path(root).glob("shard-[0-9]*")):
        if not sp.is_dir() or int(sp.name[6:]) not in shards:
            continue
        store.check_layout(sp)
        m = store.frames_meta(sp)
        if not m or m["fps"] is None:
            continue
        if (m["fps"], m["size"]) != (fps, size):
            raise ValueError(f"{sp} holds frames at --fps {m['fps']:.12g} --size {m['size']}, this run asks "
                             f"--fps {fps:.12g} --size {size}: use those values, another --store, or --redecode")
        if m["quality"] is not None and m["quality"] != quality:
            raise ValueError(f"{sp} holds frames at --quality {m['quality']}, this run asks --quality {quality}: "
                             "use that value, another --store, or --redecode")
        _check_members(sp, manifest[int(sp.name[6:])])


def _check_members(sp: Path, rows: list[dict]) -> None:
    fm = generations.frames_gen(sp)[1]
    held = set(fm["ok"]) | {f["id"] for f in fm["failed"]}
    listed = {r["id"] for r in rows}
    if held != listed:
        new, gone = sorted(listed - held), sorted(held - listed)
        raise ValueError(f"{sp} holds other videos than the manifest lists for shard {sp.name[6:].lstrip('0') or 0} "
                         f"(listed, not stored: {new[:3]}; stored, not listed: {gone[:3]}): a manifest rebuilt with "
                         "other shards? use the manifest that built this store, another --store, or --redecode")


def validate(a):
    """Every option and the manifest, before any work. Returns (params, manifest, shards)."""
    if a.alg not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {a.alg!r}; choose one of {', '.join(ALGORITHMS)}")
    _check_frames_options(a)
    params = alg_params(a)
    check_params(a.alg, a.size, **params)
    check_backend(a.backend)
    _check_store(a.store)
    manifest = manifest_file.by_shard(a.manifest)
    if not manifest:
        raise ValueError(f"{a.manifest}: empty manifest")
    shards = select_shards(list(manifest), a.shard, a.shard_index, a.num_shards, a.shards_per_task)
    keep = [s for s in manifest if not (a.redecode and s in shards)]
    _check_frames_match(a.store, manifest, keep, a.fps, a.size, a.quality)
    return params, manifest, shards


def cmd_run(a) -> int:
    from .engines import run_tasks
    from .run import VideoProgress, process_shard, write_run_config

    try:
        params, manifest, shards = validate(a)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    root = os.path.abspath(a.store)  # tasks may run elsewhere (dask/ray workers)
    cfg = store.config_name(a.alg, **params)
    # the same content whichever array task writes it last: every shard of the store, no task options
    config = {"config": cfg, "alg": a.alg, "params": params, "fps": a.fps, "size": a.size, "quality": a.quality,
              "manifest": os.path.abspath(a.manifest), "shards": list(manifest),
              "libraries": store.library_versions()}
    try:
        write_run_config(root, cfg, config)  # the first write: a store that cannot be created fails here
    except OSError as e:
        print(f"error: --store {a.store}: cannot be written ({e.strerror or e})", file=sys.stderr)
        return 2
    if not shards:
        print(f"{cfg}: no shards for this task (--shard-index {a.shard_index}); nothing to do")
        return 0
    print(f"{cfg}: {len(shards)} shard(s), {sum(len(manifest[s]) for s in shards)} video(s) -> {root}")
    tasks = [dict(root=root, shard=s, rows=manifest[s], alg=a.alg, params=params, cfg=cfg,
                  fps=a.fps, size=a.size, quality=a.quality, timeout=a.timeout, force=a.force,
                  retry_failed=a.retry_failed, redecode=a.redecode)
             for s in shards]
    t0 = time.perf_counter()
    results = []
    # per-video events need a queue the workers can reach: loky's run on this host
    progress = VideoProgress({s: len(manifest[s]) for s in shards}, cfg, events=a.backend == "loky")
    try:
        for t in tasks:
            t["progress"] = progress.queue
        for st in run_tasks(process_shard, tasks, a.jobs, a.backend, a.scheduler):
            results.append(st)
            progress.finished(st)
    finally:
        progress.close()
    wall = time.perf_counter() - t0
    results.sort(key=lambda r: r["shard"])
    print_summary(results, wall, a.jobs)
    if any(r["failed"] for r in results):
        return 1
    return 3 if any(r["busy"] for r in results) else 0


def print_summary(results: list[dict], wall: float, jobs: int) -> None:
    print(f"\n{'shard':>6} {'frames':>7} {'S min':>6} {'S max':>6} {'decoded':>8} {'labelled':>9} {'failed':>7} {'s':>7}")
    for r in results:
        if r["busy"]:
            print(f"{r['shard']:>6} busy: {r['busy']}")
            continue
        print(f"{r['shard']:>6} {r['frames']:>7} {str(r['nseg_min']):>6} {str(r['nseg_max']):>6} "
              f"{'yes' if r['decoded'] else 'kept':>8} {'yes' if r['labelled'] else 'kept':>9} "
              f"{len(r['failed']):>7} {r['seconds']:>7.1f}")
    n = sum(r["frames"] for r in results if r["labelled"])
    nf = sum(len(r["failed"]) for r in results)
    nb = sum(bool(r["busy"]) for r in results)
    print(f"total: {len(results)} shard(s), {n} frames labelled in {wall:.1f} s "
          f"({n / max(wall, 1e-9) / max(jobs, 1):.0f} frames/s/worker), {nf} failed input(s), "
          f"{nb} busy (held by another live run: not touched, rerun later)")
    for r in results:
        for f in r["failed"]:
            print(f"  failed  shard {r['shard']}  {f.get('path') or f['id']}: {f['reason']}")


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    sub = argv[0] if argv and argv[0] in ("run", "status", "show", "export") else "run"
    if argv and argv[0] == sub:
        argv = argv[1:]
    if sub == "run":
        p = run_parser(stage_parser(
            "python -m preprocess",
            description="Decode videos to size x size frames at --fps and compute superpixel label maps "
                        "into a sharded Zarr v3 store. Other commands: status, show, export "
                        "(python -m preprocess <command> --help). Exit codes: 0 done, 1 some inputs failed, "
                        "2 unusable options or manifest (nothing written), 3 some shards busy (held by a live run)."))
        return cmd_run(p.parse_args(argv))
    return view_main(sub, argv)


def view_main(sub: str, argv: list[str]) -> int:
    """`status`, `show` (preprocess/views.py) and `export` (preprocess/export.py): reading a store."""
    p = stage_parser(f"python -m preprocess {sub}")
    p.add_argument("--store", required=True, help="store root")
    if sub == "status":
        from .views import cmd_status

        p.description = "Shards done / failed / missing, per label configuration; --videos: the videos."
        p.add_argument("--videos", action="store_true", help="list the videos instead: shard, id, frames and the "
                       "label configurations complete for each")
        p.add_argument("--json", default=None, help="also write the table as JSON here")
        return cmd_status(p.parse_args(argv))
    if sub == "show":
        from .views import cmd_show

        p.description = "Superpixel boundaries over a few frames of one video, as a PNG."
        p.add_argument("--video", required=True, help="video id (as in the manifest; `status --videos` lists them)")
        p.add_argument("--config", default=None, help="label configuration, e.g. slic-n30-c30 (default: first)")
        p.add_argument("--frames", type=int, default=4, help="frames to show")
        p.add_argument("--out", required=True, help="output PNG")
        return cmd_show(p.parse_args(argv))
    from .export import cmd_export

    p.description = "Export one shard to HDF5 (frames raw uint8 + label maps), for tools that read HDF5."
    p.add_argument("--shard", type=int, required=True, help="the shard's number (`status` lists them)")
    p.add_argument("--format", default="hdf5", choices=["hdf5"], help="file format (needs the h5 extra: "
                   "pip install 'spixwalk[h5]')")
    p.add_argument("--out", required=True, help="output .h5 file")
    return cmd_export(p.parse_args(argv))

