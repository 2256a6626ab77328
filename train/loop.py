"""The training loop: data, model, Adam, checkpoints, logs. Plain process on CPU, DDP under torchrun."""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

from preprocess import spconfig
from preprocess.store import StoreReader
from train import checkpoints, runconfig, tracking
from train.data import Aug, ClipDataset, StreamSampler, clip_index, collate
from train.log import RunLog
from train.model import WalkNet, patch_grid
from train.walk import walk_loss

# options that change what a checkpoint means: resuming with different values is refused
RUN_KEYS = ("label_configs", "clips", "nodes", "patch_prob", "clip_len", "clip_stride", "batch", "lr", "warmup", "tau",
            "edge_drop", "cycles", "seed", "img_size", "world")
SUMMARY = "summary.json"


class BadInput(Exception):
    """Unusable input: reported as one line, exit code 2."""


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m train", description=__doc__.split("\n")[0] + "\n"
                                "Contrastive random walk over superpixel (or patch) nodes read from a spixwalk store.")
    g = p.add_argument_group("data")
    g.add_argument("--store", required=True, help="store root written by `python -m preprocess`")
    g.add_argument("--alg", default="slic", choices=["slic", "fh", "lsc", "random"],
                   help="label configuration by algorithm + its options; random: one configuration drawn per clip")
    spconfig.add_options(g, aliases={"--lsc-iterations": ["--iterations"]})  # --iterations: deprecated spelling
    g.add_argument("--label-config", help="configuration name (e.g. slic-n30-c30); overrides --alg")
    g.add_argument("--random-configs", help="comma list for --alg random (default: every complete configuration "
                   "of the store except the random-cell baselines random-*)")
    g.add_argument("--clip-len", type=int, default=4, help="frames per clip (T)")
    g.add_argument("--clip-stride", type=int, default=0, help="frames between clip starts (0: T, non-overlapping)")
    g.add_argument("--img-size", type=int, default=256)
    g.add_argument("--workers", type=int, default=2, help="DataLoader workers per process")
    g.add_argument("--mp-context", default=None, choices=["fork", "spawn", "forkserver"])
    g = p.add_argument_group("model and walk")
    g.add_argument("--nodes", default="superpixels", choices=["superpixels", "patches", "mixed"])
    g.add_argument("--patch-prob", type=float, default=0.7, help="mixed: probability that a clip uses patches")
    g.add_argument("--tau", type=float, default=0.05)
    g.add_argument("--edge-drop", type=float, default=0.1)
    g.add_argument("--cycles", default="all", choices=["all", "crw"],
                   help="all: k=1..T-1 summed (thesis); crw: k=2..T-1 averaged (videowalk)")
    g = p.add_argument_group("optimisation")
    g.add_argument("--batch", type=int, default=8, help="clips per step and process")
    g.add_argument("--steps", type=int, default=200)
    g.add_argument("--epochs", type=float, default=None, help="train this many epochs instead of --steps")
    g.add_argument("--lr", type=float, default=1e-4)
    g.add_argument("--warmup", type=int, default=0, help="linear learning-rate warm-up steps")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    g.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    g = p.add_argument_group("run directory")
    g.add_argument("--run", "--run-dir", dest="run", required=True,
                   help="output directory: config, logs, plot, checkpoint, summary "
                   "(--run-dir: the same, for torchrun, whose own --run-path swallows --run)")
    g.add_argument("--ckpt-every", type=int, default=100)
    g.add_argument("--resume", default="auto",
                   help="auto: continue RUN/checkpoint.pt if present; never: refuse an existing one; or a path")
    g = p.add_argument_group("around a run (train/checkpoints.py, train/tracking.py, train/runconfig.py)")
    g.add_argument("--config", help="a run's config.json: rerun its options; options given here override them")
    g.add_argument("--keep-every", type=int, default=0,
                   help="also keep RUN/checkpoint-<step>.pt every N steps (a multiple of --ckpt-every; 0: off)")
    g.add_argument("--init-from", help="warm start, encoder weights only: a spixwalk checkpoint or export, or a "
                   "torchvision resnet18 state dict (shapes must match)")
    g.add_argument("--tensorboard", action="store_true", help="TensorBoard scalars in RUN/tensorboard/")
    g.add_argument("--wandb", action="store_true", help="Weights & Biases curves (needs wandb and a key)")
    return runconfig.parse(p, argv)


def label_configs(reader: StoreReader, a) -> list[str]:
    """The configuration(s) the run trains on, checked against the store."""
    have = reader.configs()
    if a.nodes == "patches":
        return []
    if a.label_config:
        want = [a.label_config]
    elif a.alg == "random":
        want = a.random_configs.split(",") if a.random_configs else [c for c in have if not c.startswith("random")]
    else:
        want = [spconfig.from_args(a)[2]]
    missing = [c for c in want if c not in have]
    if not want or missing:
        raise BadInput(f"store {a.store}: label configuration {missing or want} not complete on any shard "
                       f"(complete: {have or 'none'}); run `python -m preprocess` for it first")
    return want


def clips_of(reader: StoreReader, cfgs: list[str], a) -> list:
    refs = reader.videos()
    for c in cfgs:  # a clip may draw any of the configurations: keep videos complete for all of them
        ok = set(reader.videos(c))
        refs = [r for r in refs if r in ok]
    if not refs:
        raise BadInput(f"store {a.store}: no complete shard with frames" + (f" and {cfgs}" if cfgs else ""))
    clips, short = clip_index(refs, a.clip_len, a.clip_stride or a.clip_len)
    for r in short:
        print(f"[train] video {r.video_id} (shard {r.shard}): {r.length} frames < clip length {a.clip_len}, skipped")
    if len(clips) < a.world:
        raise BadInput(f"store {a.store}: {len(clips)} clips of {a.clip_len} frames, not enough to train")
    return clips


def rng_state() -> dict:
    s = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        s["cuda"] = torch.cuda.get_rng_state_all()
    return s


def set_rng_state(s: dict) -> None:
    torch.set_rng_state(s["torch"])
    np.random.set_state(s["numpy"])
    random.setstate(s["python"])
    if "cuda" in s and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"])


def save_checkpoint(path: Path, state: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # a crash leaves the previous checkpoint, never half of a new one


def load_resume(a, cfg: dict) -> dict | None:
    path = Path(a.run) / "checkpoint.pt" if a.resume in ("auto", "never") else Path(a.resume)
    if not path.exists():
        if a.resume not in ("auto", "never"):
            raise BadInput(f"checkpoint {path}: no such file")
        return None
    if a.resume == "never":
        raise BadInput(f"checkpoint {path} exists and --resume never: choose another --run")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise BadInput(f"checkpoint {path}: unreadable ({type(e).__name__}: {e})")
    old = ckpt.get("config", {})
    diff = {k: (old.get(k), cfg[k]) for k in RUN_KEYS if old.get(k) != cfg[k]}
    if diff:
        raise BadInput(f"checkpoint {path} was trained with another config {diff} (old, new); "
                       "use a new --run or the same options")
    return ckpt


def setup_dist(a):
    """(rank, world, device): DDP when launched by torchrun with WORLD_SIZE > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available() and a.device != "cpu"
    if a.device == "cuda" and not torch.cuda.is_available():
        raise BadInput("--device cuda: no CUDA device visible")
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if world > 1:
        torch.distributed.init_process_group("nccl" if cuda else "gloo")
    device = torch.device(f"cuda:{local}") if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    return rank, world, device


def train(a) -> dict:
    rank, a.world, device = setup_dist(a)
    if a.threads:
        torch.set_num_threads(a.threads)
    if not Path(a.store).is_dir():
        raise BadInput(f"store {a.store}: no such directory")
    if a.img_size % 8 or a.img_size < 64 or a.clip_len < (3 if a.cycles == "crw" else 2):
        raise BadInput(f"--img-size {a.img_size} must be a multiple of 8 and >= 64, --clip-len {a.clip_len} >= "
                       f"{3 if a.cycles == 'crw' else 2} (--cycles {a.cycles})")
    for why in (checkpoints.check(a), tracking.check(a)):
        if why:
            raise BadInput(why)
    reader = StoreReader(a.store)
    cfgs = label_configs(reader, a)
    clips = clips_of(reader, cfgs, a)
    per_epoch = max(1, len(clips) // (a.batch * a.world))
    steps = int(round(a.epochs * per_epoch)) if a.epochs else a.steps
    cfg = {**{k: v for k, v in vars(a).items()}, "label_configs": cfgs, "clips": len(clips), "steps": steps,
           "steps_per_epoch": per_epoch, "device": str(device), "torch": torch.__version__}

    torch.manual_seed(a.seed)
    net = WalkNet(*patch_grid(a.img_size)).to(device).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=a.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / a.warmup) if a.warmup else 1.0)
    ckpt = load_resume(a, cfg)
    step, seconds_before = 0, 0.0
    if ckpt:
        net.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        step, seconds_before = ckpt["step"], ckpt.get("train_seconds", 0.0)
        set_rng_state(ckpt["rng"][rank] if isinstance(ckpt["rng"], list) else ckpt["rng"])
    elif a.init_from:
        _init_from(net, a.init_from)
    model = torch.nn.parallel.DistributedDataParallel(net, device_ids=[device] if device.type == "cuda" else None) \
        if a.world > 1 else net

    run = Path(a.run)
    log = RunLog(run, enabled=rank == 0, keep_until=step)
    if rank == 0:
        run.mkdir(parents=True, exist_ok=True)
        (run / "config.json").write_text(json.dumps(cfg, indent=1, sort_keys=True, default=str))
        print(f"[train] {len(clips)} clips, configs {cfgs or '-'}, nodes {a.nodes}, {steps} steps "
              f"(from {step}), batch {a.batch} x {a.world} process(es) on {device}")
    tracker = tracking.Tracker(a, run, cfg, enabled=rank == 0, start=step)

    ds = ClipDataset(reader, clips, a.clip_len, cfgs, a.nodes, a.patch_prob, a.seed, Aug(size=a.img_size))
    sampler = StreamSampler(len(clips), a.seed, start=step * a.batch, rank=rank, world=a.world)
    loader = torch.utils.data.DataLoader(
        ds, batch_size=a.batch, sampler=sampler, num_workers=a.workers, collate_fn=collate,
        pin_memory=device.type == "cuda", multiprocessing_context=a.mp_context if a.workers else None,
        persistent_workers=False, generator=torch.Generator().manual_seed(a.seed))  # own generator: keeps the global RNG for the model

    def checkpoint():
        if a.world > 1:
            rngs = [None] * a.world
            torch.distributed.all_gather_object(rngs, rng_state())
        else:
            rngs = rng_state()
        if rank == 0:
            save_checkpoint(run / "checkpoint.pt", {
                "model": net.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "step": step, "config": cfg, "rng": rngs, "data": {"position": step * a.batch, "seed": a.seed},
                "train_seconds": seconds_before + seconds})
            checkpoints.keep(run, step, a.keep_every)
            log.flush_files()
            tracker.flush()

    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    seconds, done, last = 0.0, 0, {}
    it = iter(loader)
    bar = _bar(steps, step, rank == 0)
    while step < steps:
        t0 = time.perf_counter()
        batch = next(it)
        t1 = time.perf_counter()
        if batch is not None:
            frames = batch["frames"].to(device, non_blocking=True)
            weights = batch["weights"].to(device, non_blocking=True)
            mask, patch = batch["mask"].to(device), batch["patch"].to(device)
            with autocast:
                q = model(frames, weights, patch)
            loss, xents, accs = walk_loss(q.float(), mask, a.tau, a.edge_drop, a.cycles)
            if not torch.isfinite(loss):
                raise RuntimeError(f"step {step}: non-finite loss {loss.item()}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()
        step += 1
        if device.type == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        seconds += dt
        done += 1
        if batch is not None:
            last = {"step": step, "epoch": round(step / per_epoch, 4), "loss": loss.item(),
                    **{f"xent_{k}": v.item() for k, v in xents.items()}, **{f"acc_{k}": v.item() for k, v in accs.items()},
                    "clips_per_s": len(batch["patch"]) * a.world / dt, "data_wait": (t1 - t0) / dt,
                    "lr": sched.get_last_lr()[0], "patch_clips": int(batch["patch"].sum()),
                    "nodes_max": batch["mask"].shape[2], "dropped_clips": batch["dropped"], "seconds": round(dt, 4)}
        else:
            last = {"step": step, "skipped": "every clip of the batch failed to load", "dropped_clips": a.batch}
        log.write(last)
        tracker.log(last)
        bar.update(1)
        bar.set_postfix(loss=f"{last.get('loss', float('nan')):.3f}")
        if step % a.ckpt_every == 0 and step < steps:
            checkpoint()
    bar.close()
    checkpoint()
    tracker.close()
    summary = log.summary(cfg, seconds, done, a.batch * a.world) if rank == 0 else {}
    summary["train_seconds_total"] = round(seconds_before + seconds, 2)
    if rank == 0:
        (run / SUMMARY).write_text(json.dumps(summary, indent=1))
        log.plot()
        _table(summary)
    if a.world > 1:
        torch.distributed.destroy_process_group()
    return summary


def _init_from(net, path) -> None:
    from train.weights import WeightsError

    try:
        kind = checkpoints.init_from(net.encoder, path)
    except WeightsError as e:
        raise BadInput(f"--init-from {e}") from None
    print(f"[train] encoder initialised from {path} ({kind} weights)")


def _bar(total, initial, enabled):
    from tqdm import tqdm
    return tqdm(total=total, initial=initial, disable=not enabled, desc="train", dynamic_ncols=True)


def _table(s: dict) -> None:
    keys = ["nodes", "label_configs", "steps", "batch", "train_seconds", "clips_per_s", "data_wait_fraction",
            "first_loss", "final_loss", "final_acc", "dropped_clips", "checkpoint"]
    w = max(map(len, keys))
    print("\n".join(f"{k:<{w}}  {s.get(k)}" for k in keys))


def main(argv=None) -> int:
    a = parse_args(argv)
    try:
        summary = train(a)
    except BadInput as e:
        print(f"[train] error: {e}", file=sys.stderr)
        return 2
    if summary.get("dropped_clips"):  # trained, but on fewer clips than asked: say so in the exit code
        print(f"[train] {summary['dropped_clips']} clip(s) failed to load and were left out (see lines above)",
              file=sys.stderr)
        return 1
    return 0
