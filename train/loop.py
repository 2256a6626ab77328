"""The training loop: data, model, Adam, checkpoints, logs. Plain process on CPU, DDP under torchrun.

Read top to bottom: `Trainer` (what a run holds between steps), `train_step` (one optimisation step),
`run_steps` (the loop and its stops), `train` (one run end to end), `main` (exit codes); the set-up they use
(store selection, process group, lr schedule, signals) follows. Options: options.py; the checkpoint
format: checkpoints.py; step statistics and the summary table: stats.py.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

import torch

from spixwalk.common import resolve_device, write_atomic
from spixwalk import faults
from spixwalk.preprocess import spconfig
from spixwalk.preprocess.store import StoreReader
from spixwalk.progress import Progress

from . import checkpoints, device_aug, runconfig, tracking, workers
from .checkpoints import ResumeError
from .clock import Clock, resolve as resolve_clock
from .data import Aug, ClipDataset, StreamSampler, clip_index, collate
from .log import RunLog
from .model import WalkNet, n_patches, patch_grid
from .options import BadInput, parse_args, uses_bf16, validate
from .stats import Window, stat_keys, summary_table
from .walk import walk_loss

PREEMPTED = 3  # exit code: stopped by SIGTERM/SIGINT/SIGUSR1 (checkpoint saved if a step ran); rerun to resume
SUMMARY = "summary.json"


def build_model(a, device: torch.device) -> tuple[WalkNet, torch.optim.Adam]:
    """The trainer's network (seeded by --seed, channels-last on `device`) and its Adam for the options in a."""
    torch.manual_seed(a.seed)
    net = WalkNet(*patch_grid(a.img_size), padding=a.padding, norm=a.norm, patch_jitter=a.patch_jitter)
    net = net.to(device).to(memory_format=torch.channels_last)
    return net, torch.optim.Adam(net.parameters(), lr=a.lr)


class Trainer:
    """Everything a run holds between steps: built here (store, model, resume, run directory, loader,
    tracker), advanced by `train_step`, saved by `checkpoint`."""

    def __init__(self, a, rank: int, device: torch.device):
        self.a, self.rank, self.device, self.run = a, rank, device, Path(a.run)
        reader = StoreReader(a.store, label_cache_mb=a.label_cache_mb)
        cfgs = label_configs(reader, a)
        clips = clips_of(reader, cfgs, a)
        self.clips, self.cfgs = len(clips), cfgs
        self.per_epoch = max(1, len(clips) // (a.batch * a.world))
        self.steps = int(round(a.epochs * self.per_epoch)) if a.epochs else a.steps
        self.cfg = runconfig.absolute({**vars(a), "label_configs": cfgs, "clips": len(clips), "steps": self.steps,
                                       "steps_per_epoch": self.per_epoch, "device": str(device),
                                       "torch": torch.__version__})
        self.cfg.pop("snapshots", None)
        self.cfg.pop("snapshot_step_list", None)
        self.net, self.opt = build_model(a, device)
        self.spent = 0.0  # --clock seconds at the last log row, resumed ones included (--lr-schedule cosine)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lr_factor(a, self.steps, lambda: self.spent))
        self.resumed = checkpoints.Progress()
        ckpt = checkpoints.read_for_resume(self.run, a.resume, self.cfg)
        if ckpt:
            self.resumed = checkpoints.restore(ckpt, self.net, self.opt, self.sched, rank)
            self.cfg.update(steps_plan(checkpoints.config_of(ckpt), self.cfg, self.resumed.step, a, rank))
        elif a.init_from:
            _init_from(self.net, a.init_from)
        self.step = self.resumed.step
        self.stalled = None  # why the loader workers gave no batch in time (workers.Stalled), once they did not
        # a rerun of a finished run (its steps, or its --budget: a larger one resumes) changes nothing:
        # no run directory writes, no tracker
        spent = self.resumed.device if resolve_clock(a.clock, device) == "device" else self.resumed.cpu
        self.spent = spent
        self.already_finished = bool(ckpt) and (self.run / SUMMARY).exists() and (
            self.resumed.finished or self.step >= self.steps or bool(a.budget) and spent >= a.budget)
        self.model = torch.nn.parallel.DistributedDataParallel(
            self.net, device_ids=[device] if device.type == "cuda" else None) if a.world > 1 else self.net
        self.log = RunLog(self.run, enabled=rank == 0, keep_until=self.step)
        ds = ClipDataset(reader, clips, a.clip_len, cfgs, a.nodes, a.patch_prob, a.seed,
                         Aug.from_transforms(a.frame_transforms, a.img_size))
        on_device = a.aug_on == "device" or (a.aug_on == "auto" and device.type == "cuda")
        ds.on_device, ds.node_count = on_device, static_nodes(reader, cfgs, a)
        if a.compile:
            self.net.encoder.compile()
        sampler = StreamSampler(len(clips), a.seed, start=self.step * a.batch, rank=rank, world=a.world)
        self.loader = torch.utils.data.DataLoader(
            ds, batch_size=a.batch, sampler=sampler, num_workers=a.workers, collate_fn=collate,
            pin_memory=device.type == "cuda", multiprocessing_context=workers.context(a.mp_context) if a.workers else None,
            timeout=a.loader_timeout if a.workers else 0, persistent_workers=False,
            generator=torch.Generator().manual_seed(a.seed))  # own generator: keeps the global RNG for the model
        if rank == 0 and not self.already_finished:
            self.run.mkdir(parents=True, exist_ok=True)
            checkpoints.remove_stale_tmp(self.run)
            write_atomic(self.run / "config.json", json.dumps(self.cfg, indent=1, sort_keys=True, default=str))
        self.tracker = tracking.Tracker(a, self.run, self.cfg, enabled=rank == 0 and not self.already_finished,
                                        start=self.step)

    def snapshot(self, name: str) -> None:
        """Keep a copy of the checkpoint just written as RUN/snapshot-<name>.pt."""
        if self.rank == 0:
            shutil.copy(self.run / checkpoints.NAME, self.run / f"snapshot-{name}.pt")

    def checkpoint(self, seconds: float, clock: Clock, finished: bool = False) -> None:
        """RUN/checkpoint.pt (rank 0) with every rank's RNG state; `seconds`: wall seconds since this process
        began; `clock` counts the run's CPU / device seconds, resumed ones included."""
        a = self.a
        if a.world > 1:
            rngs = [None] * a.world
            torch.distributed.all_gather_object(rngs, checkpoints.rng_state())
        else:
            rngs = checkpoints.rng_state()
        if self.rank == 0:
            checkpoints.write(self.run, checkpoints.record(
                self.net, self.opt, self.sched, self.step, self.cfg, rngs, a.batch, a.seed,
                self.resumed.seconds + seconds, clock, finished))
            checkpoints.keep(self.run, self.step, a.keep_every)
            self.log.flush_files()
            self.tracker.flush()


def train_step(model, opt, sched, batch, a, device, autocast) -> dict | None:
    """One optimisation step on a collated batch; detached on-device stats, no host sync (None: empty batch)."""
    if batch is None:
        sched.step()
        return None
    if "boxes" in batch:  # --aug-on device: crop, resize, jitter, flip, labels and weights here
        batch = device_aug.prepare(batch, device)
    frames = batch["frames"].to(device, non_blocking=True)
    weights = batch["weights"].to(device, non_blocking=True) if batch["weights"] is not None else None
    mask = batch["mask"].to(device)
    with autocast:  # node types as host bools: splitting the batch reads nothing back from the device
        q = model(frames, weights, tuple(batch["patch"].tolist()))
    loss, xents, accs = walk_loss(q.float(), mask, a.tau, a.edge_drop, a.cycles, drop_mode=a.edge_drop_mode)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sched.step()
    return {"loss": loss.detach(), "nodes": mask.shape[2], **{f"xent_{k}": v for k, v in xents.items()},
            **{f"acc_{k}": v for k, v in accs.items()}}


def run_steps(tr: Trainer, stop: StopSignal, clock: Clock) -> tuple[float, int, str]:
    """Train until the step count, the --budget or a stop signal: (wall seconds, steps, why stopped)."""
    a, device = tr.a, tr.device
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=uses_bf16(a, device))
    win = Window(stat_keys(a), device)
    win.busy0 = clock.busy()
    before = clock.now()
    marks = [s for s in a.snapshots if s > before]
    step_marks = {n for n in a.snapshot_step_list if n > tr.step}
    if 0 in a.snapshot_step_list and tr.step == 0:
        tr.checkpoint(0.0, clock)
        tr.snapshot("step0")
    it = iter(tr.loader)
    try:
        faults.point("train.workers")
        return _steps(tr, stop, clock, it, win, autocast, marks, step_marks)
    finally:
        workers.stop(it)


def _steps(tr, stop, clock, it, win, autocast, marks, step_marks) -> tuple[float, int, str]:
    a, device = tr.a, tr.device
    seconds, done, why = 0.0, 0, "steps"
    bar = Progress(tr.steps, "train", unit="step", initial=tr.step, enabled=tr.rank == 0)
    t_bar, clips_per_step = time.perf_counter(), a.batch * a.world
    while tr.step < tr.steps:
        if stop.signum and a.world == 1 and not done:  # stopped while the workers started: nothing to save
            why = "signal"
            break
        t0 = time.perf_counter()
        try:
            batch = workers.next_batch(it, a.loader_timeout if a.workers else 0)
        except workers.Stalled as e:
            if a.world > 1:  # the other ranks wait in a collective: end the process group
                raise
            tr.stalled, why = str(e), "stalled"
            break
        wait = time.perf_counter() - t0
        clock.step_start()
        stats = train_step(tr.model, tr.opt, tr.sched, batch, a, device, autocast)
        clock.step_end()
        tr.step += 1
        done += 1
        faults.point("train.step")
        win.add(stats, batch, wait, a.batch)
        # host-side counts only: the loss reaches the bar at log rows, which sync anyway
        bar.note(**{"clips/s": f"{done * clips_per_step / (time.perf_counter() - t_bar):.1f}"})
        at_mark = tr.step in step_marks
        stopping = bool(stop.signum) and a.world == 1  # one process: this step ends the window
        if tr.step % a.log_every and tr.step % a.ckpt_every and tr.step < tr.steps and not (at_mark or stopping):
            bar.update()
            continue
        row, (n_stop, n_over, n_snap) = _log_row(tr, win, clock, stop, marks)
        seconds += row["seconds"]
        bar.note(loss=f"{row.get('loss', float('nan')):.3f}")
        bar.update()
        if n_snap or at_mark:
            tr.checkpoint(seconds, clock)
            if n_snap:  # a copy per mark passed: one long step can pass several (another rank's: the first)
                due = [m for m in marks if m <= row["clock_seconds"]] or marks[:1]
                for m in due:
                    tr.snapshot(f"{clock.kind}{m:g}")
                del marks[:len(due)]
            if at_mark:
                tr.snapshot(f"step{tr.step}")
        if n_stop or n_over:
            why = "signal" if n_stop else f"{clock.kind}_budget"
            break
        if tr.step % a.ckpt_every == 0 and tr.step < tr.steps:
            tr.checkpoint(seconds, clock)
    bar.close()
    return seconds, done, why


def _log_row(tr: Trainer, win: Window, clock: Clock, stop: StopSignal, marks: list[float]):
    """Write one log row; (row, [stop, over budget, snapshot due] summed over ranks)."""
    a = tr.a
    now = clock.now()  # before the row's sync: the device clock syncs on the window's last step anyway
    over = float(bool(a.budget) and now >= a.budget)
    snap = float(bool(marks) and now >= marks[0])
    busy = clock.busy() - win.busy0
    row, flags = win.row(tr.step, a.world, [float(bool(stop.signum)), over, snap, now], busy)
    if "loss" in row and not math.isfinite(row["loss"]):
        raise RuntimeError(f"steps {tr.step - win.n + 1}-{tr.step}: non-finite loss {row['loss']}")
    tr.spent = flags.pop() / a.world  # the ranks' mean clock: every rank steps with the same cosine lr
    row.update(epoch=round(tr.step / tr.per_epoch, 4), lr=tr.sched.get_last_lr()[0], cpu_seconds=round(clock.cpu(), 2),
               clock_seconds=round(now, 3))
    if clock.cuda:
        row["device_seconds"] = round(clock.device(), 3)
    tr.log.write(row)
    tr.tracker.log(row)
    win.reset()
    win.busy0 = clock.busy()
    return row, flags


def train(a) -> dict:
    """One run end to end: checks, process group, Trainer, steps, checkpoint, summary.json and table."""
    with StopSignal() as stop:
        faults.point("train.setup")
        validate(a)
        rank, a.world, device = setup_dist(a)
        if a.clock == "device" and device.type != "cuda":
            raise BadInput(f"--clock device counts CUDA-busy seconds; this run is on {device}")
        if a.threads:
            torch.set_num_threads(a.threads)
        tr = Trainer(a, rank, device)
        stop.training = True  # from here on a signal lets the step in progress finish, then checkpoints
        return _train(tr, stop)


def _train(tr: Trainer, stop: StopSignal) -> dict:
    a, rank, run, device = tr.a, tr.rank, tr.run, tr.device
    if tr.already_finished:
        if rank == 0:
            print(f"[train] {run} already finished at step {tr.step}; kept its checkpoint and {SUMMARY}")
        _teardown(a)
        return json.loads((run / SUMMARY).read_text())
    if rank == 0:
        print(f"[train] {tr.clips} clips, configs {tr.cfgs or '-'}, nodes {a.nodes}, preset {a.preset}, "
              f"{tr.steps} steps (from {tr.step}), batch {a.batch} x {a.world} process(es) on {device}")
    clock = Clock(a.clock, device, tr.resumed.cpu, tr.resumed.device)
    seconds, done, why = run_steps(tr, stop, clock)
    if done or why not in ("signal", "stalled"):
        tr.checkpoint(seconds, clock)
    tr.tracker.close()
    if why in ("signal", "stalled"):
        _teardown(a)
        stopped = {"preempted": f"signal {stop.signum}"} if why == "signal" else {"stalled": tr.stalled}
        return {**stopped, "step": tr.step, "saved": bool(done)}
    summary = tr.log.summary(tr.cfg, seconds, done, a.batch * a.world) if rank == 0 else {}
    summary.update(steps=tr.step, stopped_by=why, train_seconds_total=round(tr.resumed.seconds + seconds, 2),
                   train_cpu_seconds_total=round(clock.cpu(), 2), train_device_seconds_total=round(clock.device(), 3),
                   clock=clock.kind)
    if rank == 0:
        (run / SUMMARY).write_text(json.dumps(summary, indent=1))
        tr.log.plot()
        print(summary_table(summary))
    _teardown(a)
    return summary


def main(argv=None) -> int:
    a = parse_args(argv)
    try:
        summary = train(a)
    except (BadInput, ResumeError) as e:
        print(f"[train] error: {e}", file=sys.stderr)
        return 2
    except Preempted as e:
        print(f"[train] stopped by signal {e.args[0]} during set-up; nothing saved, rerun the same command",
              file=sys.stderr)
        return PREEMPTED
    saved = "checkpoint saved" if summary.get("saved") else "no step ran, nothing saved"
    if summary.get("preempted"):
        print(f"[train] stopped by {summary['preempted']} at step {summary['step']}; {saved}, "
              "rerun the same command to resume", file=sys.stderr)
        return PREEMPTED
    if summary.get("stalled"):
        print(f"[train] error: {summary['stalled']} (a worker hangs, or reading the store is this slow); "
              f"stopped at step {summary['step']}, {saved}; rerun to resume (--loader-timeout, --workers 0)",
              file=sys.stderr)
        return 1
    if summary.get("dropped_clips"):  # trained, but on fewer clips than asked: say so in the exit code
        print(f"[train] {summary['dropped_clips']} clip(s) failed to load and were left out (see lines above)",
              file=sys.stderr)
        return 1
    return 0


# ---------------------------------------------------------------- set-up used above


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
    """The clips of videos complete for every configuration of the run; short videos reported and skipped."""
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


def static_nodes(reader: StoreReader, cfgs: list[str], a) -> int:
    """Nodes every device-augmented batch is padded to: one shape for cuDNN and --compile (padding changes no loss)."""
    sp = max([reader.nseg_max(c) for c in cfgs] or [0])
    return max(sp, n_patches(a.img_size)) if a.nodes == "mixed" else sp


def setup_dist(a):
    """(rank, world, device): DDP when launched by torchrun with WORLD_SIZE > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    try:
        device = resolve_device(a.device)
    except ValueError as e:
        raise BadInput(str(e)) from None
    cuda = device.type == "cuda"
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if world > 1:
        torch.distributed.init_process_group("nccl" if cuda else "gloo")
    if cuda:
        device = torch.device("cuda", local)  # one GPU per process: torchrun's local rank
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True  # fixed input shapes: let cuDNN pick its fastest kernels once
    return rank, world, device


def lr_factor(a, steps: int, budget_spent=lambda: 0.0):
    """Linear warm-up, then CRW's single step decay at --lr-drop-at of the run, or (--lr-schedule cosine) a
    half cosine from --lr to 0 over the --budget (budget_spent(): clock seconds at the last log row) or, without
    a budget, over the steps."""
    drop_step = _drop_step(a, steps)

    def f(s: int) -> float:
        warm = min(1.0, (s + 1) / a.warmup) if a.warmup else 1.0
        if a.lr_schedule == "cosine":
            done = budget_spent() / a.budget if a.budget else s / steps
            return warm * 0.5 * (1.0 + math.cos(math.pi * min(1.0, done)))
        return warm * (a.lr_gamma if drop_step is not None and s >= drop_step else 1.0)
    return f


def steps_plan(old: dict, cfg: dict, at: int, a, rank: int) -> dict:
    """A resume that changes the run's length (--steps, --epochs) continues from the checkpoint under the
    new plan, so the lr drop (at --lr-drop-at of the run) moves: recorded in config.json as steps_history,
    one entry per plan with the step it took over and its drop step, and said once."""
    history = old.get("steps_history") or [{"from_step": 0, "steps": old.get("steps"),
                                             "lr_drop_step": _drop_step(a, old.get("steps"))}]
    if old.get("steps") in (None, cfg["steps"]):
        return {"steps_history": old["steps_history"]} if old.get("steps_history") else {}
    entry = {"from_step": at, "steps": cfg["steps"], "lr_drop_step": _drop_step(a, cfg["steps"])}
    if rank == 0 and at < cfg["steps"]:
        print(f"[train] resuming at step {at} a run planned for {old['steps']} steps, now {cfg['steps']}: "
              f"lr drop (x{a.lr_gamma:g}) at step {history[-1]['lr_drop_step']} -> {entry['lr_drop_step']}")
    return {"steps_history": history + [entry]}


def _drop_step(a, steps) -> int | None:
    return int(a.lr_drop_at * steps) if a.lr_drop_at and steps else None


class Preempted(BaseException):
    """A stop signal during set-up: nothing trained, nothing saved (a BaseException: no `except Exception` eats it)."""


class StopSignal:
    """SIGTERM / SIGINT / SIGUSR1 (schedulers signal the process group; SLURM preemption; Ctrl-C).

    During set-up they raise Preempted at once; once `training` is set they only set a flag, and the loop
    checkpoints after the step in progress (DDP: at the next log row, where the ranks agree)."""

    SIGNALS = ("SIGTERM", "SIGINT", "SIGUSR1")

    def __init__(self):
        self.signum, self.old, self.training = 0, {}, False

    def __enter__(self):
        import signal
        import threading
        if threading.current_thread() is threading.main_thread():
            for name in self.SIGNALS:
                s = getattr(signal, name)
                self.old[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum, frame):
        self.signum = signum
        if not self.training:
            raise Preempted(signum)

    def __exit__(self, *exc):
        import signal
        for s, h in self.old.items():
            signal.signal(s, h)


def _init_from(net, path) -> None:
    from .weights import WeightsError

    try:
        kind, padding = checkpoints.init_from(net.encoder, path)
    except WeightsError as e:
        raise BadInput(f"--init-from {e}") from None
    print(f"[train] encoder initialised from {path} ({kind} weights)")
    if padding and padding != net.encoder.padding:
        print(f"[train] note: {path} was trained with {padding} padding; this run pads with "
              f"{net.encoder.padding} (--padding {padding} to match)")


def _teardown(a) -> None:
    if a.world > 1:
        torch.distributed.destroy_process_group()
