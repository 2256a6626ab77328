"""The trainer's options: the parser (with --preset and --config applied) and every check made before any work."""
from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from spixwalk.options import stage_parser
from spixwalk.preprocess import spconfig

from . import runconfig, tracking, workers
from .clock import CLOCKS
from .data import FRAME_TRANSFORMS
from .model import NORMS, PADDINGS, PATCH_JITTERS
from .presets import DEFAULT_PRESET, PRESETS, apply_preset, shown
from .walk import CYCLES, DROP_MODES

DESCRIPTION = ("The training loop: data, model, Adam, checkpoints, logs. Plain process on CPU, DDP under torchrun.\n"
               "Contrastive random walk over superpixel (or patch) nodes read from a spixwalk store.")


class BadInput(Exception):
    """Unusable input: reported as one line, exit code 2."""


def parse_args(argv=None) -> argparse.Namespace:
    p = stage_parser("python -m train", description=DESCRIPTION)
    for options in (_data_options, _walk_options, _optimisation_options, _run_options):
        options(p)
    a = runconfig.parse(p, argv)
    apply_preset(a)
    if a.workers is None:
        a.workers = default_workers()
    return a


def default_workers() -> int:
    """Loader workers from the CPUs this process may use: all but two (the training process and its launch
    thread), at least 2, at most 14 (past that the workers contend for memory bandwidth, not CPU)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        cpus = os.cpu_count() or 2
    return max(2, min(14, cpus - 2))


def _data_options(p) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--store", required=True, help="store root written by `python -m preprocess`")
    g.add_argument("--alg", default="slic", choices=list(spconfig.ALGORITHMS),
                   help="label configuration by algorithm + its options; random: one configuration drawn per clip")
    spconfig.add_options(g, aliases={"--lsc-iterations": ["--iterations"]})  # --iterations: deprecated spelling
    g.add_argument("--label-config", help="configuration name (e.g. slic-n30-c30); overrides --alg")
    g.add_argument("--random-configs", help="comma list for --alg random (default: every complete configuration "
                   "of the store except the controls' random-*, grid-*, randvid-*)")
    g.add_argument("--clip-len", type=int, help="frames per clip (T)" + shown("clip_len"))
    g.add_argument("--clip-stride", type=int, default=0, help="frames between clip starts (0: T, non-overlapping); "
                   "used with --clips-per-video 0")
    g.add_argument("--clips-per-video", type=int, help="clips drawn per video and epoch from every start "
                   "(CRW: 5, possibly overlapping); 0: every clip at --clip-stride" + shown("clips_per_video"))
    g.add_argument("--img-size", type=int, help="side of the training crops" + shown("img_size"))
    g.add_argument("--frame-transforms", help=f"comma list of {'/'.join(FRAME_TRANSFORMS)}: per-frame random "
                   "resized crop, colour jitter, per-clip flip" + shown("frame_transforms"))
    g.add_argument("--workers", type=int, default=None, help="DataLoader workers per process (default: the "
                   "process's CPUs less 2 for the training process, at least 2, at most 14)")
    g.add_argument("--aug-on", default="auto", choices=["auto", "device", "loader"],
                   help="device: workers only read frames, label maps and the clip's random draws; crop, resize, "
                   "jitter, flip, relabel and pooling weights run batched on the model's device (train/device_aug.py); "
                   "loader: all of it per clip in the workers (OpenCV). Both give the same batches. auto: device on "
                   "CUDA, loader on the CPU (there the batched ops cost the training process more than the workers)")
    g.add_argument("--label-cache-mb", type=float, default=256, help="per loader process: read a shard's label "
                   "maps once and keep them where the whole store's fit in this many MB (0: read per clip)")
    g.add_argument("--loader-timeout", type=float, default=600.0, help="seconds to wait for one batch from the "
                   "loader workers before stopping with a checkpoint and exit 1 (a hung worker; 0: wait forever)")
    g.add_argument("--mp-context", default=None, choices=list(workers.START_METHODS),
                   help="how loader workers start (default forkserver: fork hangs once the parent used OpenCV or zarr)")


def _walk_options(p) -> None:
    g = p.add_argument_group("preset", "unset options below take the preset's value (config.json records both)")
    g.add_argument("--preset", default=DEFAULT_PRESET, choices=sorted(PRESETS),
                   help="crw: every choice as videowalk ships it (patch nodes); thesis: crw + superpixel nodes + "
                   "cycles summed; legacy: spixwalk's defaults before presets; study-<arm>: that study arm's recipe "
                   "(train/recipes.py: its base preset, nodes, label configuration, batch, lr and schedule)")
    g = p.add_argument_group("model and walk")
    g.add_argument("--nodes", choices=["superpixels", "patches", "mixed"], help="graph nodes: superpixels of "
                   "the store's label maps, square patches (CRW), or mixed per clip (--patch-prob)" + shown("nodes"))
    g.add_argument("--patch-prob", type=float, default=0.7, help="mixed: probability that a clip uses patches")
    g.add_argument("--patch-jitter", choices=PATCH_JITTERS, help="per-patch crop: crw redraws boxes larger "
                   "than the window (torchvision), clamp cuts them to it" + shown("patch_jitter"))
    g.add_argument("--padding", choices=PADDINGS, help="encoder conv padding" + shown("padding"))
    g.add_argument("--norm", choices=sorted(NORMS), help="input mean/std in training (evaluation always uses "
                   "imagenet, as CRW's)" + shown("norm"))
    g.add_argument("--tau", type=float, help="softmax temperature of the walk's transitions" + shown("tau"))
    g.add_argument("--edge-drop", type=float, help="fraction of affinities dropped per transition"
                   + shown("edge_drop"))
    g.add_argument("--edge-drop-mode", choices=DROP_MODES, help="crw: the backward step also drops the forward "
                   "step's edges (about 19%% at 0.1), as videowalk ships; independent: two separate masks"
                   + shown("edge_drop_mode"))
    g.add_argument("--cycles", choices=CYCLES, help="all: k=1..T-1 summed (thesis text); crw: k=2..T-1 averaged"
                   + shown("cycles"))


def _optimisation_options(p) -> None:
    g = p.add_argument_group("optimisation")
    g.add_argument("--batch", type=int, help="clips per step and process" + shown("batch"))
    g.add_argument("--steps", type=int, help="optimisation steps of the run (a --budget may stop sooner)"
                   + shown("steps"))
    g.add_argument("--epochs", type=float, default=None, help="train this many epochs instead of --steps")
    g.add_argument("--lr", type=float, help="Adam learning rate" + shown("lr"))
    g.add_argument("--lr-drop-at", type=float, help="fraction of the steps after which lr is multiplied by "
                   "--lr-gamma; 0: constant" + shown("lr_drop_at"))
    g.add_argument("--lr-gamma", type=float, help="factor of the lr drop at --lr-drop-at" + shown("lr_gamma"))
    g.add_argument("--lr-schedule", choices=LR_SCHEDULES, help="drop: CRW's step decay "
                   "(--lr-drop-at, --lr-gamma); cosine: a half cosine from --lr to 0 over the --budget (clock seconds, "
                   "read at each log row and extrapolated between rows; a larger --budget on resume raises lr "
                   "again) or, without one, over the steps; warm-up applies to both" + shown("lr_schedule"))
    g.add_argument("--warmup-steps", "--warmup", dest="warmup", type=int,
                   help="linear learning-rate warm-up over this many steps (lr x (s+1)/N), then constant until "
                   "--lr-drop-at" + shown("warmup"))
    g.add_argument("--seed", type=int, default=0, help="seeds the initial weights and the clip order")
    g.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="auto: CUDA when there is a GPU, else the CPU")
    g.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    g.add_argument("--precision", choices=PRECISIONS, help="the encoder's forward under bf16 "
                   "autocast (weights, walk loss and optimiser stay fp32): auto: bf16 on CUDA, fp32 on CPU; bf16 "
                   "also on CPU (about 2x the steps per CPU second where the CPU has AVX512-BF16 or AMX)"
                   + shown("precision"))
    g.add_argument("--compile", action="store_true", help="torch.compile the encoder (in place: checkpoints "
                   "keep their keys); the first steps pay the compilation")


def _run_options(p) -> None:
    g = p.add_argument_group("run directory")
    g.add_argument("--run", "--run-dir", dest="run", required=True,
                   help="output directory: config, logs, plot, checkpoint, summary "
                   "(--run-dir: the same, for torchrun, whose own --run-path swallows --run)")
    g.add_argument("--ckpt-every", type=int, default=100, help="steps between checkpoints (RUN/checkpoint.pt)")
    g.add_argument("--log-every", type=int, default=10, help="steps per log row: the only host syncs "
                   "(row = mean over its steps and over DDP ranks)")
    g.add_argument("--budget", "--cpu-budget", dest="budget", type=float, default=0,
                   help="stop (as finished) once training has used this many seconds on --clock, checked at each "
                   "log row (0: off)")
    g.add_argument("--clock", default="auto", choices=CLOCKS, help="what --budget and --snapshot-at count: cpu: "
                   "CPU seconds of the training process; device: device-busy seconds (CUDA events); auto: device "
                   "on CUDA, else cpu (train/clock.py)")
    g.add_argument("--snapshot-at", "--snapshot-cpu", dest="snapshot_at", default="",
                   help="comma list of --clock seconds at which to keep a copy snapshot-<clock><S>.pt of the "
                   "checkpoint (learning-signal study)")
    g.add_argument("--snapshot-steps", default="", help="comma list of steps at which to keep a copy "
                   "snapshot-step<N>.pt; 0: the initial weights, before the first step")
    g.add_argument("--resume", default="auto",
                   help="auto: continue RUN/checkpoint.pt if present; never: refuse an existing one; or a path")
    g = p.add_argument_group("around a run (train/checkpoints.py, train/tracking.py, train/runconfig.py)")
    g.add_argument("--config", help="a run's config.json: rerun its options; options given here override them")
    g.add_argument("--keep-every", type=int, default=0,
                   help="also keep RUN/checkpoint-<step>.pt every N steps (a multiple of --ckpt-every; 0: off)")
    g.add_argument("--init-from", help="warm start, encoder weights only: a spixwalk checkpoint or export, a "
                   "videowalk (CRW) checkpoint with its layer4, or a torchvision / timm resnet18 state dict (shapes "
                   "must match; the run keeps its own --padding)")
    g.add_argument("--tensorboard", action="store_true", help="TensorBoard scalars in RUN/tensorboard/")
    g.add_argument("--wandb", action="store_true", help="Weights & Biases curves (needs wandb and a key)")


PRECISIONS = ("auto", "bf16", "fp32")
LR_SCHEDULES = ("drop", "cosine")


def uses_bf16(a, device) -> bool:
    """Whether the forward runs under bf16 autocast: --precision, auto meaning bf16 on CUDA only."""
    return a.precision == "bf16" or (a.precision == "auto" and device.type == "cuda")


def cpu_has_bf16() -> bool:
    """Whether the CPU computes bf16 natively (AVX512-BF16 or AMX): only there does bf16 autocast pay."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


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
    bad += _check_counts(a)
    if a.tau <= 0 or a.lr <= 0 or a.clips_per_video < 0 or a.budget < 0 or a.warmup < 0:
        bad.append("--tau and --lr must be > 0, --clips-per-video, --budget and --warmup-steps >= 0")
    try:
        a.snapshots = sorted(float(x) for x in a.snapshot_at.split(",") if x.strip())
    except ValueError:
        bad.append(f"--snapshot-at {a.snapshot_at!r}: not a comma list of seconds")
    try:
        a.snapshot_step_list = sorted(int(x) for x in a.snapshot_steps.split(",") if x.strip())
        if any(n < 0 for n in a.snapshot_step_list):
            raise ValueError
    except ValueError:
        bad.append(f"--snapshot-steps {a.snapshot_steps!r}: not a comma list of steps >= 0")
    bad += [why for why in (_checkpoint_options(a), tracking.check(a)) if why]
    if bad:
        raise BadInput("; ".join(bad))
    if not Path(a.store).is_dir():
        raise BadInput(f"store {a.store}: no such directory")


def _check_counts(a) -> list[str]:
    """Numbers argparse accepts but no run can use (nan passes every comparison: test finiteness), and a --run
    that cannot be a run folder."""
    bad = []
    if a.epochs is None and a.steps < 1:
        bad.append(f"--steps {a.steps} must be >= 1")
    if a.epochs is not None and not (math.isfinite(a.epochs) and a.epochs > 0):
        bad.append(f"--epochs {a.epochs:g} must be a number > 0")
    if a.workers < 0:
        bad.append(f"--workers {a.workers} must be >= 0")
    if not (math.isfinite(a.loader_timeout) and a.loader_timeout >= 0):
        bad.append(f"--loader-timeout {a.loader_timeout} must be a number of seconds >= 0")
    for name, v in (("--lr", a.lr), ("--tau", a.tau), ("--budget", a.budget)):
        if not math.isfinite(v):
            bad.append(f"{name} {v} must be a finite number")
    if Path(a.run).exists() and not Path(a.run).is_dir():
        bad.append(f"--run {a.run}: exists and is not a folder")
    return bad


def _checkpoint_options(a) -> str | None:
    """Why --keep-every / --init-from are unusable, or None."""
    if a.keep_every < 0:
        return f"--keep-every {a.keep_every} must be >= 0 (0: keep only checkpoint.pt)"
    if a.keep_every and a.keep_every % max(a.ckpt_every, 1):
        return (f"--keep-every {a.keep_every} must be a multiple of --ckpt-every {a.ckpt_every} "
                f"(only saved steps can be kept)")
    if a.init_from and Path(a.init_from).is_dir():
        ckpt = Path(a.init_from) / "checkpoint.pt"
        return f"--init-from {a.init_from}: a folder, not a weights file" + (f"; its checkpoint is {ckpt}"
                                                                              if ckpt.is_file() else "")
    if a.init_from and not Path(a.init_from).is_file():
        return f"--init-from {a.init_from}: no such file"
    return None
