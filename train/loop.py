"""The training loop: data, model, Adam, checkpoints, logs. Plain process on CPU, DDP under torchrun."""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

from preprocess import spconfig
from preprocess.store import StoreReader
from train import checkpoints, runconfig, tracking
from train.data import FRAME_TRANSFORMS, Aug, ClipDataset, StreamSampler, clip_index, collate
from train.log import RunLog
from train.model import NORMS, PADDINGS, PATCH_JITTERS, WalkNet, patch_grid
from train.presets import DEFAULT_PRESET, PRESETS, apply_preset
from train.walk import CYCLES, DROP_MODES, walk_loss

# options that change what a checkpoint means: resuming with different values is refused
RUN_KEYS = ("label_configs", "clips", "nodes", "patch_prob", "clip_len", "clip_stride", "batch", "lr", "warmup", "tau",
            "edge_drop", "cycles", "seed", "img_size", "world", "preset", "padding", "norm", "patch_jitter",
            "edge_drop_mode", "frame_transforms", "clips_per_video", "lr_drop_at", "lr_gamma")
PREEMPTED = 3  # exit code: stopped by SIGTERM/SIGUSR1 after saving a checkpoint; rerun the command to resume
SUMMARY = "summary.json"


class BadInput(Exception):
    """Unusable input: reported as one line, exit code 2."""


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m train", description=__doc__.split("\n")[0] + "\n"
                                "Contrastive random walk over superpixel (or patch) nodes read from a spixwalk store.")
    for options in (_data_options, _walk_options, _optimisation_options, _run_options):
        options(p)
    a = runconfig.parse(p, argv)
    apply_preset(a)
    return a


def _data_options(p) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--store", required=True, help="store root written by `python -m preprocess`")
    g.add_argument("--alg", default="slic", choices=list(spconfig.ALGORITHMS),
                   help="label configuration by algorithm + its options; random: one configuration drawn per clip")
    spconfig.add_options(g, aliases={"--lsc-iterations": ["--iterations"]})  # --iterations: deprecated spelling
    g.add_argument("--label-config", help="configuration name (e.g. slic-n30-c30); overrides --alg")
    g.add_argument("--random-configs", help="comma list for --alg random (default: every complete configuration "
                   "of the store except the random-cell baselines random-*)")
    g.add_argument("--clip-len", type=int, help="frames per clip (T)")
    g.add_argument("--clip-stride", type=int, default=0, help="frames between clip starts (0: T, non-overlapping); "
                   "used with --clips-per-video 0")
    g.add_argument("--clips-per-video", type=int, help="clips drawn per video and epoch from every start "
                   "(CRW: 5, possibly overlapping); 0: every clip at --clip-stride")
    g.add_argument("--img-size", type=int, default=256)
    g.add_argument("--frame-transforms", help=f"comma list of {'/'.join(FRAME_TRANSFORMS)}: per-frame random "
                   "resized crop, colour jitter, per-clip flip (CRW: crop)")
    g.add_argument("--workers", type=int, default=2, help="DataLoader workers per process")
    g.add_argument("--mp-context", default=None, choices=["fork", "spawn", "forkserver"])


def _walk_options(p) -> None:
    g = p.add_argument_group("preset", "unset options below take the preset's value (config.json records both)")
    g.add_argument("--preset", default=DEFAULT_PRESET, choices=sorted(PRESETS),
                   help="crw: every choice as videowalk ships it (patch nodes); thesis: crw + superpixel nodes + "
                   "cycles summed; legacy: spixwalk's defaults before presets (default: %(default)s)")
    g = p.add_argument_group("model and walk")
    g.add_argument("--nodes", choices=["superpixels", "patches", "mixed"])
    g.add_argument("--patch-prob", type=float, default=0.7, help="mixed: probability that a clip uses patches")
    g.add_argument("--patch-jitter", choices=PATCH_JITTERS, help="per-patch crop: crw redraws boxes larger "
                   "than the window (torchvision), clamp cuts them to it")
    g.add_argument("--padding", choices=PADDINGS, help="encoder conv padding (CRW scratch: reflect)")
    g.add_argument("--norm", choices=sorted(NORMS), help="input mean/std in training (CRW: cifar; "
                   "evaluation always uses imagenet, as CRW's)")
    g.add_argument("--tau", type=float)
    g.add_argument("--edge-drop", type=float, help="fraction of affinities dropped per transition")
    g.add_argument("--edge-drop-mode", choices=DROP_MODES, help="crw: the backward step also drops the forward "
                   "step's edges (about 19%% at 0.1), as videowalk ships; independent: two separate masks")
    g.add_argument("--cycles", choices=CYCLES, help="all: k=1..T-1 summed (thesis text); crw: k=2..T-1 averaged")


def _optimisation_options(p) -> None:
    g = p.add_argument_group("optimisation")
    g.add_argument("--batch", type=int, default=8, help="clips per step and process")
    g.add_argument("--steps", type=int, default=200)
    g.add_argument("--epochs", type=float, default=None, help="train this many epochs instead of --steps")
    g.add_argument("--lr", type=float)
    g.add_argument("--lr-drop-at", type=float, help="fraction of the steps after which lr is multiplied by "
                   "--lr-gamma (CRW: 0.8); 0: constant")
    g.add_argument("--lr-gamma", type=float)
    g.add_argument("--warmup", type=int, default=0, help="linear learning-rate warm-up steps")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    g.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")


def _run_options(p) -> None:
    g = p.add_argument_group("run directory")
    g.add_argument("--run", "--run-dir", dest="run", required=True,
                   help="output directory: config, logs, plot, checkpoint, summary "
                   "(--run-dir: the same, for torchrun, whose own --run-path swallows --run)")
    g.add_argument("--ckpt-every", type=int, default=100)
    g.add_argument("--log-every", type=int, default=10, help="steps per log row: the only host syncs "
                   "(row = mean over its steps and over DDP ranks)")
    g.add_argument("--cpu-budget", type=float, default=0, help="stop (as finished) once the training process "
                   "has used this many CPU seconds, checked at each log row (0: off)")
    g.add_argument("--snapshot-cpu", default="", help="comma list of CPU seconds at which to keep a copy "
                   "snapshot-cpu<S>.pt of the checkpoint (learning-signal study)")
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
    clips, short = clip_index(refs, a.clip_len, a.clip_stride or a.clip_len, a.clips_per_video)
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


def validate(a) -> None:
    """Every check that needs no store content and no process group: fail before any work."""
    bad = []
    if a.img_size % 8 or a.img_size < 64:
        bad.append(f"--img-size {a.img_size} must be a multiple of 8 and >= 64")
    if a.clip_len < (3 if a.cycles == "crw" else 2):
        bad.append(f"--clip-len {a.clip_len} must be >= {3 if a.cycles == 'crw' else 2} (--cycles {a.cycles})")
    if not set(a.frame_transforms.split(",")) <= set(FRAME_TRANSFORMS):
        bad.append(f"--frame-transforms {a.frame_transforms}: tokens must be among {','.join(FRAME_TRANSFORMS)}")
    for name, v, lo, hi in (("--edge-drop", a.edge_drop, 0, 0.99), ("--patch-prob", a.patch_prob, 0, 1),
                            ("--lr-drop-at", a.lr_drop_at, 0, 1), ("--lr-gamma", a.lr_gamma, 0, 1)):
        if not lo <= v <= hi:
            bad.append(f"{name} {v} must be in [{lo}, {hi}]")
    for name, v in (("--batch", a.batch), ("--log-every", a.log_every), ("--ckpt-every", a.ckpt_every)):
        if v < 1:
            bad.append(f"{name} {v} must be >= 1")
    if a.tau <= 0 or a.lr <= 0 or a.clips_per_video < 0 or a.cpu_budget < 0:
        bad.append("--tau and --lr must be > 0, --clips-per-video and --cpu-budget >= 0")
    try:
        a.snapshots = sorted(float(x) for x in a.snapshot_cpu.split(",") if x.strip())
    except ValueError:
        bad.append(f"--snapshot-cpu {a.snapshot_cpu!r}: not a comma list of seconds")
    bad += [why for why in (checkpoints.check(a), tracking.check(a)) if why]
    if bad:
        raise BadInput("; ".join(bad))
    if not Path(a.store).is_dir():
        raise BadInput(f"store {a.store}: no such directory")


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


def lr_factor(a, steps: int):
    """Linear warm-up, then CRW's single step decay at --lr-drop-at of the run."""
    drop_step = int(a.lr_drop_at * steps) if a.lr_drop_at else None

    def f(s: int) -> float:
        warm = min(1.0, (s + 1) / a.warmup) if a.warmup else 1.0
        return warm * (a.lr_gamma if drop_step is not None and s >= drop_step else 1.0)
    return f


class Trainer:
    """Everything a run holds between steps: built by `setup`, advanced by `train_step`, saved by `checkpoint`."""

    def __init__(self, a, rank: int, device: torch.device):
        self.a, self.rank, self.device, self.run = a, rank, device, Path(a.run)
        reader = StoreReader(a.store)
        cfgs = label_configs(reader, a)
        clips = clips_of(reader, cfgs, a)
        self.per_epoch = max(1, len(clips) // (a.batch * a.world))
        self.steps = int(round(a.epochs * self.per_epoch)) if a.epochs else a.steps
        self.cfg = {**vars(a), "label_configs": cfgs, "clips": len(clips), "steps": self.steps,
                    "steps_per_epoch": self.per_epoch, "device": str(device), "torch": torch.__version__}
        self.cfg.pop("snapshots", None)
        torch.manual_seed(a.seed)
        self.net = WalkNet(*patch_grid(a.img_size), padding=a.padding, norm=a.norm, patch_jitter=a.patch_jitter)
        self.net = self.net.to(device).to(memory_format=torch.channels_last)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=a.lr)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lr_factor(a, self.steps))
        self.step, self.seconds_before, self.cpu_before = 0, 0.0, 0.0
        self.finished_before = False
        ckpt = load_resume(a, self.cfg)
        if ckpt:
            self._restore(ckpt)
        elif a.init_from:
            _init_from(self.net, a.init_from)
        self.model = torch.nn.parallel.DistributedDataParallel(
            self.net, device_ids=[device] if device.type == "cuda" else None) if a.world > 1 else self.net
        self.log = RunLog(self.run, enabled=rank == 0, keep_until=self.step)
        ds = ClipDataset(reader, clips, a.clip_len, cfgs, a.nodes, a.patch_prob, a.seed,
                         Aug.from_transforms(a.frame_transforms, a.img_size))
        sampler = StreamSampler(len(clips), a.seed, start=self.step * a.batch, rank=rank, world=a.world)
        self.loader = torch.utils.data.DataLoader(
            ds, batch_size=a.batch, sampler=sampler, num_workers=a.workers, collate_fn=collate,
            pin_memory=device.type == "cuda", multiprocessing_context=a.mp_context if a.workers else None,
            persistent_workers=False,
            generator=torch.Generator().manual_seed(a.seed))  # own generator: keeps the global RNG for the model
        self.clips, self.cfgs = len(clips), cfgs

    def _restore(self, ckpt: dict) -> None:
        self.net.load_state_dict(ckpt["model"])
        self.opt.load_state_dict(ckpt["optimizer"])
        self.sched.load_state_dict(ckpt["scheduler"])
        self.step, self.seconds_before = ckpt["step"], ckpt.get("train_seconds", 0.0)
        self.cpu_before = ckpt.get("train_cpu_seconds", 0.0)
        self.finished_before = bool(ckpt.get("finished")) or self.step >= self.steps
        set_rng_state(ckpt["rng"][self.rank] if isinstance(ckpt["rng"], list) else ckpt["rng"])

    def checkpoint(self, seconds: float, cpu: float, finished: bool = False) -> None:
        a = self.a
        if a.world > 1:
            rngs = [None] * a.world
            torch.distributed.all_gather_object(rngs, rng_state())
        else:
            rngs = rng_state()
        if self.rank == 0:
            save_checkpoint(self.run / "checkpoint.pt", {
                "model": self.net.state_dict(), "optimizer": self.opt.state_dict(),
                "scheduler": self.sched.state_dict(), "step": self.step, "config": self.cfg, "rng": rngs,
                "padding": a.padding, "data": {"position": self.step * a.batch, "seed": a.seed},
                "train_seconds": self.seconds_before + seconds, "train_cpu_seconds": self.cpu_before + cpu,
                "finished": finished})
            checkpoints.keep(self.run, self.step, a.keep_every)
            self.log.flush_files()
            self.tracker.flush()


def train_step(model, opt, sched, batch, a, device, autocast) -> dict | None:
    """One optimisation step on a collated batch; detached on-device stats, no host sync (None: empty batch)."""
    if batch is None:
        sched.step()
        return None
    frames = batch["frames"].to(device, non_blocking=True)
    weights = batch["weights"].to(device, non_blocking=True)
    mask, patch = batch["mask"].to(device), batch["patch"].to(device)
    with autocast:
        q = model(frames, weights, patch)
    loss, xents, accs = walk_loss(q.float(), mask, a.tau, a.edge_drop, a.cycles, drop_mode=a.edge_drop_mode)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sched.step()
    return {"loss": loss.detach(), **{f"xent_{k}": v for k, v in xents.items()},
            **{f"acc_{k}": v for k, v in accs.items()}}


def stat_keys(a) -> list[str]:
    ks = range(1, a.clip_len) if a.cycles == "all" else range(2, a.clip_len)
    return ["loss", *(f"xent_{k}" for k in ks), *(f"acc_{k}" for k in ks)]


class Window:
    """Step stats since the last log row: summed on the device, synced once per row (and across ranks)."""

    def __init__(self, keys: list[str], device):
        self.keys, self.device = keys, device
        self.reset()

    def reset(self):
        self.sums = torch.zeros(len(self.keys), device=self.device)
        self.n = self.ok = self.skipped = self.dropped = self.patch_clips = self.clips = self.nodes_max = 0
        self.wait, self.t0 = 0.0, time.perf_counter()

    def add(self, stats, batch, wait: float, batch_size: int):
        self.n += 1
        self.wait += wait
        if stats is None:
            self.skipped += 1
            self.dropped += batch_size
            return
        self.sums += torch.stack([stats[k] for k in self.keys])
        self.ok += 1
        self.dropped += batch["dropped"]
        self.patch_clips += int(batch["patch"].sum())
        self.clips += len(batch["patch"])
        self.nodes_max = max(self.nodes_max, batch["mask"].shape[2])

    def row(self, step: int, world: int, flags: list[float]) -> tuple[dict, list[float]]:
        """The log row (means over steps and ranks) and the flags summed over ranks: the window's one sync."""
        vec = torch.cat([self.sums, torch.tensor([self.ok, self.clips, *flags], device=self.device)])
        if world > 1:
            torch.distributed.all_reduce(vec)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        vals = vec.tolist()
        dt = time.perf_counter() - self.t0
        ok, clips, flags = vals[len(self.keys)], vals[len(self.keys) + 1], vals[len(self.keys) + 2:]
        row = {"step": step, "steps_in_row": self.n}
        if ok:
            row.update({k: v / ok for k, v in zip(self.keys, vals)})
        row.update({"clips_per_s": clips / dt, "data_wait": self.wait / dt, "patch_clips": self.patch_clips,
                    "nodes_max": self.nodes_max, "dropped_clips": self.dropped, "seconds": round(dt, 4)})
        if self.skipped:
            row["skipped_steps"] = self.skipped
        return row, flags


class StopSignal:
    """SIGTERM / SIGUSR1 (SLURM preemption) set a flag; the loop checkpoints at its next log row."""

    def __init__(self):
        self.signum, self.old = 0, {}

    def __enter__(self):
        import signal
        import threading
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGTERM, signal.SIGUSR1):
                self.old[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum, frame):
        self.signum = signum

    def __exit__(self, *exc):
        import signal
        for s, h in self.old.items():
            signal.signal(s, h)


def run_steps(tr: Trainer, stop: StopSignal) -> tuple[float, float, int, str]:
    """Train until the step count, the CPU budget or a stop signal: (seconds, cpu seconds, steps, why stopped)."""
    a, device = tr.a, tr.device
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    win = Window(stat_keys(a), device)
    snaps = [s for s in a.snapshots if s > tr.cpu_before]
    seconds, cpu0, done, why = 0.0, time.process_time(), 0, "steps"
    it = iter(tr.loader)
    bar = _bar(tr.steps, tr.step, tr.rank == 0)
    while tr.step < tr.steps:
        t0 = time.perf_counter()
        batch = next(it)
        wait = time.perf_counter() - t0
        stats = train_step(tr.model, tr.opt, tr.sched, batch, a, device, autocast)
        tr.step += 1
        done += 1
        win.add(stats, batch, wait, a.batch)
        if tr.step % a.log_every and tr.step % a.ckpt_every and tr.step < tr.steps:
            continue
        cpu = tr.cpu_before + time.process_time() - cpu0
        over = float(bool(a.cpu_budget) and cpu >= a.cpu_budget)
        snap = float(bool(snaps) and cpu >= snaps[0])
        row, (n_stop, n_over, n_snap) = win.row(tr.step, a.world, [float(bool(stop.signum)), over, snap])
        seconds += row["seconds"]
        bar.update(row["steps_in_row"])
        if "loss" in row and not math.isfinite(row["loss"]):
            raise RuntimeError(f"steps {tr.step - win.n + 1}-{tr.step}: non-finite loss {row['loss']}")
        row.update(epoch=round(tr.step / tr.per_epoch, 4), lr=tr.sched.get_last_lr()[0], cpu_seconds=round(cpu, 2))
        tr.log.write(row)
        tr.tracker.log(row)
        bar.set_postfix(loss=f"{row.get('loss', float('nan')):.3f}")
        win.reset()
        if n_snap:
            tr.checkpoint(seconds, time.process_time() - cpu0)
            if tr.rank == 0:
                shutil.copy(tr.run / "checkpoint.pt", tr.run / f"snapshot-cpu{int(snaps[0])}.pt")
            while snaps and cpu >= snaps[0]:
                snaps.pop(0)
        if n_stop or n_over:
            why = "signal" if n_stop else "cpu_budget"
            break
        if tr.step % a.ckpt_every == 0 and tr.step < tr.steps:
            tr.checkpoint(seconds, time.process_time() - cpu0)
    bar.close()
    return seconds, time.process_time() - cpu0, done, why


def train(a) -> dict:
    validate(a)
    rank, a.world, device = setup_dist(a)
    if a.threads:
        torch.set_num_threads(a.threads)
    tr = Trainer(a, rank, device)
    run = tr.run
    if tr.finished_before and (run / SUMMARY).exists():  # a rerun of a finished run changes nothing
        if rank == 0:
            print(f"[train] {run} already finished at step {tr.step}; kept its checkpoint and {SUMMARY}")
        _teardown(a)
        return json.loads((run / SUMMARY).read_text())
    if rank == 0:
        run.mkdir(parents=True, exist_ok=True)
        (run / "config.json").write_text(json.dumps(tr.cfg, indent=1, sort_keys=True, default=str))
        print(f"[train] {tr.clips} clips, configs {tr.cfgs or '-'}, nodes {a.nodes}, preset {a.preset}, "
              f"{tr.steps} steps (from {tr.step}), batch {a.batch} x {a.world} process(es) on {device}")
    tr.tracker = tracking.Tracker(a, run, tr.cfg, enabled=rank == 0, start=tr.step)
    with StopSignal() as stop:
        seconds, cpu, done, why = run_steps(tr, stop)
    tr.checkpoint(seconds, cpu)
    tr.tracker.close()
    if why == "signal":
        _teardown(a)
        return {"preempted": f"signal {stop.signum}", "step": tr.step}
    summary = tr.log.summary(tr.cfg, seconds, done, a.batch * a.world) if rank == 0 else {}
    summary.update(steps=tr.step, stopped_by=why, train_seconds_total=round(tr.seconds_before + seconds, 2),
                   train_cpu_seconds_total=round(tr.cpu_before + cpu, 2))
    if rank == 0:
        (run / SUMMARY).write_text(json.dumps(summary, indent=1))
        tr.log.plot()
        _table(summary)
    _teardown(a)
    return summary


def _init_from(net, path) -> None:
    from train.weights import WeightsError

    try:
        kind = checkpoints.init_from(net.encoder, path)
    except WeightsError as e:
        raise BadInput(f"--init-from {e}") from None
    print(f"[train] encoder initialised from {path} ({kind} weights)")


def _teardown(a) -> None:
    if a.world > 1:
        torch.distributed.destroy_process_group()


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
    if summary.get("preempted"):
        print(f"[train] stopped by {summary['preempted']} at step {summary['step']}; checkpoint saved, "
              "rerun the same command to resume", file=sys.stderr)
        return PREEMPTED
    if summary.get("dropped_clips"):  # trained, but on fewer clips than asked: say so in the exit code
        print(f"[train] {summary['dropped_clips']} clip(s) failed to load and were left out (see lines above)",
              file=sys.stderr)
        return 1
    return 0
