"""One GPU, measured: training throughput and memory, bf16 vs fp32, DAVIS propagation on the device.

    python -m benchmarks.gpu --store work/store --davis ../shared/data/davis2016-val [--cpu-results DIR]

1. per preset (--presets, default thesis and crw), training frames/s at 256 px for superpixel (SLIC-30) and patch
   nodes, each at the largest bf16 batch whose step fits --memory-gb (default 32, the thesis's V100: batch 52
   superpixels vs 36 patches; the fp16 search too), fed by the trainer's loader (--aug-on device) over at least
   WAVES loader waves, with FLOP/s and % of the bf16 peak; the data wait as the trainer logs it (1 - device-busy /
   wall, CUDA events, no sync per step); the same step on a device-resident batch (what the GPU alone does, and
   with --compile, the first preset's); one worker's clips/s measured inside the workers and the workers needed
   for < 5% wait; TF32 off (or --tf32) for every part, whatever --parts; use a store whose clips a batch does not
   repeat;
2. `python -m train` itself (the first preset, the same store, batches and workers): frames/s and data wait from
   its own log rows, the figures the trainer's targets are stated in;
3. bf16 autocast vs fp32, the same seed and clips: loss curves side by side, max relative difference, speed;
4. DAVIS propagation on the device, end to end (decode, features, propagation, PNGs, metrics), s/frame, the
   time of each stage alone, and with --cpu-results (the CPU path's PNGs of the same encoder) the fraction of
   pixels that differ and J&F of both.
Writes bench-results/gpu.json after each part (a run cut short keeps the parts it finished; part_seconds says
what each took) and prints one table. `--tiny` runs every part on the CPU in seconds (tests).
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see spixwalk/__init__.py
# the batch search allocates many sizes: without expandable segments fragmentation ends it early
os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from spixwalk.train.loop import build_model, train_step  # noqa: E402
from spixwalk.train.presets import PRESETS, apply_preset  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CFG = "slic-n30-c30"
T = 4
LABEL_CACHE_MB = 256  # the trainer's --label-cache-mb default
WAIT_TARGET = 0.05  # data-wait fraction the loader must stay under
PREFETCH = 2  # batches each loader worker holds ready
WAVES = 5  # loader waves timed at least: the wait depends on the phase of a shorter window
# dense bf16 tensor-core peak, TFLOP/s, by device name (vendor data sheets, SXM parts); --peak-tflops overrides
BF16_PEAK = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0, "L4": 121.0}


def log(msg: str) -> None:
    print(f"[bench-gpu] {msg}", file=sys.stderr, flush=True)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def machine(device: torch.device) -> dict:
    m = {"device": str(device), "torch": torch.__version__, "cpus": os.cpu_count()}
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        m.update(gpu=p.name, gpu_memory_gb=round(p.total_memory / 2**30, 1), sms=p.multi_processor_count)
    return m


# ---------------------------------------------------------------- training

def dataset(reader, nodes: str, a, seed: int = 0, on_device: bool = True):
    """The trainer's dataset for `nodes` (--aug-on device unless on_device=False), clips of T frames."""
    from spixwalk.train.data import Aug, ClipDataset, clip_index
    from spixwalk.train.loop import static_nodes

    cfgs = [] if nodes == "patches" else [CFG]
    refs = reader.videos(None if nodes == "patches" else CFG)
    clips, _ = clip_index(refs, T, 1)  # every start: 693 DAVIS-2016 train frames give ~600 clips, > one batch
    ds = ClipDataset(reader, clips, T, cfgs, nodes, seed=seed, aug=Aug.from_transforms(a.frame_transforms, a.img_size))
    a.nodes = nodes
    ds.on_device, ds.node_count = on_device, static_nodes(reader, cfgs, a)
    return ds


class Timed(torch.utils.data.Dataset):
    """The dataset with each item's seconds inside the worker that made it (per-worker rate, measured there)."""

    def __init__(self, ds):
        self.ds = ds

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, key):
        t0 = time.perf_counter()
        item = self.ds[key]
        if item is not None:
            item["worker_s"] = time.perf_counter() - t0
        return item


def timed_collate(items):
    from spixwalk.train.data import collate

    t0 = time.perf_counter()
    b = collate(items)
    b["worker_s"] = sum(it["worker_s"] for it in items if it is not None) + time.perf_counter() - t0
    return b


def loader(ds, batch: int, workers: int, device, seed: int = 0):
    """The trainer's loader set-up; its workers come from train.workers (this process ran the loader itself
    before: a forked worker would hang)."""
    from spixwalk.train import workers as loader_workers
    from spixwalk.train.data import StreamSampler

    return torch.utils.data.DataLoader(
        Timed(ds), batch_size=batch, sampler=StreamSampler(len(ds), seed), num_workers=workers,
        collate_fn=timed_collate, pin_memory=device.type == "cuda", persistent_workers=workers > 0,
        multiprocessing_context=loader_workers.context() if workers else None, timeout=600 if workers else 0,
        prefetch_factor=PREFETCH if workers else None, generator=torch.Generator().manual_seed(seed))


def to_device(batch: dict, device) -> dict:
    """A batch resident on the device but for `patch`, which device_aug.prepare reads without a sync."""
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) and k != "patch" else v for k, v in batch.items()}


class Model:
    """The trainer's network and Adam (train.loop.build_model) and its step (train.loop.train_step) for the
    options in a (a preset's values), seeded by `seed`."""

    def __init__(self, a, device, seed: int = 0):
        self.net, self.opt = build_model(argparse.Namespace(**{**vars(a), "seed": seed}), device)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda s: 1.0)
        self.a, self.device = a, device

    def step(self, b: dict, dtype) -> torch.Tensor:
        """One training step on batch b; dtype None = fp32, else autocast to dtype. Returns the loss."""
        autocast = torch.autocast(self.device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)
        return train_step(self.net, self.opt, self.sched, b, self.a, self.device, autocast)["loss"]


def tiled(b: dict, n: int) -> dict:
    """A batch of n clips made by repeating the clips of b (same shapes per clip as real data)."""
    B = len(b["patch"])
    idx = torch.arange(n) % B
    return {k: v[idx.to(v.device)] if torch.is_tensor(v) and v.dim() and len(v) == B else v for k, v in b.items()}


def fits(m, b: dict, n: int, dtype) -> bool:
    try:
        m.step(tiled(b, n), dtype)
        m.step(tiled(b, n), dtype)  # the second step holds Adam's state too
        sync(m.device)
        return True
    except torch.cuda.OutOfMemoryError:
        return False
    finally:
        m.opt.zero_grad(set_to_none=True)
        torch.cuda.empty_cache()


def max_batch(m, b: dict, dtype, limit: int, resolution: int, start: int = 8) -> int:
    """Largest clips per step under the memory cap: doubling from `start`, then bisection to `resolution` clips."""
    lo, hi = 0, max(1, start)
    while hi <= limit and fits(m, b, hi, dtype):
        lo, hi = hi, hi * 2
    hi = min(hi, limit + 1)
    while hi - lo > resolution:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(m, b, mid, dtype) else (lo, mid)
    log(f"batch search ({dtype}): {lo} clips fit, {hi} do not")
    return lo


def search_batches(m, probe: dict, a) -> dict:
    """The largest batch in bf16 and in fp16 (the thesis's 52 vs 36 were V100 fp16-class figures); the fp16
    search starts from the bf16 result (both keep 2-byte activations: a few probes instead of a dozen)."""
    if m.device.type != "cuda":
        return {"bf16": a.max_batch, "fp16": a.max_batch}  # no allocator cap to search against on the CPU
    b = to_device(probe, m.device)
    bf16 = max_batch(m, b, torch.bfloat16, a.max_batch, a.resolution)
    return {"bf16": bf16, "fp16": max_batch(m, b, torch.float16, a.max_batch, a.resolution, start=max(8, bf16))}


def step_flops(m, b: dict, dtype) -> float:
    """FLOPs of one training step (forward + backward) on batch b, counted by torch.utils.flop_counter."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        m.step(b, dtype)
    return float(fc.get_total_flops())


def gpu_alone(m, b: dict, steps: int, dtype) -> float:
    """Frames/s of steps on one device-resident batch, before any loader worker runs (workers still
    busy prefetching would starve the thread that launches the kernels)."""
    for _ in range(2):  # cuDNN autotuning, allocator
        m.step(b, dtype)
    sync(m.device)
    t0 = time.perf_counter()
    for _ in range(steps):
        m.step(b, dtype)
    sync(m.device)
    return steps * len(b["patch"]) * T / (time.perf_counter() - t0)


def fed(m, it, steps: int, warm: int, dtype) -> dict:
    """Loader-fed steps as the trainer runs them (no sync per step): frames/s and the data wait as the trainer's
    log defines it (train/clock.py data_wait: 1 - busy / wall, busy from Clock.busy, CUDA events around each step;
    on the CPU the steps' own host time). The first `warm` steps drain what the workers prefetched while the
    GPU was idle and are not timed; worker seconds are those measured inside the workers."""
    from spixwalk.train.clock import Clock, data_wait

    for _ in range(warm):
        m.step(next(it), dtype)
    sync(m.device)
    clock, frames, clips, worker_s = Clock("auto", m.device), 0, 0, 0.0
    t0 = time.perf_counter()
    for _ in range(steps):
        b = next(it)
        clock.step_start()
        m.step(b, dtype)
        clock.step_end()
        n = len(b["patch"])
        frames, clips, worker_s = frames + n * T, clips + n, worker_s + b["worker_s"]
    sync(m.device)
    wall = time.perf_counter() - t0
    return {"frames_per_s": frames / wall, "data_wait": data_wait(clock.busy(), wall), "step_s": wall / steps,
            "timed_steps": steps, "loader_clips_per_s_per_worker": clips / worker_s}


def bench_nodes(reader, nodes: str, a, device, dtype) -> dict:
    from spixwalk.train.data import collate

    ds = dataset(reader, nodes, a)
    probe = collate([ds[(0, i)] for i in range(min(8, len(ds)))])
    m = Model(a, device)
    batches = search_batches(m, probe, a)
    batch = batches["bf16"]
    resident = to_device(tiled(probe, batch), device)
    alone = gpu_alone(m, resident, a.steps, dtype)
    flops = step_flops(m, resident, dtype) / (batch * T)
    steps = max(a.steps, WAVES * max(a.workers, 1))  # whole loader waves: the workers deliver in waves of `workers`
    while True:
        try:
            r = fed(m, iter(loader(ds, batch, a.workers, device)), steps, a.workers * PREFETCH, dtype)
            break
        except torch.cuda.OutOfMemoryError:  # a batch of real clips above the probe's nodes: step down
            m.opt.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()
            batch = int(batch * 0.9)
            log(f"{nodes}: out of memory with real clips, retrying at batch {batch}")
    per_worker = r["loader_clips_per_s_per_worker"]
    r.update(nodes=nodes, batch=batch, max_batch_bf16=batches["bf16"], max_batch_fp16=batches["fp16"],
             workers=a.workers, gpu_only_frames_per_s=alone, store_clips=len(ds), clip_repeats_per_batch=batch / len(ds),
             flop_per_frame=flops, **_flop_rates(r["frames_per_s"], alone, flops, a.peak_tflops),
             workers_for_wait_under_5pct=math.ceil(alone / T * (1 - WAIT_TARGET) / per_worker),
             limit="loader" if r["data_wait"] > WAIT_TARGET else "GPU")
    if a.compile:
        m.net.encoder.compile()
        r["gpu_only_frames_per_s_compiled"] = gpu_alone(m, resident, a.steps, dtype)
    log(f"{nodes}: batch {batch}, {r['frames_per_s']:.0f} frames/s fed by {a.workers} workers "
        f"(GPU alone {r['gpu_only_frames_per_s']:.0f}), data wait {r['data_wait']:.1%}")
    return r


def _flop_rates(fed_fps: float, alone_fps: float, flop_per_frame: float, peak_tflops: float) -> dict:
    out = {"tflops_fed": fed_fps * flop_per_frame / 1e12, "tflops_gpu_alone": alone_fps * flop_per_frame / 1e12}
    if peak_tflops:
        out.update(pct_bf16_peak_fed=100 * out["tflops_fed"] / peak_tflops,
                   pct_bf16_peak_gpu_alone=100 * out["tflops_gpu_alone"] / peak_tflops)
    return out


def bench_preset(reader, a, device) -> dict:
    dtype = torch.bfloat16 if device.type == "cuda" else None
    r = {n: bench_nodes(reader, n, a, device, dtype) for n in ("superpixels", "patches")}
    for k in ("bf16", "fp16"):
        r[f"batch_ratio_{k}"] = r["superpixels"][f"max_batch_{k}"] / max(r["patches"][f"max_batch_{k}"], 1)
    return r


def trainer_run(a, nodes: str, batch: int, run: Path, compile: bool = False) -> dict:
    """`python -m train` itself, in its own process: the first preset, `nodes`, `batch`, --workers and the store
    as here, --aug-on auto (device on CUDA), clips at every start (as the train part's). Frames/s and the data
    wait of its log rows but the first (workers starting, cuDNN autotuning), weighted by their seconds."""
    import shutil
    import subprocess

    shutil.rmtree(run, ignore_errors=True)
    steps = a.trainer_rows * a.trainer_log_every
    cmd = [sys.executable, "-m", "train", "--store", str(Path(a.store).resolve()), "--preset", a.preset,
           "--nodes", nodes, "--label-config", CFG, "--clip-len", str(T), "--clips-per-video", "0",
           "--clip-stride", "1", "--img-size", str(a.img_size), "--batch", str(batch), "--workers", str(a.workers),
           "--steps", str(steps), "--log-every", str(a.trainer_log_every), "--ckpt-every", str(steps),
           "--device", a.device, "--run", str(run)] + (["--compile"] if compile else [])
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"bench-gpu: {' '.join(cmd[1:])} failed:\n{done.stderr[-3000:]}")
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
    timed = rows[1:] or rows
    wall = sum(r["seconds"] for r in timed)
    r = {"nodes": nodes, "compile": compile, "batch": batch, "workers": a.workers, "steps": steps, "timed_rows": len(timed),
         "frames_per_s": sum(r["clips_per_s"] * r["seconds"] for r in timed) * T / wall,
         "data_wait": sum(r["data_wait"] * r["seconds"] for r in timed) / wall, "command": " ".join(cmd[1:])}
    log(f"python -m train, {nodes}{' --compile' if compile else ''}: batch {batch}, {r['frames_per_s']:.0f} frames/s, data wait {r['data_wait']:.1%}")
    return r


TRAINER_BATCH = {"superpixels": 64, "patches": 32}  # clips per step where the batch part did not run first


def bench_trainer(a, res: dict) -> dict:
    """The trainer's own throughput per node mode, without and with --compile (rows superpixels, patches,
    superpixels+compile, patches+compile), at the batch part's bf16 batch if it ran, else --trainer-batch or
    TRAINER_BATCH. The first log row (workers starting, cuDNN autotuning, compilation) is not timed."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()  # what this process's allocator caches is the trainer's to use
    measured = res.get("batch", {})
    out = {}
    for compile in ((False, True) if a.compile else (False,)):
        for nodes in ("superpixels", "patches"):
            batch = measured.get(nodes, {}).get("bf16") or a.trainer_batch or TRAINER_BATCH[nodes]
            if a.tiny:
                batch = a.max_batch
            name = nodes + ("+compile" if compile else "")
            out[name] = trainer_run(a, nodes, batch, Path(a.work) / "trainer" / name, compile)
    return out


def precision_run(reader, a, device, dtype) -> tuple[list, float]:
    ds = dataset(reader, "superpixels", a, seed=1)
    m = Model(a, device, seed=1)
    it = iter(loader(ds, a.precision_batch, a.workers, device, seed=1))
    warm = Model(a, device, seed=2)  # cuDNN autotuning and the allocator on another model: not timed
    warm.step(to_device(next(iter(loader(ds, a.precision_batch, 0, device, seed=3))), device), dtype)
    sync(device)
    del warm
    losses, busy = [], 0.0
    for _ in range(a.precision_steps):
        b = to_device(next(it), device)
        t0 = time.perf_counter()
        losses.append(m.step(b, dtype))
        sync(device)
        busy += time.perf_counter() - t0
    return [float(x) for x in losses], a.precision_steps / busy


def bench_precision(reader, a, device) -> dict:
    torch.manual_seed(1)
    fp32, fp32_speed = precision_run(reader, a, device, None)
    torch.manual_seed(1)
    bf16, bf16_speed = precision_run(reader, a, device, torch.bfloat16)
    rel = [abs(x - y) / abs(y) for x, y in zip(bf16, fp32)]
    tail = max(1, len(fp32) // 10)
    final = abs(np.mean(bf16[-tail:]) - np.mean(fp32[-tail:])) / abs(np.mean(fp32[-tail:]))
    r = {"steps": len(fp32), "batch": a.precision_batch, "fp32_loss": fp32, "bf16_loss": bf16,
         "max_rel_diff": max(rel), "final_rel_diff": float(final),
         "finite": bool(np.isfinite(fp32).all() and np.isfinite(bf16).all()),
         "fp32_steps_per_s": fp32_speed, "bf16_steps_per_s": bf16_speed, "bf16_speedup": bf16_speed / fp32_speed}
    log(f"bf16 vs fp32: final loss {np.mean(bf16[-tail:]):.4f} vs {np.mean(fp32[-tail:]):.4f} "
        f"({final:.2%}), {r['bf16_speedup']:.2f}x faster")
    return r


# ---------------------------------------------------------------- DAVIS propagation

def score(davis, year, results, seqs, jobs: int) -> dict:
    """J&F of a results folder (the metrics module, sequences in parallel); a failed sequence stops the bench."""
    from spixwalk.evaluate import metrics

    res = metrics.evaluate(davis, year, results, sequences=seqs, progress=False, jobs=jobs)
    if res["failures"]:
        raise SystemExit(f"bench-gpu: scoring {results} failed: {res['failures'][0]['reason']}")
    return res["global"]


def pixels_differing(a_dir: Path, b_dir: Path, seqs) -> float:
    from spixwalk.evaluate.davis_io import load_result

    diff = total = 0
    for s in seqs:
        for p in sorted((a_dir / s).glob("*.png")):
            x, y = load_result(p), load_result(b_dir / s / p.name)
            diff, total = diff + int((x != y).sum()), total + x.size
    return diff / max(total, 1)


def stage_times(davis, seqs, featurize) -> dict:
    """Each stage alone over every frame: JPEG decode (threads, as in the pipeline), then features."""
    from spixwalk.evaluate.davis_io import frame_paths
    from spixwalk.evaluate.davis_run import decoded, featurized

    paths = [p for s in seqs for p in frame_paths(davis, s)]
    t0 = time.perf_counter()
    imgs = [img for _, img in decoded(paths)]
    t1 = time.perf_counter()
    by_size = {}
    for p, img in zip(paths, imgs):
        by_size.setdefault(img.shape[:2], []).append((p, img))
    for size, group in by_size.items():
        for _, _, f in featurized(group, featurize, size):
            pass
    sync(featurize.device)
    return {"decode_s": t1 - t0, "features_s": time.perf_counter() - t1, "frames": len(paths)}


def compare_cpu(a, seqs) -> dict:
    """The device's PNGs (--pred-dir) against the CPU path's (--cpu-results) for the same encoder."""
    cpu = score(a.davis, a.year, a.cpu_results, seqs, a.jobs)
    return {"cpu_J_and_F": cpu["J&F-Mean"], "pixels_differing": pixels_differing(Path(a.pred_dir), Path(a.cpu_results), seqs)}


def bench_davis(a, device) -> dict:
    from spixwalk.evaluate import features, davis_run
    from spixwalk.evaluate.davis_io import sequence_list

    seqs = sequence_list(a.davis, a.year, "val", a.sequences.split(",") if a.sequences else None)
    featurize = features.make("random", seed=0, device=device)
    checksum = float(sum(p.detach().double().abs().sum() for p in featurize.net.parameters()))
    out = Path(a.pred_dir)
    t0 = time.perf_counter()
    summary = davis_run.propagate_dataset(a.davis, a.year, out, featurize, sequences=seqs, overlays=False, progress=False,
                      max_frames=a.max_frames)
    sync(device)
    t1 = time.perf_counter()
    ours = score(a.davis, a.year, out, seqs, a.jobs)
    t2 = time.perf_counter()
    n = sum(s["frames"] for s in summary["sequences"])
    r = {"sequences": len(seqs), "frames": n, "end_to_end_s": t2 - t0, "propagate_s": t1 - t0,
         "metrics_s": t2 - t1, "s_per_frame": (t1 - t0) / n, "encoder_checksum": checksum,
         "propagation_only_s": sum(s["propagation_seconds_per_frame"] * (s["frames"] - 1)
                                   for s in summary["sequences"]),
         "J&F": ours["J&F-Mean"], "J": ours["J-Mean"], "F": ours["F-Mean"], "failures": summary["failures"],
         **stage_times(a.davis, seqs, featurize)}
    if a.cpu_results:
        r.update(compare_cpu(a, seqs))
    log(f"DAVIS: {len(seqs)} sequences, {n} frames, {r['end_to_end_s']:.1f} s end to end "
        f"({r['s_per_frame'] * 1000:.1f} ms/frame), J&F {r['J&F']:.3f}")
    return r


# ---------------------------------------------------------------- driver

def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__.split("\n")[0])
    p.add_argument("--store", default="work/store", help=f"store with frames and {CFG} labels")
    p.add_argument("--davis", default="../shared/data/davis2016-val")
    p.add_argument("--year", type=int, default=2016)
    p.add_argument("--sequences", default="", help="comma list (default: the set's list)")
    p.add_argument("--cpu-results", help="the CPU path's PNGs for the same encoder (random init, seed 0)")
    p.add_argument("--parts", default=",".join(DEFAULT_PARTS),
                   help="comma list, run in this order, most valuable first: trainer (python -m train itself, "
                   "superpixels and patches, without and with --compile), study (the study's GPU protocol), batch "
                   "(largest bf16/fp16 batch per node type), precision (bf16 vs fp32), davis (propagation time); also "
                   "train (frames/s of both presets fed and alone), compare (--pred-dir vs --cpu-results only)")
    p.add_argument("--kit", help="a `make device-kit` folder: its store, DAVIS sequences (year 2016)")
    p.add_argument("--out-dir", help="write gpu.json and one <part>.json per part here (overrides --out)")
    p.add_argument("--work", default="bench-results/gpu-work", help="trainer runs and scratch files")
    p.add_argument("--budget-s", type=float, default=480.0, help="seconds for the whole command, start-up "
                   "included: a part whose estimate exceeds the time left is dropped, not started")
    p.add_argument("--startup-s", type=float, default=30.0, help="seconds the command spent before this "
                   "process (wheel install, interpreter start), counted against --budget-s")
    p.add_argument("--device", default="auto")
    p.add_argument("--memory-gb", type=float, default=32.0, help="allocator cap for the batch search (thesis: 32)")
    p.add_argument("--img-size", type=int, default=256)
    p.add_argument("--presets", default="thesis,crw", help="comma list of training presets whose network, "
                   "augmentation and walk options the train part runs with, each in turn (older H200 figures in the "
                   "README: legacy)")
    p.add_argument("--tf32", action="store_true", help="allow TF32 in fp32 matmuls and convolutions (default: "
                   "off for every part, whatever --parts, so fp32 means fp32)")
    p.add_argument("--compile", action="store_true", help="also time the GPU alone with the encoder torch.compiled")
    p.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak of the GPU (default: by name, "
                   f"{', '.join(f'{k} {v:g}' for k, v in BF16_PEAK.items())})")
    p.add_argument("--max-batch", type=int, default=1024, help="batch search limit (the batch itself on the CPU)")
    p.add_argument("--resolution", type=int, default=16, help="batch search stops within this many clips")
    p.add_argument("--steps", type=int, default=20, help="timed training steps per node mode")
    p.add_argument("--workers", type=int, default=max(1, min(14, (os.cpu_count() or 2) - 2)))
    p.add_argument("--trainer-rows", type=int, default=6, help="trainer part: log rows per node mode (the first "
                   "is not timed)")
    p.add_argument("--trainer-log-every", type=int, default=10, help="trainer part: steps per log row")
    p.add_argument("--trainer-batch", type=int, default=0, help="trainer part: clips per step where the batch "
                   "part did not run first (0: superpixels 64, patches 32)")
    p.add_argument("--precision-steps", type=int, default=40)
    p.add_argument("--precision-batch", type=int, default=32)
    p.add_argument("--max-frames", type=int, default=0, help="DAVIS frames per sequence (0: all)")
    p.add_argument("--study-s", type=float, default=120.0, help="study part: device seconds it may train")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes for the metrics")
    p.add_argument("--out", default="bench-results/gpu.json")
    p.add_argument("--pred-dir", default="bench-results/gpu-davis", help="where the device's PNGs go")
    p.add_argument("--tiny", action="store_true", help="CPU smoke run: 64 px, batch 2, a few steps and frames")
    a = p.parse_args(argv)
    unknown = set(a.parts.split(",")) - set(PARTS)
    if unknown:
        p.error(f"--parts: unknown {sorted(unknown)}; choose from {', '.join(PARTS)}")
    if a.kit:
        a.store, a.davis, a.year = str(Path(a.kit) / "store"), str(Path(a.kit) / "davis"), 2016
    if a.out_dir:
        a.out = str(Path(a.out_dir) / "gpu.json")
    a.preset = a.presets.split(",")[0]
    apply_preset(a)  # the first preset's network, augmentation and walk options (its nodes and clip_len go unused:
    # both node modes are measured, on clips of T frames)
    if a.tiny:
        a.device, a.img_size, a.max_batch, a.steps, a.workers = "cpu", 64, 2, 1, 0
        a.precision_steps, a.precision_batch, a.jobs, a.trainer_rows, a.trainer_log_every = 2, 2, 1, 2, 1
        a.compile = False  # inductor takes minutes per ResNet-18 step on a small CPU
        if a.kit and not a.sequences:  # one carried sequence: 480p propagation on a CPU takes minutes per sequence
            a.sequences = (Path(a.davis) / "ImageSets" / "2016" / "val.txt").read_text().split()[0]
    return a


def with_preset(a, preset: str, **over) -> argparse.Namespace:
    """A copy of a with `preset`'s options in place of the first preset's (apply_preset; its nodes and clip_len
    go unused: both node modes are measured, on clips of T frames), and the options in `over`."""
    b = argparse.Namespace(**{**{k: v for k, v in vars(a).items() if k not in PRESETS[a.preset]}, **over})
    b.preset = preset
    apply_preset(b)
    return b


def set_tf32(on: bool) -> None:
    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on


ALLOCATOR_NOTE = ("the cap (torch.cuda.set_per_process_memory_fraction) bounds what PyTorch's caching allocator "
                  "hands out: activations, weights, Adam state, cuDNN workspaces; not the CUDA context, cuBLAS/cuDNN "
                  "handles or the NCCL buffers (several hundred MB more per process)")


def cap_memory(a, device, fraction: float | None = None) -> None:
    """The allocator cap of --memory-gb (or `fraction` of the device) on CUDA."""
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
        torch.cuda.set_per_process_memory_fraction(fraction or min(1.0, a.memory_gb * 2**30 / total), device)


def setup(a, device) -> dict:
    """cuDNN autotuning, the stated TF32 state and the memory cap on CUDA; the machine and settings as the JSON's head."""
    res = {"machine": machine(device), "memory_gb": a.memory_gb, "img_size": a.img_size, "tf32": a.tf32}
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        set_tf32(a.tf32)
        cap_memory(a, device)
        res["allocator_cap"] = ALLOCATOR_NOTE
        if a.peak_tflops is None:
            name = res["machine"]["gpu"]
            a.peak_tflops = next((v for k, v in BF16_PEAK.items() if k in name), 0.0)
    res["bf16_peak_tflops"] = a.peak_tflops or None
    return res


def part_train(a, device, res: dict, save) -> dict:
    """Each preset in turn, saved as it finishes (the part takes the longest)."""
    from spixwalk.preprocess.store import StoreReader  # zarr is needed for the store's parts only

    reader, presets = StoreReader(a.store, label_cache_mb=LABEL_CACHE_MB), a.presets.split(",")
    out = res["train"] = {}
    for p in presets:
        # --compile for the first preset only: each compilation costs tens of seconds, one figure is the target
        out[p] = bench_preset(reader, with_preset(a, p, compile=a.compile and p == presets[0]), device)
        save(res)
    return out


def part_trainer(a, device, res: dict, save) -> dict:
    return bench_trainer(a, res)


def part_precision(a, device, res: dict, save) -> dict:
    from spixwalk.preprocess.store import StoreReader

    return bench_precision(StoreReader(a.store, label_cache_mb=LABEL_CACHE_MB), a, device)


def part_davis(a, device, res: dict, save) -> dict:
    cap_memory(a, device, 1.0)  # the evaluation's own setting: full fp32, no TF32, no cap
    r = bench_davis(a, device)
    cap_memory(a, device)  # whatever the evaluation set, later parts run with the stated cap and TF32 state
    if device.type == "cuda":
        set_tf32(a.tf32)
    return r


def part_compare(a, device, res: dict, save) -> dict:
    """A device run's PNGs brought back, scored against a CPU run made here."""
    from spixwalk.evaluate.davis_io import sequence_list

    return compare_cpu(a, sequence_list(a.davis, a.year, "val", a.sequences.split(",") if a.sequences else None))


def part_batch(a, device, res: dict, save) -> dict:
    """Largest bf16 and fp16 batch per node type under --memory-gb, the first preset's network."""
    from spixwalk.preprocess.store import StoreReader
    from spixwalk.train.data import collate

    reader, out = StoreReader(a.store, label_cache_mb=LABEL_CACHE_MB), {}
    for nodes in ("superpixels", "patches"):
        ds = dataset(reader, nodes, a)
        probe = collate([ds[(0, i)] for i in range(min(8, len(ds)))])
        out[nodes] = search_batches(Model(a, device), probe, a)
    out["ratio_bf16"] = out["superpixels"]["bf16"] / max(out["patches"]["bf16"], 1)
    out["ratio_fp16"] = out["superpixels"]["fp16"] / max(out["patches"]["fp16"], 1)
    return out


STUDY_HOOK = "spixwalk.study"  # the study's device_protocol() runs here


def part_study(a, device, res: dict, save) -> dict:
    """The study's GPU protocol (superpixels and CRW patches, 2 seeds each, a fixed FLOP budget, scored on the
    kit's DAVIS sequences) through the package's study module where it exists; until then a named TODO."""
    import importlib
    import importlib.util

    if importlib.util.find_spec(STUDY_HOOK) is None or not hasattr(importlib.import_module(STUDY_HOOK),
                                                                   "device_protocol"):
        log(f"study: TODO(study-in-package): no {STUDY_HOOK}.device_protocol in this checkout; part skipped")
        return {"todo": f"{STUDY_HOOK}.device_protocol(store, davis, sequences, work, seconds, tiny) not in this checkout"}
    from spixwalk.evaluate.davis_io import sequence_list

    seqs = sequence_list(a.davis, a.year, "val", a.sequences.split(",") if a.sequences else None)
    return importlib.import_module(STUDY_HOOK).device_protocol(
        store=a.store, davis=a.davis, sequences=seqs, work=str(Path(a.work) / "study"), seconds=a.study_s, tiny=a.tiny)


# each part: (options, device, the results so far, save) -> its dict, res[part]
PARTS = {"train": part_train, "trainer": part_trainer, "study": part_study, "batch": part_batch,
         "precision": part_precision, "davis": part_davis, "compare": part_compare}
DEFAULT_PARTS = ("trainer", "study", "batch", "precision", "davis")


def estimate_s(part: str, a) -> float:
    """Seconds a part is expected to take on one H100/H200 (start-up of each trainer process, ~90 s per
    compilation, the batch search's probes), or on the CPU with --tiny; gpu.json's part_seconds has the real ones."""
    if a.tiny:
        return {"trainer": 60.0, "study": 5.0, "batch": 20.0, "precision": 20.0, "davis": 30.0}.get(part, 60.0)
    steps = a.trainer_rows * a.trainer_log_every
    per_run = 30.0 + steps * 0.1
    return {"trainer": 2 * per_run + (2 * (per_run + 90.0) if a.compile else 0.0),
            "study": a.study_s + 30.0 if importlib_has(STUDY_HOOK) else 1.0,
            "batch": 60.0, "precision": 20.0 + a.precision_steps * 0.2, "davis": 45.0,
            "train": 300.0, "compare": 20.0}[part]


def importlib_has(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def measure(a, save=lambda res: None) -> dict:
    """Each part of --parts in turn, its seconds in part_seconds; `save` gets the results after each part, so a
    run stopped by a timeout keeps every part it finished. A part whose estimate exceeds what is left of
    --budget-s is dropped (listed in `dropped`), never started and cut off."""
    from spixwalk.options import resolve_device

    t_start = time.perf_counter() - a.startup_s
    parts = a.parts.split(",")
    est = {p: estimate_s(p, a) for p in parts}
    log(f"estimated run time: {a.startup_s + sum(est.values()):.0f} s of a {a.budget_s:.0f} s budget "
        f"(start-up {a.startup_s:.0f}, " + ", ".join(f"{p} {v:.0f}" for p, v in est.items()) + ")")
    device = resolve_device(a.device)
    res = setup(a, device)
    res["estimate_s"] = est
    for part in parts:
        left = a.budget_s - (time.perf_counter() - t_start)
        if est[part] > left:
            log(f"{part}: dropped (estimate {est[part]:.0f} s, {left:.0f} s left)")
            res.setdefault("dropped", []).append(part)
            save(res)
            continue
        t0 = time.perf_counter()
        res[part] = PARTS[part](a, device, res, save)
        res.setdefault("part_seconds", {})[part] = round(time.perf_counter() - t0, 1)
        save(res, part)
    return res


def print_table(r: dict) -> None:
    m = r["machine"]
    print(f"\n{m.get('gpu', m['device'])} ({m.get('gpu_memory_gb', '-')} GB), torch {m['torch']}, {m['cpus']} CPUs")
    for preset, tr in r.get("train", {}).items():
        for n in ("superpixels", "patches"):
            _print_train(f"{preset}/{n}", tr[n], r)
        print(f"{preset}: largest batch superpixels / patches: bf16 {tr['batch_ratio_bf16']:.2f}, fp16 "
              f"{tr['batch_ratio_fp16']:.2f} (thesis, 32 GB V100: 52/36 = 1.44)")
    if "batch" in r:
        b = r["batch"]
        print(f"largest batch (cap {r['memory_gb']:g} GB) superpixels / patches: bf16 {b['superpixels']['bf16']} / "
              f"{b['patches']['bf16']} = {b['ratio_bf16']:.2f}, fp16 {b['superpixels']['fp16']} / {b['patches']['fp16']}"
              f" = {b['ratio_fp16']:.2f} (thesis, 32 GB V100: 52/36 = 1.44)")
    for n, t in r.get("trainer", {}).items():
        print(f"python -m train {n:<12} batch {t['batch']:>5}, {t['workers']} workers: {t['frames_per_s']:>7.0f} frames/s, "
              f"data wait {t['data_wait']:6.1%} (log rows 2-{t['timed_rows'] + 1} of {t['steps']} steps)")
    if "precision" in r:
        p = r["precision"]
        print(f"bf16 vs fp32, {p['steps']} steps of {p['batch']} clips: final loss diff {p['final_rel_diff']:.2%}, "
              f"max step diff {p['max_rel_diff']:.2%}, finite {p['finite']}, speed-up {p['bf16_speedup']:.2f}x")
    if "davis" in r:
        d = r["davis"]
        print(f"DAVIS {d['sequences']} seqs / {d['frames']} frames: {d['end_to_end_s']:.1f} s end to end "
              f"({d['s_per_frame'] * 1000:.1f} ms/frame propagating; stages alone: decode {d['decode_s']:.1f} s, "
              f"features {d['features_s']:.1f} s, propagation {d['propagation_only_s']:.1f} s, "
              f"metrics {d['metrics_s']:.1f} s), J&F {d['J&F']:.3f}"
              + (f"; CPU path J&F {d['cpu_J_and_F']:.3f}, pixels differing {d['pixels_differing']:.2e}"
                 if "pixels_differing" in d else ""))


def _print_train(name: str, t: dict, r: dict) -> None:
    peak = f" = {t['pct_bf16_peak_gpu_alone']:.0f}% of bf16 peak" if "pct_bf16_peak_gpu_alone" in t else ""
    print(f"train {name:<20} batch {t['batch']:>5} (cap {r['memory_gb']:g} GB; fp16 {t['max_batch_fp16']})  "
          f"{t['frames_per_s']:>7.0f} frames/s ({t['tflops_fed']:.0f} TFLOP/s)  GPU alone {t['gpu_only_frames_per_s']:>7.0f} "
          f"({t['tflops_gpu_alone']:.0f} TFLOP/s{peak})  data wait {t['data_wait']:6.1%} over {t['timed_steps']} steps  "
          f"{t['workers']} workers (need {t['workers_for_wait_under_5pct']}; "
          f"{t['loader_clips_per_s_per_worker']:.0f} clips/s each, measured in the workers)  {t['limit']}-bound"
          + (f"  compiled alone {t['gpu_only_frames_per_s_compiled']:.0f}" if "gpu_only_frames_per_s_compiled" in t else ""))


def _print_compare(r: dict) -> None:
    if "compare" in r:
        c = r["compare"]
        print(f"device vs CPU masks: pixels differing {c['pixels_differing']:.2e}, CPU path J&F {c['cpu_J_and_F']:.4f}")


def main(argv=None) -> int:
    a = parse_args(argv)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    def save(r, part=None):
        out.write_text(json.dumps(r, indent=1, default=float))
        if part and a.out_dir:
            (out.parent / f"{part}.json").write_text(json.dumps(r[part], indent=1, default=float))
    res = measure(a, save)
    print_table(res)
    _print_compare(res)
    print("seconds per part: " + ", ".join(f"{k} {v:.0f}" for k, v in res.get("part_seconds", {}).items()))
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
