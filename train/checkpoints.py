"""The checkpoint format in one place: what RUN/checkpoint.pt holds, how it is written, read back and resumed.

checkpoint.pt, a torch.save'd dict (full unpickling to read: it holds numpy RNG states):
  model                  WalkNet state dict: "encoder.*" (torchvision resnet18 names), "head.*"
  optimizer, scheduler   Adam and LambdaLR states
  step                   optimisation steps done
  config                 the run's resolved options (as config.json), the conv padding among them
  rng                    torch / numpy / python (/ cuda) generator states, one per rank under DDP
  data                   {"position": clips consumed by the sampler, "seed"}
  train_seconds, train_cpu_seconds, train_device_seconds, clock (cpu|device, train/clock.py), finished
The padding is stored once, in config (train/weights.py, the one reader of weight files, reads it).
Every file written here has a sha256 sidecar (train/digest.py), checked on every read: a damaged latest
checkpoint is refused, and resume falls back to the newest kept one (--keep-every) when there is one.
Around the one checkpoint: a kept history (--keep-every), snapshots, warm starts (--init-from).
"""
from __future__ import annotations

import os
import random
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from spixwalk.files import atomic_path

from . import digest
from .weights import WeightsError, config_of, init_from, read  # noqa: F401  init_from: its old home

NAME = "checkpoint.pt"
# options that change what a checkpoint means: resuming with different values is refused
RUN_KEYS = ("label_configs", "clips", "nodes", "patch_prob", "clip_len", "clip_stride", "batch", "lr", "warmup", "tau",
            "edge_drop", "cycles", "seed", "img_size", "world", "preset", "padding", "norm", "patch_jitter",
            "edge_drop_mode", "frame_transforms", "clips_per_video", "lr_drop_at", "lr_gamma", "lr_schedule")
OLDER_DEFAULTS = {"lr_schedule": "drop"}  # run keys added later: what a checkpoint without them was trained with


class ResumeError(Exception):
    """A checkpoint that cannot be resumed: one line naming the file and why."""


# ---------------------------------------------------------------- writing


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


def record(net, opt, sched, step: int, config: dict, rngs, batch: int, seed: int, seconds: float, clock,
           finished: bool) -> dict:
    """What checkpoint.pt holds (see the module docstring); `clock`: the run's train.clock.Clock."""
    return {"model": net.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
            "step": step, "config": config, "rng": rngs, "data": {"position": step * batch, "seed": seed},
            "train_seconds": seconds, "train_cpu_seconds": clock.cpu(), "train_device_seconds": clock.device(),
            "clock": clock.kind, "finished": finished}


def write(run: Path, state: dict) -> Path:
    """RUN/checkpoint.pt, atomically: a crash leaves the previous checkpoint, never half of a new one."""
    path = Path(run) / NAME
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
        digest.record(path, digest.sha256_of(tmp), keep_previous=True)  # before the rename: both match
    return path


def copy(src: Path, dst: Path) -> Path:
    """dst, a copy of checkpoint src (a hard link where possible: src is only ever replaced by rename) with
    its own sidecar, written first: a copy cut short is found damaged, never taken for whole."""
    digest.record(dst, digest.recorded(src)[0] if digest.recorded(src) else digest.sha256_of(src))
    with atomic_path(dst) as tmp:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copy2(src, tmp)
    return dst


# ---------------------------------------------------------------- resuming


@dataclass
class Progress:
    """Where a resumed run stands."""
    step: int = 0
    seconds: float = 0.0
    cpu: float = 0.0
    finished: bool = False
    device: float = 0.0


def read_for_resume(run: Path, resume: str, config: dict) -> dict | None:
    """The checkpoint to continue (--resume auto|never|PATH), checked against this run's config; None: fresh.
    A damaged or unreadable RUN/checkpoint.pt is refused; with --resume auto the newest kept checkpoint
    that reads whole is resumed instead, said in one line."""
    path = Path(run) / NAME if resume in ("auto", "never") else Path(resume)
    if not path.exists():
        if resume not in ("auto", "never"):
            raise ResumeError(f"checkpoint {path}: no such file")
        return None
    if resume == "never":
        raise ResumeError(f"checkpoint {path} exists and --resume never: choose another --run")
    try:
        ckpt = _load(path)
    except ResumeError as e:
        kept = sorted(Path(run).glob(kept_name(0).replace("0000000", "[0-9]" * 7)), reverse=True)
        ckpt = next((c for c in map(_load_or_none, kept) if c is not None), None) if resume == "auto" else None
        if ckpt is None:
            raise ResumeError(f"{e}; no kept checkpoint to fall back to: move it away to start over") from None
        print(f"[train] {e}; resuming from the kept checkpoint of step {ckpt['step']} instead", file=sys.stderr)
    old = config_of(ckpt)
    diff = {k: (old.get(k, OLDER_DEFAULTS.get(k)), config[k]) for k in RUN_KEYS
            if old.get(k, OLDER_DEFAULTS.get(k)) != config[k]}
    if diff:
        raise ResumeError(f"checkpoint {path} was trained with another config {diff} (old, new); "
                          "use a new --run or the same options")
    return ckpt


def _load(path: Path) -> dict:
    try:
        ckpt = read(path)
    except WeightsError as e:
        raise ResumeError(f"checkpoint {e}") from None
    _check_is_training_checkpoint(ckpt, path)
    return ckpt


def _load_or_none(path: Path) -> dict | None:
    try:
        return _load(path)
    except ResumeError:
        return None


TRAINING_KEYS = ("model", "optimizer", "scheduler", "step", "config", "rng")


def _check_is_training_checkpoint(ckpt, path) -> None:
    """A list, a torchvision state dict or an export file is not something to resume: say so, not 'another config'."""
    if not isinstance(ckpt, dict) or not all(k in ckpt for k in TRAINING_KEYS):
        have = sorted(map(str, ckpt))[:5] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ResumeError(f"checkpoint {path}: not a spixwalk training checkpoint (needs {', '.join(TRAINING_KEYS)}; "
                          f"has {have}); choose another --run")


def restore(ckpt: dict, net, opt, sched, rank: int) -> Progress:
    """Weights, optimiser, schedule and this rank's RNG states from a checkpoint; returns its progress."""
    net.load_state_dict(ckpt["model"])
    opt.load_state_dict(ckpt["optimizer"])
    sched.load_state_dict(ckpt["scheduler"])
    set_rng_state(ckpt["rng"][rank] if isinstance(ckpt["rng"], list) else ckpt["rng"])
    return Progress(ckpt["step"], ckpt.get("train_seconds", 0.0), ckpt.get("train_cpu_seconds", 0.0),
                    bool(ckpt.get("finished")), ckpt.get("train_device_seconds", 0.0))


# ---------------------------------------------------------------- around the one checkpoint


def kept_name(step: int) -> str:
    return f"checkpoint-{step:07d}.pt"


def keep(run: Path, step: int, every: int) -> Path | None:
    """After checkpoint.pt was written at `step`: keep a copy when step is a multiple of `every`."""
    if not every or step % every:
        return None
    return copy(Path(run) / NAME, Path(run) / kept_name(step))


def remove_stale_tmp(run: Path) -> None:
    """Temp files of a save that was killed before its rename (atomic_path removes them on an exception,
    not on SIGKILL or a power cut; one run directory has one writer)."""
    for p in Path(run).glob("*.tmp*"):
        p.unlink(missing_ok=True)
