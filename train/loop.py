"""The training loop: data, model, Adam, checkpoints, logs. Plain process on CPU, DDP under torchrun.

Read top to bottom: `Trainer` (what a run holds between steps), `train_step` (one optimisation step),
`run_steps` (the loop and its stops), `train` (one run end to end), `main` (exit codes). Set-up lives
beside it: options.py (options), selection.py (what the store offers), distributed.py (process group,
the ranks' stop vote), schedule.py (lr), signals.py (stop signals), checkpoints.py (the checkpoint format),
stats.py (step statistics and the summary table).
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

import torch

from spixwalk.files import write_atomic
from spixwalk import faults
from spixwalk.preprocess.store import StoreReader
from spixwalk.progress import Progress, say

from . import checkpoints, device_aug, distributed, runconfig, tracking, workers
from .checkpoints import ResumeError
from .clock import Clock, resolve as resolve_clock
from .data import Aug, ClipDataset, StreamSampler, collate
from .log import RunLog
from .model import WalkNet, patch_grid
from .options import BadInput, parse_args, uses_bf16, validate
from .schedule import BudgetSpent, lr_factor, steps_plan
from .selection import clips_of, label_configs, static_nodes  # noqa: F401  static_nodes: benchmarks/gpu.py
from .signals import Preempted, StopSignal
from .stats import Window, stat_keys, summary_table
from .walk import walk_loss

PREEMPTED = 3  # exit code: stopped by SIGTERM/SIGINT/SIGUSR1 (checkpoint saved if a step ran); rerun to resume
SUMMARY = "summary.json"
PREEMPTED_MARK = "preempted"  # RUN/preempted: written on a stop signal, so a job script can tell it from a failure


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
        self.spent = BudgetSpent()  # --clock seconds by each step, resumed ones included (--lr-schedule cosine)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lr_factor(a, self.steps, self.spent))
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
        self.spent.row(spent, self.step)  # a resumed run's mean seconds per step, until its first row
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
            worker_init_fn=workers.worker_init if a.workers else None,
            timeout=a.loader_timeout if a.workers else 0, persistent_workers=False,
            generator=torch.Generator().manual_seed(a.seed))  # own generator: keeps the global RNG for the model
        if rank == 0 and not self.already_finished:
            self.run.mkdir(parents=True, exist_ok=True)
            checkpoints.remove_stale_tmp(self.run)
            (self.run / PREEMPTED_MARK).unlink(missing_ok=True)
            write_atomic(self.run / "config.json", json.dumps(self.cfg, indent=1, sort_keys=True, default=str))
        self.tracker = tracking.Tracker(a, self.run, self.cfg, enabled=rank == 0 and not self.already_finished,
                                        start=self.step)

    def snapshot(self, name: str) -> None:
        """Keep a copy of the checkpoint just written as RUN/snapshot-<name>.pt."""
        if self.rank == 0:
            checkpoints.copy(self.run / checkpoints.NAME, self.run / f"snapshot-{name}.pt")

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
        if a.world > 1:  # the other ranks wait in the gradient all-reduce: join it with zero gradients
            _empty_step(model, opt, a, device, autocast)
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


def _empty_step(model, opt, a, device, autocast) -> None:
    """A DDP step that adds nothing: one blank patch clip through the model, its loss times 0, so this rank
    joins every gradient bucket's all-reduce and steps Adam with the ranks' mean gradient like the others."""
    frames = torch.zeros(1, a.clip_len, 3, a.img_size, a.img_size, dtype=torch.uint8, device=device)
    with autocast:
        q = model(frames, None, (True,))  # host flags, as train_step passes them: no device read-back
    opt.zero_grad(set_to_none=True)
    (q.float().sum() * 0.0).backward()
    opt.step()


def run_steps(tr: Trainer, stop: StopSignal, clock: Clock) -> tuple[float, int, str]:
    """Train until the step count, the --budget or a stop signal: (wall seconds, steps, why stopped).
    Leaves tr.bar open: the caller closes it after the checkpoint (a closed stream must not cost the save)."""
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
    tr.bar = (Progress(a.budget, "train", unit=f"{clock.kind}-s", initial=round(before, 1), enabled=tr.rank == 0)
              if a.budget else Progress(tr.steps, "train", unit="step", initial=tr.step, enabled=tr.rank == 0))
    it = iter(tr.loader)
    try:
        faults.point("train.workers")
        seconds, done, why = _steps(tr, stop, clock, it, win, autocast, marks, step_marks)
    finally:
        workers.stop(it)
    if win.n:  # the steps since the last row: the log always ends at the run's last step
        seconds += _log_row(tr, win, clock, marks)[0]["seconds"]
    return seconds, done, why


def _steps(tr, stop, clock, it, win, autocast, marks, step_marks) -> tuple[float, int, str]:
    a, device, bar = tr.a, tr.device, tr.bar
    seconds, done, why = 0.0, 0, "steps"
    t_bar, clips_per_step = time.perf_counter(), a.batch * a.world
    while tr.step < tr.steps:
        faults.point("train.next")
        t0 = time.perf_counter()
        try:
            batch = workers.next_batch(it, a.loader_timeout if a.workers else 0)
        except workers.Stalled as e:
            if a.world > 1:  # the other ranks wait in a collective: end the process group
                raise
            tr.stalled, why = str(e), "stalled"
            break
        if distributed.any_rank(bool(stop.signum), a.world):  # every rank stops before the same step
            why = "signal"
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
        # a row at the run's first step too: the summary's first_loss is that step's, not the first row's mean
        row_due = not (tr.step % a.log_every and tr.step % a.ckpt_every and tr.step > 1 and not at_mark) \
            or _clock_due(a, clock, marks)
        if stop.signum and a.world == 1 or not row_due:  # one process and a signal: this step was the last
            if not a.budget:
                bar.update()
            elif clock.kind == "cpu":  # read without a sync: the bar moves every step
                bar.set(round(clock.now(), 1))
            if stop.signum and a.world == 1:
                why = "signal"
                break
            continue
        row, (n_over, n_snap) = _log_row(tr, win, clock, marks)
        seconds += row["seconds"]
        bar.note(loss=f"{row.get('loss', float('nan')):.3f}")
        bar.set(round(row["clock_seconds"], 1) if a.budget else tr.step)
        if n_snap or at_mark:
            tr.checkpoint(seconds, clock)
            if n_snap:  # a copy per mark passed: one long step can pass several (another rank's: the first)
                due = [m for m in marks if m <= row["clock_seconds"]] or marks[:1]
                for m in due:
                    tr.snapshot(f"{clock.kind}{m:g}")
                del marks[:len(due)]
            if at_mark:
                tr.snapshot(f"step{tr.step}")
        if n_over:
            why = f"{clock.kind}_budget"
            break
        if tr.step % a.ckpt_every == 0 and tr.step < tr.steps:
            tr.checkpoint(seconds, clock)
    return seconds, done, why


def _clock_due(a, clock: Clock, marks: list[float]) -> bool:
    """One process on the CPU clock: has the --budget or the next --snapshot-at mark passed? Then the row (which
    stops the run or takes the snapshot) is written now, not up to --log-every steps later. The device clock
    syncs to be read and ranks must agree, so there the rows alone decide."""
    if a.world > 1 or clock.kind != "cpu":
        return False
    limits = ([a.budget] if a.budget else []) + marks[:1]
    return bool(limits) and clock.now() >= min(limits)


def _log_row(tr: Trainer, win: Window, clock: Clock, marks: list[float]):
    """Write one log row; (row, [over budget, snapshot due] summed over ranks)."""
    a = tr.a
    now = clock.now()  # before the row's sync: the device clock syncs on the window's last step anyway
    over = float(bool(a.budget) and now >= a.budget)
    snap = float(bool(marks) and now >= marks[0])
    busy = clock.busy() - win.busy0
    row, flags = win.row(tr.step, a.world, [over, snap, now], busy)
    if "loss" in row and not math.isfinite(row["loss"]):
        raise RuntimeError(f"steps {tr.step - win.n + 1}-{tr.step}: non-finite loss {row['loss']}")
    tr.spent.row(flags.pop() / a.world, tr.step)  # the ranks' mean clock: every rank steps with the same cosine lr
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
        rank, a.world, device = distributed.setup(a)
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
        distributed.teardown(a.world)
        return json.loads((run / SUMMARY).read_text())
    if rank == 0:
        print(f"[train] {tr.clips} clips, configs {tr.cfgs or '-'}, nodes {a.nodes}, preset {a.preset}, "
              f"{tr.steps} steps (from {tr.step}), batch {a.batch} x {a.world} process(es) on {device}", flush=True)
    clock = Clock(a.clock, device, tr.resumed.cpu, tr.resumed.device)
    seconds, done, why = run_steps(tr, stop, clock)
    if done or why not in ("signal", "stalled"):
        tr.checkpoint(seconds, clock)  # first: what follows writes to streams that may be gone
    if why == "signal" and rank == 0:
        mark_preempted(run, f"signal {stop.signum} at step {tr.step}")
    tr.bar.close()
    tr.tracker.close()
    if why in ("signal", "stalled"):
        distributed.teardown(a.world)
        stopped = {"preempted": f"signal {stop.signum}"} if why == "signal" else {"stalled": tr.stalled}
        return {**stopped, "step": tr.step, "saved": bool(done)}
    summary = tr.log.summary(tr.cfg, seconds, done, a.batch * a.world) if rank == 0 else {}
    summary.update(steps=tr.step, stopped_by=why, train_seconds_total=round(tr.resumed.seconds + seconds, 2),
                   train_cpu_seconds_total=round(clock.cpu(), 2), train_device_seconds_total=round(clock.device(), 3),
                   clock=clock.kind)
    if rank == 0:
        write_atomic(run / SUMMARY, json.dumps(summary, indent=1))  # its presence marks the run finished
        tr.log.plot()
        say(summary_table(summary))
    distributed.teardown(a.world)
    return summary


def mark_preempted(run: Path, what: str) -> None:
    """RUN/preempted: a stop signal ended this run (cluster/train.sbatch requeues on it; removed at start)."""
    try:
        Path(run).mkdir(parents=True, exist_ok=True)
        write_atomic(Path(run) / PREEMPTED_MARK, what + "\n")
    except OSError as e:
        say(f"[train] note: could not write {Path(run) / PREEMPTED_MARK}: {e}", file=sys.stderr)


def main(argv=None) -> int:
    a = parse_args(argv)
    try:
        summary = train(a)
    except (BadInput, ResumeError) as e:
        say(f"[train] error: {e}", file=sys.stderr)
        return 2
    except Preempted as e:
        if os.environ.get("RANK", "0") == "0":
            mark_preempted(a.run, f"signal {e.args[0]} during set-up")
        say(f"[train] stopped by signal {e.args[0]} during set-up; nothing saved, rerun the same command",
            file=sys.stderr)
        return PREEMPTED
    saved = "checkpoint saved" if summary.get("saved") else "no step ran, nothing saved"
    if summary.get("preempted"):
        say(f"[train] stopped by {summary['preempted']} at step {summary['step']}; {saved}, "
            "rerun the same command to resume", file=sys.stderr)
        return PREEMPTED
    if summary.get("stalled"):
        say(f"[train] error: {summary['stalled']} (a worker hangs, or reading the store is this slow); "
            f"stopped at step {summary['step']}, {saved}; rerun to resume (--loader-timeout, --workers 0)",
            file=sys.stderr)
        return 1
    if summary.get("dropped_clips"):  # trained, but on fewer clips than asked: say so in the exit code
        say(f"[train] {summary['dropped_clips']} clip(s) failed to load and were left out (see lines above)",
            file=sys.stderr)
        return 1
    return 0


def _init_from(net, path) -> None:
    from .weights import WeightsError, init_from

    try:
        kind, padding = init_from(net.encoder, path)
    except WeightsError as e:
        raise BadInput(f"--init-from {e}") from None
    print(f"[train] encoder initialised from {path} ({kind} weights)")
    if padding and padding != net.encoder.padding:
        print(f"[train] note: {path} was trained with {padding} padding; this run pads with "
              f"{net.encoder.padding} (--padding {padding} to match)")
