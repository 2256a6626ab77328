"""`evaluate keypoints` and `evaluate vip`: options, input checks (exit 2 before any output), the runs."""
from __future__ import annotations

import sys
from pathlib import Path

from spixwalk.files import check_out
from spixwalk.options import resolve_device
from spixwalk.train.model import PADDINGS

from .davis_io import InputError
from .propagate import DEFAULTS


def _features_and_propagation(p) -> None:
    """The options `evaluate davis` has for features and propagation, with the same defaults."""
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--ckpt", help="spixwalk or videowalk checkpoint, or a torchvision / timm resnet18 state dict")
    src.add_argument("--init", choices=["random"], help="randomly initialised encoder (fixed --seed)")
    src.add_argument("--features", choices=["rgb"], help="8x8-pooled normalised RGB baseline")
    p.add_argument("--out", required=True, help="results folder")
    p.add_argument("--eval-scale", type=float, default=1.0, help="frames resized by this factor for the "
                   "propagation (written coordinates stay in pixels of the frames read)")
    p.add_argument("--context", type=int, default=DEFAULTS["n_context"], help="preceding frames used as context")
    p.add_argument("--radius", type=float, default=DEFAULTS["radius"], help="spatial radius in feature cells")
    p.add_argument("--topk", type=int, default=DEFAULTS["topk"], help="neighbours averaged per position")
    p.add_argument("--tau", type=float, default=DEFAULTS["tau"], help="softmax temperature")
    p.add_argument("--seed", type=int, default=0, help="seed of --init random")
    p.add_argument("--padding", default=None, choices=PADDINGS, help="conv padding of --init random and of a --ckpt "
                   "that does not record one (default: zeros)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    p.add_argument("--device", default="auto", help="auto (a GPU when there is one), cpu, cuda or cuda:N")


def add_parsers(sub) -> None:
    from .keypoints import READOUTS, SIGMA, WINDOW

    p = sub.add_parser("keypoints", help="joint propagation (BADJA, JHMDB) and PCK as each benchmark defines it",
                       description="Each joint visible at the query frame (BADJA: the first annotated frame; JHMDB: "
                       "frame 1) is one channel of the masks' label propagation. Writes OUT/<seq>/keypoints.csv "
                       "(frame,joint,row,col,visible: pixels of the frames read; visible 1/0 as annotated, -1 on "
                       "frames without annotation; row = col = -1 where a channel emptied) and OUT/pck.csv. BADJA: "
                       "PCK@0.2 of sqrt(mask area), the area from the DAVIS-2016 binary 480p mask of the frame; "
                       "JHMDB: PCK@0.1/@0.2 of 0.6 x the joints' box diagonal, as CRW's eval_pck.py.")
    p.add_argument("--dataset", required=True, choices=["badja", "jhmdb"], help="annotation format and metric")
    p.add_argument("--root", required=True, help="badja: DAVIS root (JPEGImages/480p, Annotations/480p); jhmdb: "
                   "the folder the file list's relative paths start from")
    p.add_argument("--annotations", required=True, help="badja: folder of <seq>.json (BADJA's joint_annotations); "
                   "jhmdb: CRW's file list (frames folder and joint_positions.mat per line)")
    p.add_argument("--sequences", default=None, help="comma-separated subset (badja: JSON stems; jhmdb: frames "
                   "folder names)")
    p.add_argument("--full-height", type=float, default=1080, help="badja: height of the frames the annotations "
                   "were made on (DAVIS Full-Resolution)")
    p.add_argument("--sigma", type=float, default=SIGMA, help="joint label: Gaussian std in feature cells (0: one-hot)")
    p.add_argument("--readout", choices=READOUTS, default="soft", help=f"soft: centroid of the channel over the "
                   f"{2 * WINDOW + 1}x{2 * WINDOW + 1} cells around its peak; argmax: the peak cell's centre")
    p.add_argument("--max-frames", type=int, default=0, help="only the query frame and the N - 1 frames after it "
                   "(quick looks: PCK then covers those frames only)")
    p.add_argument("--video", action="store_true", help="OUT/<seq>/side-by-side.mp4 (annotated | propagated "
                   "joints) and its middle frame as side-by-side.png")
    p.add_argument("--video-fps", type=float, default=24.0, help="frame rate of --video")
    _features_and_propagation(p)
    p.set_defaults(func=cmd_keypoints)

    p = sub.add_parser("vip", help="VIP part propagation (Images/, Category_ids/) and mIoU as CRW's eval_vip.py")
    p.add_argument("--root", required=True, help="VIP root: Images/<video>/*.jpg, Category_ids/<video>/*.png")
    p.add_argument("--sequences", default=None, help="comma-separated videos (default: every folder of Images/)")
    _features_and_propagation(p)
    p.set_defaults(func=cmd_vip)


def _check(args) -> str | None:
    if not 0 < args.eval_scale <= 1:
        return f"--eval-scale {args.eval_scale:g}: must be in (0, 1]"
    if getattr(args, "sigma", 0) < 0:
        return f"--sigma {args.sigma:g}: must be >= 0"
    if args.topk < 1 or args.context < 1 or args.radius <= 0 or args.tau <= 0:
        return "--topk and --context must be >= 1, --radius and --tau > 0"
    try:
        check_out(args.out, folder=True)
        args.device = str(resolve_device(args.device))
    except ValueError as e:
        return str(e)
    except RuntimeError:  # torch's own parse error for a name that is no device
        return f"--device {args.device}: not a device (auto, cpu, cuda or cuda:N)"
    return None


def _featurizer(args):
    import torch

    from . import features

    if args.threads:
        torch.set_num_threads(args.threads)
    kind = "ckpt" if args.ckpt else ("rgb" if args.features == "rgb" else "random")
    return kind, features.make(kind, ckpt=args.ckpt, seed=args.seed, device=args.device, padding=args.padding)


def _config(args, kind, featurize, prop) -> dict:
    import json

    cfg = {k: v for k, v in vars(args).items() if k != "func"}
    cfg.update(features_kind=kind, padding=featurize.padding, propagation=prop)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "config.json").write_text(json.dumps(cfg, indent=1, default=str))
    return cfg


def load_tracks(args) -> list:
    from .keypoint_io import jhmdb_list, read_badja, read_jhmdb

    want = [s for s in args.sequences.split(",") if s] if args.sequences else None
    if args.dataset == "badja":
        folder = Path(args.annotations)
        if not folder.is_dir():
            raise InputError(f"{folder}: BADJA annotation folder not found")
        have = {p.stem: p for p in sorted(folder.glob("*.json"))}
        names = want or list(have)
        unknown = [s for s in names if s not in have]
        if unknown or not names:
            raise InputError(f"{folder}: no annotation {', '.join(s + '.json' for s in unknown) or '*.json'}")
        return [read_badja(have[s], args.root, args.full_height) for s in names]
    pairs = jhmdb_list(args.annotations, args.root)
    if want:
        unknown = set(want) - {f.name for f, _ in pairs}
        if unknown:
            raise InputError(f"{args.annotations}: no video(s) {', '.join(sorted(unknown))} in the list")
        pairs = [(f, m) for f, m in pairs if f.name in want]
    return [read_jhmdb(f, m) for f, m in pairs]


def cmd_keypoints(args) -> int:
    from . import keypoints

    problem = _check(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    tracks = load_tracks(args)  # InputError: exit 2 before any output
    if args.max_frames:
        from .keypoint_io import truncate
        tracks = [truncate(t, args.max_frames) for t in tracks]
    kind, featurize = _featurizer(args)
    prop = dict(n_context=args.context, radius=args.radius, topk=args.topk, tau=args.tau)
    _config(args, kind, featurize, prop)
    summary = keypoints.run(args.dataset, tracks, featurize, args.out, video_fps=args.video_fps if args.video else 0,
                            eval_scale=args.eval_scale, prop_kwargs=prop, sigma=args.sigma, readout=args.readout)
    keypoints.print_summary(summary)
    print(f"wrote {Path(args.out) / 'pck.csv'}")
    return 0 if summary["complete"] else 1


def cmd_vip(args) -> int:
    from . import vip

    problem = _check(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    want = [s for s in args.sequences.split(",") if s] if args.sequences else None
    videos = vip.video_list(args.root, want)  # InputError: exit 2 before any output
    kind, featurize = _featurizer(args)
    prop = dict(n_context=args.context, radius=args.radius, topk=args.topk, tau=args.tau)
    _config(args, kind, featurize, prop)
    summary = vip.run(args.root, videos, featurize, args.out, eval_scale=args.eval_scale, prop_kwargs=prop)
    vip.print_summary(summary)
    return 0 if summary["complete"] else 1
