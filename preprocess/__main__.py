"""python -m preprocess [run] --manifest M --store S --alg slic ...  |  status  |  show  |  export"""
from __future__ import annotations

import argparse
import sys
import time

from . import spconfig, store
from .spconfig import ALGORITHMS
from .superpixels import check_params


def alg_params(a) -> dict:
    return spconfig.params_from_args(a.alg, a)


def run_parser(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--manifest", required=True, help="manifest.jsonl from `python -m data_manifest build`")
    p.add_argument("--store", required=True, help="store root (one Zarr v3 group per shard)")
    p.add_argument("--alg", default="slic", help=f"superpixel algorithm: {', '.join(ALGORITHMS)}")
    spconfig.add_options(p.add_argument_group("algorithm parameters (preprocess/spconfig.py)"))
    g = p.add_argument_group("frames")
    g.add_argument("--fps", type=float, default=8.0, help="sampling frame rate")
    g.add_argument("--size", type=int, default=256, help="frames are resized to size x size")
    g.add_argument("--quality", type=int, default=90, help="JPEG quality of stored frames")
    g.add_argument("--timeout", type=float, default=600.0, help="per-video ffmpeg timeout (s)")
    g = p.add_argument_group("work split")
    g.add_argument("--jobs", type=int, default=1, help="parallel shard tasks")
    g.add_argument("--backend", default="loky", choices=["loky", "multiprocessing", "dask", "ray"],
                   help="joblib backend (dask/ray need the [dask]/[ray] extras)")
    g.add_argument("--scheduler", default=None, help="dask scheduler / ray cluster address")
    g.add_argument("--shard", default=None, help="only these shards: K or K1,K2")
    g.add_argument("--shard-index", type=int, default=None, help="this task's index i of --num-shards n ranges")
    g.add_argument("--num-shards", type=int, default=None, help="split the manifest's shards into n ranges")
    g.add_argument("--force", action="store_true", help="redo shards even where complete")
    return p


def cmd_run(a) -> int:
    from tqdm import tqdm

    from .run import parallel_map, process_shard, read_manifest, select_shards, write_run_config

    try:
        if a.alg not in ALGORITHMS:
            raise ValueError(f"unknown algorithm {a.alg!r}; choose one of {', '.join(ALGORITHMS)}")
        params = alg_params(a)
        check_params(a.alg, a.size, **params)
        if (a.shard_index is None) != (a.num_shards is None):
            raise ValueError("--shard-index and --num-shards go together")
        manifest = read_manifest(a.manifest)
        if not manifest:
            raise ValueError(f"{a.manifest}: empty manifest")
        shards = select_shards(list(manifest), a.shard, a.shard_index, a.num_shards)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    cfg = store.config_name(a.alg, **params)
    config = {**vars(a), "config": cfg, "params": params, "shards": shards,
              "libraries": store.library_versions()}
    write_run_config(a.store, cfg, config)
    print(f"{cfg}: {len(shards)} shard(s), {sum(len(manifest[s]) for s in shards)} video(s) -> {a.store}")
    tasks = [dict(root=a.store, shard=s, rows=manifest[s], alg=a.alg, params=params, cfg=cfg,
                  fps=a.fps, size=a.size, quality=a.quality, timeout=a.timeout, force=a.force)
             for s in shards]
    t0 = time.perf_counter()
    results = []
    for st in tqdm(parallel_map(process_shard, tasks, a.jobs, a.backend, a.scheduler),
                   total=len(tasks), unit="shard", desc=cfg):
        results.append(st)
    wall = time.perf_counter() - t0
    results.sort(key=lambda r: r["shard"])
    print_summary(results, wall, a.jobs)
    failed = [f for r in results for f in r["failed"]]
    return 1 if failed else 0


def print_summary(results: list[dict], wall: float, jobs: int) -> None:
    print(f"\n{'shard':>6} {'frames':>7} {'S min':>6} {'S max':>6} {'decoded':>8} {'labelled':>9} {'failed':>7} {'s':>7}")
    for r in results:
        print(f"{r['shard']:>6} {r['frames']:>7} {str(r['nseg_min']):>6} {str(r['nseg_max']):>6} "
              f"{'yes' if r['decoded'] else 'kept':>8} {'yes' if r['labelled'] else 'kept':>9} "
              f"{len(r['failed']):>7} {r['seconds']:>7.1f}")
    n = sum(r["frames"] for r in results if r["labelled"])
    nf = sum(len(r["failed"]) for r in results)
    print(f"total: {len(results)} shard(s), {n} frames labelled in {wall:.1f} s "
          f"({n / max(wall, 1e-9) / max(jobs, 1):.0f} frames/s/worker), {nf} failed input(s)")
    for r in results:
        for f in r["failed"]:
            print(f"  failed  shard {r['shard']}  {f.get('path') or f['id']}: {f['reason']}")


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    sub = argv[0] if argv and argv[0] in ("run", "status", "show", "export") else "run"
    if argv and argv[0] == sub:
        argv = argv[1:]
    if sub == "run":
        p = run_parser(argparse.ArgumentParser(
            prog="python -m preprocess",
            description="Decode videos to size x size frames at --fps and compute superpixel label maps "
                        "into a sharded Zarr v3 store. Other commands: status, show, export "
                        "(python -m preprocess <command> --help)."))
        return cmd_run(p.parse_args(argv))
    from . import report

    return report.main(sub, argv)


if __name__ == "__main__":
    sys.exit(main())
