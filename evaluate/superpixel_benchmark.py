"""Superpixel maps scored against DAVIS object masks (thesis tables 4.1-4.3).

The maps are exactly those the store holds and the trainer reads: each DAVIS frame is resized to the
store's square frame (area interpolation, as preprocess decodes) and labelled by
`preprocess.superpixels.label_video` with a `preprocess.spconfig` configuration; the label map is then
upsampled (nearest) to the mask size and scored there. Three readings of "a superpixel map against
an object" are kept side by side, each as J/F mean and per-video recall (objects whose mean J > 0.5):
  best   the single superpixel with the highest IoU, per object and frame;
  first  the label id that best matches the object on the first frame, kept literally for the video;
  union  the superpixels whose pixels lie mostly inside the object (achievable upper bound);
plus boundary recall, undersegmentation error and achievable segmentation accuracy
(evaluate.superpixel_metrics), superpixels per frame and segmentation ms per frame.

A sweep scores frames in parallel (joblib), shows frame-level progress and writes each configuration
to OUT/configs/<cfg>.json as it finishes, so a rerun of the same command continues where it stopped.
"""
import csv
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from spixwalk.files import write_atomic
from spixwalk.preprocess import spconfig

from .davis_io import InputError, load_frame, load_mask, mask_path, sequence_frames, sequence_list
from .metrics import boundary_radius, f_boundary, jaccard
from .superpixel_metrics import achievable_accuracy, boundary_recall, overlap, undersegmentation_error

# thesis tables 4.1-4.3. LSC: the thesis' region sizes 100/300 exceed or nearly fill a 256-px store
# frame (OpenCV crashes above the frame side), so the store default 47 and 100 are swept instead.
SWEEP = ([("slic", {**spconfig.DEFAULTS["slic"], "n_segments": n, "compactness": float(c)})
          for n in (5, 10, 20, 30, 50) for c in (30, 50)]
         + [("fh", {"scale": float(s), "sigma": g, "min_size": m}) for s, g, m in
            ((100, 0.5, 50), (300, 0.5, 100), (600, 0.5, 200), (1000, 0.8, 400), (600, 0.5, 400))]
         + [("lsc", {**spconfig.DEFAULTS["lsc"], "region_size": r, "ratio": q}) for r in (47, 100) for q in (0.2, 0.5)])
EVERY = 3  # default frame subsampling: the full 19-configuration sweep on 14 sequences well under 15 min
MODES = ("best", "first", "union")
SCORES = ("J", "F", "J_frame_recall", "J_video_recall", "F_video_recall")


def add_arguments(p):
    p.add_argument("--alg", choices=spconfig.ALGORITHMS, default="slic", help="one configuration: this algorithm")
    spconfig.add_options(p.add_argument_group("superpixel options (preprocess/spconfig.py, as preprocess and train)"))
    p.add_argument("--sweep", action="store_true", help="the 19 configurations of thesis tables 4.1-4.3")
    p.add_argument("--configs", help="comma list of configuration names instead (e.g. slic-n30-c30,fh-s600-g0.5-m400)")
    p.add_argument("--every", type=int, default=EVERY, help=f"score 1 frame in k (frame 0 included; default {EVERY})")
    p.add_argument("--size", type=int, default=spconfig.FRAME_SIZE, help="store frame side the maps are computed at")
    p.add_argument("--jobs", type=int, default=2, help="parallel frame workers (joblib)")
    p.add_argument("--out", default="superpixel-benchmark", help="folder for the markdown table, CSV and JSON")


def configurations(args) -> list[tuple[str, dict]]:
    """The configurations asked for, validated before any work (ValueError: exit 2)."""
    if args.every < 1 or args.size < 16 or args.jobs < 1:
        raise ValueError("--every and --jobs must be >= 1 and --size >= 16")
    if args.sweep:
        configs = SWEEP
    elif args.configs:
        configs = [spconfig.parse_name(c) for c in args.configs.split(",") if c]
    else:
        configs = [spconfig.from_args(args)[:2]]
    from spixwalk.preprocess.superpixels import check_params

    for alg, params in configs:
        check_params(alg, args.size, **params)
    return configs


def segment(img: np.ndarray, alg: str, params: dict, size: int) -> tuple[np.ndarray, int, float]:
    """The store's label map of a frame, upsampled to the frame: (labels, S, ms spent labelling)."""
    from spixwalk.preprocess.superpixels import label_video

    small = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    t0 = time.perf_counter()
    lab, nseg = label_video(small[None], alg, params, seed_key=f"{size}")
    ms = 1000 * (time.perf_counter() - t0)
    up = cv2.resize(lab[0], (img.shape[1], img.shape[0]), interpolation=cv2.INTER_NEAREST)
    return up, int(nseg[0]), ms


def score_frame(task: dict, year: int, alg: str, params: dict, size: int) -> dict:
    """Scores of one frame; on the first frame of a sequence also the 'first' superpixel of each object."""
    cv2.setNumThreads(1)  # one worker per core: OpenCV's own threads only contend
    img, gt = load_frame(task["jpg"]), load_mask(task["png"], year)  # both checked by plan()
    gt = np.where(gt == 255, 0, gt).astype(np.int64)
    sp, nseg, ms = segment(img, alg, params, size)
    n_obj = task["n_obj"]
    ov = overlap(sp, np.minimum(gt, n_obj))  # objects appearing later than frame 0 are not scored
    size_sp = ov.sum(1)
    out = {"seq": task["seq"], "t": task["t"], "n_sp": nseg, "ms": ms, "br": boundary_recall(sp, gt),
           "ue": undersegmentation_error(ov=ov), "asa": achievable_accuracy(ov=ov), "objects": []}
    first = task.get("first_ids")
    ious = [ov[:, k] / np.maximum(size_sp + ov[:, k].sum() - ov[:, k], 1) for k in range(1, n_obj + 1)]
    if first is None:
        first = out["first_ids"] = [int(np.argmax(iou)) for iou in ious]
    radius = boundary_radius(gt.shape)
    for k, iou in enumerate(ious, 1):
        obj = gt == k
        masks = {"best": sp == int(np.argmax(iou)), "first": sp == first[k - 1],
                 "union": np.isin(sp, np.flatnonzero(ov[:, k] > size_sp / 2))}
        out["objects"].append({m: j_and_f(obj, mk, radius) for m, mk in masks.items()})
    return out


def j_and_f(obj: np.ndarray, mask: np.ndarray, radius: int) -> tuple[float, float]:
    """J and F of a mask, computed on the box around both masks plus a 2-pixel margin: the same numbers
    as on the whole frame (nothing outside is set, boundaries need one pixel beyond) at a fraction of the cost."""
    rows, cols = np.flatnonzero((obj | mask).any(1)), np.flatnonzero((obj | mask).any(0))
    if len(rows):
        y0, y1 = max(rows[0] - 2, 0), rows[-1] + 3
        x0, x1 = max(cols[0] - 2, 0), cols[-1] + 3
        obj, mask = obj[y0:y1, x0:x1], mask[y0:y1, x0:x1]
    return float(jaccard(obj, mask)), f_boundary(obj, mask, bound_th=radius)


def summarise(alg: str, params: dict, frames: list[dict]) -> dict:
    """One table row: frame means of the map scores, object means of the three readings."""
    row = {"config": spconfig.config_name(alg, **params), "alg": alg, "params": params, "frames": len(frames)}
    for key in ("n_sp", "ms", "br", "ue", "asa"):
        row[key] = float(np.nanmean([f[key] for f in frames]))
    per_obj = {}
    for f in frames:
        for k, o in enumerate(f["objects"]):
            for m in MODES:
                per_obj.setdefault((f["seq"], k, m), []).append(o[m])
    for m in MODES:
        vids = [np.array(v) for (_, _, mode), v in per_obj.items() if mode == m]
        row[m] = {"J": float(np.mean([v[:, 0].mean() for v in vids])),
                  "F": float(np.mean([v[:, 1].mean() for v in vids])),
                  "J_frame_recall": float(np.mean([(v[:, 0] > 0.5).mean() for v in vids])),
                  "J_video_recall": float(np.mean([v[:, 0].mean() > 0.5 for v in vids])),
                  "F_video_recall": float(np.mean([v[:, 1].mean() > 0.5 for v in vids]))}
    row["objects"] = len({(s, k) for s, k, _ in per_obj})
    return row


def plan(args) -> tuple[list[dict], list[dict], dict]:
    """Frames to score per sequence (checked first: a bad sequence is named and skipped), failures, sampling."""
    seqs = sequence_list(args.davis, args.year, args.set, args.sequences.split(",") if args.sequences else None)
    tasks, failures, total = [], [], 0
    for seq in seqs:
        try:
            frames = sequence_frames(args.davis, seq, args.year, every_frame=True)
            first = load_mask(mask_path(args.davis, seq, frames[0].stem), args.year)
            n_obj = int(np.where(first == 255, 0, first).max())
            if n_obj == 0:
                raise InputError(f"{mask_path(args.davis, seq, frames[0].stem)}: first mask has no object")
            for p in frames[::args.every]:  # read every sampled input now: workers never meet bad files
                shape, mask = load_frame(p).shape[:2], load_mask(mask_path(args.davis, seq, p.stem), args.year)
                if mask.shape != shape:
                    raise InputError(f"{mask_path(args.davis, seq, p.stem)}: mask size {mask.shape} differs "
                                     f"from frame size {shape}")
        except InputError as e:
            print(f"error: {e}", file=sys.stderr)
            failures.append({"sequence": seq, "reason": str(e)})
            continue
        total += len(frames)
        tasks += [{"seq": seq, "t": t, "jpg": str(p), "png": str(mask_path(args.davis, seq, p.stem)), "n_obj": n_obj}
                  for t, p in enumerate(frames) if t % args.every == 0]
    sampling = {"davis": str(Path(args.davis).resolve()), "year": args.year, "size": args.size, "every": args.every,
                "sequences": sorted({t["seq"] for t in tasks}), "frames": len(tasks), "frames_total": total}
    return tasks, failures, sampling


def run_config(tasks, alg, params, args, bar) -> list[dict]:
    """Every frame of one configuration, first frames first (the 'first' reading needs their ids)."""
    from joblib import Parallel, delayed

    par = Parallel(n_jobs=args.jobs, return_as="generator_unordered")
    done = []
    for phase in ([t for t in tasks if t["t"] == 0], [t for t in tasks if t["t"] > 0]):
        if done:
            first = {r["seq"]: r["first_ids"] for r in done}
            phase = [{**t, "first_ids": first[t["seq"]]} for t in phase]
        for r in par(delayed(score_frame)(t, args.year, alg, params, args.size) for t in phase):
            done.append(r)
            bar.update(1)
    return done


def write_tables(out: Path, rows: list[dict], sampling: dict, n_configs: int, failures: list[dict]) -> None:
    note = sampling_note(sampling, len(rows), n_configs)
    (out / "superpixels.md").write_text(note + "\n\n" + markdown(rows))
    (out / "superpixels.json").write_text(json.dumps({"sampling": sampling, "note": note, "rows": rows,
                                                      "complete": len(rows) == n_configs and not failures,
                                                      "failures": failures}, indent=1))
    with open(out / "superpixels.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        keys = ["n_sp", "ms", "br", "ue", "asa"]
        w.writerow(["config", "frames"] + keys + [f"{m}_{s}" for m in MODES for s in SCORES])
        for r in rows:
            w.writerow([r["config"], r["frames"]] + [f"{r[k]:.4f}" for k in keys]
                       + [f"{r[m][s]:.4f}" for m in MODES for s in SCORES])


def sampling_note(s: dict, done: int, n_configs: int) -> str:
    status = "" if done == n_configs else f" **Partial: {done} of {n_configs} configurations so far.**"
    return (f"{s['frames']} of {s['frames_total']} frames (1 in {s['every']}, frame 0 of each sequence included) "
            f"of {len(s['sequences'])} sequences of {s['davis']} (DAVIS-{s['year']}); label maps computed on "
            f"{s['size']}x{s['size']} frames exactly as the store holds them, scored at mask resolution; "
            f"ms/frame = labelling only, contended CPU.{status}")


def markdown(rows) -> str:
    head = ("| config | sp/frame | ms/frame | BR | UE | ASA | J best | F best | J first | F first | "
            "R_vid first | J union | F union |\n|" + "---|" * 13 + "\n")
    return head + "".join(
        f"| {r['config']} | {r['n_sp']:.1f} | {r['ms']:.0f} | {r['br']:.3f} | {r['ue']:.3f} | {r['asa']:.3f} | "
        f"{r['best']['J']:.3f} | {r['best']['F']:.3f} | {r['first']['J']:.3f} | {r['first']['F']:.3f} | "
        f"{r['first']['J_video_recall']:.3f} | {r['union']['J']:.3f} | {r['union']['F']:.3f} |\n" for r in rows)


def cached(path: Path, sampling: dict) -> dict | None:
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return saved["row"] if saved.get("sampling") == sampling else None


def in_order(configs, rows: dict) -> list[dict]:
    names = [spconfig.config_name(a, **p) for a, p in configs]
    return [rows[n] for n in names if n in rows]


def main(args) -> int:
    from spixwalk.progress import Progress

    try:
        configs = configurations(args)
    except ValueError as e:
        raise InputError(str(e)) from None
    tasks, failures, sampling = plan(args)
    if not tasks:
        raise InputError(f"{args.davis}: no usable sequence to score")
    out = Path(args.out)
    (out / "configs").mkdir(parents=True, exist_ok=True)
    rows = {}
    for alg, params in configs:
        cfg = spconfig.config_name(alg, **params)
        if (row := cached(out / "configs" / f"{cfg}.json", sampling)) is not None:
            rows[cfg] = row
    todo = [(a, p) for a, p in configs if spconfig.config_name(a, **p) not in rows]
    print(f"{len(configs) - len(todo)} of {len(configs)} configurations already in {out}/configs; "
          f"{len(todo)} x {len(tasks)} frames to score with {args.jobs} worker(s)", file=sys.stderr)
    with Progress(len(todo) * len(tasks), "superpixels", unit="frame") as bar:
        for alg, params in todo:
            cfg = spconfig.config_name(alg, **params)
            bar.note(config=cfg)
            rows[cfg] = summarise(alg, params, run_config(tasks, alg, params, args, bar))
            # a killed sweep never leaves half a result
            write_atomic(out / "configs" / f"{cfg}.json", json.dumps({"sampling": sampling, "row": rows[cfg]}, indent=1))
            write_tables(out, in_order(configs, rows), sampling, len(configs), failures)
    ordered = in_order(configs, rows)
    write_tables(out, ordered, sampling, len(configs), failures)
    print(sampling_note(sampling, len(ordered), len(configs)) + "\n\n" + markdown(ordered))
    print(f"wrote {out}/superpixels.md, .csv, .json")
    return 1 if failures else 0
