"""python -m evaluate {davis,keypoints,vip,metrics,synth,superpixels,report,walk} ...  (see --help of each)."""
import sys
from pathlib import Path

from spixwalk.files import check_out
from spixwalk.options import resolve_device, show_defaults, stage_parser
from spixwalk.train.model import PADDINGS

from .davis_io import YEARS, InputError, resolve_year
from .propagate import DEFAULTS


def _common(p, results_flag=None):
    p.add_argument("--davis", required=True, help="DAVIS root (JPEGImages/, Annotations/, ImageSets/)")
    p.add_argument("--year", type=int, choices=YEARS, default=None,
                   help="2016: mode-L masks, 255 = object; 2017: palette masks, 255 = void (default: the year the "
                   "root's ImageSets lists, else the kind of its masks)")
    p.add_argument("--set", default="val", help="ImageSets/<year>/<set>.txt lists the sequences")
    p.add_argument("--sequences", default=None, help="comma-separated subset of sequences")


def _scale_option(p, default) -> None:
    p.add_argument("--eval-scale", type=float, default=default, metavar="S",
                   help="read frames (area averaging) and masks (nearest neighbour) resized by S: predictions and "
                   "scores at that size, recorded in the outputs" + (" (default: the scale `evaluate davis` "
                   "propagated the results at, else 1)" if default is None else ""))


def _seqs(args):
    return [s for s in args.sequences.split(",") if s] if args.sequences else None


def _checked_root(args, sequences=None) -> list[str]:
    """Year (inferred where not given) and sequences of --davis, checked before any model or frame is loaded;
    InputError (exit 2) for an unusable combination."""
    if args.eval_scale is not None and not args.eval_scale > 0:
        raise InputError(f"--eval-scale {args.eval_scale:g}: must be above 0")
    given = args.year
    args.year, names = resolve_year(args.davis, args.year, args.set, sequences or _seqs(args))
    if given is None:
        print(f"DAVIS-{args.year} root {args.davis} ({len(names)} sequence(s))")
    return names


def cmd_davis(args) -> int:
    import torch

    from . import features, davis_run

    if args.threads:
        torch.set_num_threads(args.threads)
    kind = "ckpt" if args.ckpt else ("rgb" if args.features == "rgb" else "random")
    try:
        device = resolve_device(args.device)
        check_out(args.out, folder=True)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    names = _checked_root(args)  # InputError: exit 2 before the model loads
    featurize = features.make(kind, ckpt=args.ckpt, seed=args.seed, device=device, padding=args.padding)
    _note_padding(args, featurize)
    prop = dict(n_context=args.context, radius=args.radius, topk=args.topk, tau=args.tau)
    paths = {k: str(Path(v).resolve()) for k in ("davis", "out", "ckpt") if (v := getattr(args, k))}
    config = {"command": "davis", **{k: v for k, v in vars(args).items() if k != "func"}, **paths,
              "features_kind": kind, "padding": featurize.padding, "propagation": prop}
    summary = davis_run.propagate_dataset(args.davis, args.year, args.out, featurize, args.set, _seqs(args), prop,
                      overlays=not args.no_overlays, config=config, max_frames=args.max_frames,
                      video_fps=args.video_fps if args.video else 0, scale=args.eval_scale)
    davis_run.print_summary(summary)
    return 0 if summary["complete"] and _scores(args, names) else 1


def _scores(args, names) -> bool:
    """`evaluate davis` ends with the J&F table, as `metrics` prints it; True unless a sequence failed it."""
    from . import metrics

    if args.no_metrics or args.max_frames:
        why = "--no-metrics" if args.no_metrics else "--max-frames (scoring needs every frame)"
        print(f"no J&F: {why}; `metrics --results {args.out}` scores the folder")
        return True
    print()
    res = metrics.score_and_write(args.davis, args.year, args.out, args.set, names, scale=args.eval_scale)
    print(f"wrote {', '.join(res['written'].values())}")
    return res["complete"]


def _note_padding(args, featurize) -> None:
    """A --padding the checkpoint overrules is said, not silently dropped."""
    if args.ckpt and args.padding and featurize.padding != args.padding:
        from spixwalk.train.weights import read, recorded_padding

        where = recorded_padding(read(args.ckpt))[1]
        print(f"note: {args.ckpt} records its padding ({where}): {featurize.padding}, not --padding {args.padding}",
              file=sys.stderr)


def cmd_metrics(args) -> int:
    from . import metrics

    if not Path(args.results).is_dir():
        raise InputError(f"{args.results}: results folder not found")
    if args.eval_scale is None:
        args.eval_scale = metrics.propagated_scale(args.results) or 1.0
    seqs = _seqs(args)
    if seqs is None and not args.all_sequences:
        seqs = metrics.propagated(args.results)
        if seqs:
            print(f"scoring the {len(seqs)} sequence(s) {args.results}/propagation.json lists "
                  f"(--all-sequences: every sequence of --set)", file=sys.stderr)
    _checked_root(args, seqs)
    res = metrics.score_and_write(args.davis, args.year, args.results, args.set, seqs, jobs=args.jobs,
                                  scale=args.eval_scale)
    print(f"wrote {', '.join(res['written'].values())}")
    return 0 if res["complete"] else 1


def cmd_synth(args) -> int:
    from . import synth

    synth.generate(args.out, n_sequences=args.sequences, n_frames=args.frames, height=args.height,
                   width=args.width, n_objects=args.objects, seed=args.seed)
    print(f"wrote {args.sequences} sequences x {args.frames} frames at {args.height}x{args.width} to {args.out}")
    return 0


def cmd_superpixels(args) -> int:
    from . import superpixel_benchmark

    args.eval_scale = None
    _checked_root(args)
    return superpixel_benchmark.main(args)


def cmd_report(args) -> int:
    from . import report

    if args.table_only:
        print(report.text(report.scores_table(report.method_rows(args.runs, args.eval_root))))
        return 0
    path = report.write_report(args.runs, args.eval_root, args.out)
    print(report.text(report.timing_table(args.runs)))
    print()
    rows = report.method_rows(args.runs, args.eval_root)
    print(f"DAVIS {report.scored_line(rows)}")
    print(report.text(report.scores_table(rows)))
    print(f"\nwrote {path}")
    return 0


def _davis_parser(sub) -> None:
    p = sub.add_parser("davis", help="CRW label propagation: first-frame mask -> indexed PNGs for every frame, "
                       "then their J&F")
    _common(p)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--ckpt", help="spixwalk or videowalk (CRW, e.g. its pretrained.pth) checkpoint, or a "
                     "torchvision / timm resnet18 state dict (res3 features)")
    src.add_argument("--init", choices=["random"], help="randomly initialised encoder (fixed --seed)")
    src.add_argument("--features", choices=["rgb"], help="8x8-pooled normalised RGB baseline")
    p.add_argument("--out", required=True, help="results folder: OUT/<seq>/<frame>.png")
    p.add_argument("--context", type=int, default=DEFAULTS["n_context"], help="preceding frames used as context")
    p.add_argument("--radius", type=float, default=DEFAULTS["radius"], help="spatial radius in feature cells")
    p.add_argument("--topk", type=int, default=DEFAULTS["topk"], help="context cells each cell takes its label "
                   "from (the most similar)")
    p.add_argument("--tau", type=float, default=DEFAULTS["tau"], help="softmax temperature")
    p.add_argument("--seed", type=int, default=0, help="seed of --init random")
    p.add_argument("--padding", default=None, choices=PADDINGS,
                   help="conv padding of --init random and of a --ckpt that does not record one (torchvision / timm "
                   "state dicts); a checkpoint that records it (spixwalk runs, videowalk's args.model_type) is "
                   "padded as it was trained (default: zeros; reflect: CRW's scratch model and the baseline of "
                   "runs trained with --preset crw/thesis)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    p.add_argument("--device", default="auto", help="auto (a GPU when there is one), cpu, cuda or cuda:N")
    p.add_argument("--no-overlays", action="store_true", help="skip the overlay PNGs")
    p.add_argument("--video", action="store_true", help="OUT/<seq>/side-by-side/video.mp4: ground truth | "
                   "prediction as filled masks, and its middle frame as still.png (the still `report` embeds)")
    p.add_argument("--video-fps", type=float, default=24.0, help="frame rate of --video (DAVIS is filmed at 24)")
    p.add_argument("--max-frames", type=int, default=0,
                   help="only the first N frames of each sequence (quick looks; metrics need every frame)")
    _scale_option(p, 1.0)
    p.add_argument("--no-metrics", action="store_true", help="propagate only, no J&F table (sets whose later "
                   "frames have no masks)")
    p.set_defaults(func=cmd_davis)


def _other_parsers(sub) -> None:
    p = sub.add_parser("metrics", help="J and F as the official DAVIS-2017 toolkit (semi-supervised)")
    _common(p)
    p.add_argument("--results", required=True, help="folder with <seq>/<frame>.png; CSVs + JSON written here")
    p.add_argument("--jobs", type=int, default=1, help="sequences scored in parallel (processes)")
    p.add_argument("--all-sequences", action="store_true", help="score every sequence of --set, not only those "
                   "the results folder's propagation.json lists")
    _scale_option(p, None)
    p.set_defaults(func=cmd_metrics)

    p = sub.add_parser("synth", help="synthetic DAVIS-2017-format set with exact masks")
    p.add_argument("--out", required=True, help="DAVIS root to write (JPEGImages/, Annotations/, ImageSets/2017)")
    p.add_argument("--sequences", type=int, default=3, help="how many sequences")
    p.add_argument("--frames", type=int, default=24, help="frames per sequence")
    p.add_argument("--height", type=int, default=240, help="frame height (pixels)")
    p.add_argument("--width", type=int, default=432, help="frame width (pixels)")
    p.add_argument("--objects", type=int, default=3, help="objects per sequence")
    p.add_argument("--seed", type=int, default=0, help="seeds the shapes, colours and motions")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("superpixels", help="superpixel maps scored against DAVIS masks (thesis tables 4.1-4.3)")
    _common(p)
    from .superpixel_benchmark import add_arguments
    add_arguments(p)
    p.set_defaults(func=cmd_superpixels)

    p = sub.add_parser("report", help="tables (training cost, DAVIS scores) and figures across runs")
    p.add_argument("--runs", nargs="*", default=[], help="training run directories")
    p.add_argument("--eval-root", default="work/eval",
                   help="evaluations: <root>/<run name>, baselines <root>/rgb and <root>/random")
    p.add_argument("--out", default="work/report", help="folder for report.md and its figures")
    p.add_argument("--table-only", action="store_true", help="print the DAVIS table and write nothing")
    p.set_defaults(func=cmd_report)


def main(argv=None) -> int:
    ap = stage_parser("python -m evaluate", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    _davis_parser(sub)
    from .keypoints_cli import add_parsers as _keypoint_parsers
    _keypoint_parsers(sub)
    _other_parsers(sub)
    from .walk_score import add_parser as _walk_parser
    _walk_parser(sub)
    args = show_defaults(ap).parse_args(argv)
    try:
        return args.func(args)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

