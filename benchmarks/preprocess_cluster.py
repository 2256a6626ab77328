"""Cluster figures of the preprocess stage (part of `python -m benchmarks.preprocess`).

- peak RSS of one shard task vs shard size (k one-minute videos; sets the SLURM template's --mem)
- dask (real distributed LocalCluster) vs loky frames/s on 2 workers, same shards
- manifest build time for a Kinetics-sized tree of sparse files (stat only)
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SLIC = ("slic", {"n_segments": 30, "compactness": 30.0}, "slic-n30-c30")

PEAK = """
import json, resource, sys
from spixwalk.preprocess.run import process_shard
rows = json.loads(sys.argv[1])
st = process_shard(sys.argv[2], 0, rows, *json.loads(sys.argv[3]))
hwm = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")][0]
print(json.dumps({"task_mb": hwm / 1024, "ffmpeg_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                  "frames": st["frames"], "s": st["seconds"]}))
"""


def lavfi_video(path: Path, seconds: float, source: str = "testsrc2") -> Path:
    from spixwalk.preprocess.decode import ffmpeg_exe

    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi", "-i",
                        f"{source}=size=640x360:rate=25:duration={seconds}", "-c:v", "libx264", "-preset", "ultrafast",
                        "-pix_fmt", "yuv420p", str(path)], check=True)
    return path


def rss_per_task(tmp: Path, shard_sizes: list[int], seconds: float) -> dict:
    """Peak RSS of a fresh process running one shard task of k videos (same file, distinct ids)."""
    video = lavfi_video(tmp / f"clip-{seconds:g}s.mp4", seconds)
    out = {}
    for k in shard_sizes:
        rows = [{"id": f"v{i:03d}", "path": str(video)} for i in range(k)]
        res = subprocess.run([sys.executable, "-c", PEAK, json.dumps(rows), str(tmp / f"rss-{k}"), json.dumps(SLIC)],
                             capture_output=True, text=True, cwd=REPO, check=True)  # the checkout's spixwalk
        out[str(k)] = json.loads(res.stdout.strip().splitlines()[-1])
        print(f"  shard of {k} x {seconds:g} s videos: task peak {out[str(k)]['task_mb']:.0f} MB, "
              f"{out[str(k)]['frames']} frames, {out[str(k)]['s']:.0f} s", flush=True)
    return out


def engines(tmp: Path, shards: int, seconds: float, jobs: int = 2) -> dict:
    """The same shards on loky and on a real dask LocalCluster; wall time includes starting workers."""
    from spixwalk.preprocess.engines import run_tasks
    from spixwalk.preprocess.run import process_shard

    videos = [lavfi_video(tmp / f"eng-{i}.mp4", seconds, src) for i, src in enumerate(("testsrc2", "smptebars"))]
    out = {}
    for backend in ("loky", "dask"):
        root = tmp / f"eng-{backend}"
        tasks = [dict(root=str(root), shard=s, rows=[{"id": f"v{s}", "path": str(videos[s % 2])}],
                      alg=SLIC[0], params=SLIC[1], cfg=SLIC[2]) for s in range(shards)]
        t = time.perf_counter()
        stats = list(run_tasks(process_shard, tasks, jobs, backend))
        wall = time.perf_counter() - t
        n = sum(s["frames"] for s in stats)
        out[backend] = {"frames": n, "wall_s": wall, "frames_per_s": n / wall}
        print(f"  {backend}: {n} frames in {wall:.1f} s on {jobs} workers", flush=True)
    out["dask_vs_loky"] = out["dask"]["frames_per_s"] / out["loky"]["frames_per_s"]
    return out


def manifest_build(tmp: Path, files: int, classes: int = 400) -> dict:
    """A Kinetics-layout tree of sparse 1 MB files (no data blocks), then `data_manifest build` on it."""
    root = tmp / "kinetics"
    t = time.perf_counter()
    for i in range(files):
        d = root / "train" / f"class{i % classes:03d}"
        if i < classes:
            d.mkdir(parents=True)
        fd = os.open(d / f"vid{i:07d}_000000_000010.mp4", os.O_CREAT | os.O_WRONLY, 0o644)
        os.ftruncate(fd, 1 << 20)
        os.close(fd)
    made = time.perf_counter() - t
    cmd = [sys.executable, "-m", "data_manifest", "build", "--videos", str(root), "--shard-size", "64",
           "--out", str(tmp / "kinetics.jsonl")]
    times = []
    for _ in range(2):  # fresh build, then a rebuild over the existing manifest
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, cwd=REPO)
        times.append(time.perf_counter() - t)
    print(f"  manifest of {files} files: build {times[0]:.1f} s, rebuild {times[1]:.1f} s "
          f"(tree made in {made:.0f} s)", flush=True)
    return {"files": files, "build_s": times[0], "rebuild_s": times[1]}


def measure_cluster(tmp: Path, rss_shards: list[int], video_seconds: float, engine_shards: int, manifest_files: int) -> dict:
    tmp.mkdir(parents=True, exist_ok=True)
    res = {"video_seconds": video_seconds}
    if rss_shards:
        res["rss_per_task"] = rss_per_task(tmp, rss_shards, video_seconds)
    if engine_shards:
        res["engines_2_workers"] = engines(tmp, engine_shards, min(video_seconds, 20.0))
    if manifest_files:
        res["manifest"] = manifest_build(tmp, manifest_files)
    return res


def table_rows(c: dict) -> list[tuple]:
    rows = []
    for k, v in c.get("rss_per_task", {}).items():
        rows.append((f"peak RSS / task, {k} x {c['video_seconds']:g} s videos", f"{v['task_mb']:.0f} MB",
                     f"ffmpeg {v['ffmpeg_mb']:.0f} MB"))
    if "engines_2_workers" in c:
        e = c["engines_2_workers"]
        rows.append(("dask vs loky, 2 workers", f"{e['dask']['frames_per_s']:.0f} vs {e['loky']['frames_per_s']:.0f} f/s",
                     f"ratio {e['dask_vs_loky']:.2f}"))
    if "manifest" in c:
        m = c["manifest"]
        rows.append((f"manifest build, {m['files']} files", f"{m['build_s']:.1f} s", f"rebuild {m['rebuild_s']:.1f} s; <= 10"))
    return rows
