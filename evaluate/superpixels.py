"""Superpixel maps scored against DAVIS object masks (thesis tables 4.1-4.3).

The thesis does not say how a superpixel map was scored against an object, so three readings are
reported per configuration, each as J/F mean, frame recall (toolkit style) and per-video recall
(fraction of objects whose mean J exceeds 0.5):
  best   the single superpixel with the highest IoU, per object and frame;
  first  the label id that best matches the object on the first frame, kept literally for the video;
  union  the superpixels whose pixels lie mostly inside the object (achievable upper bound);
plus boundary recall (2-pixel tolerance), undersegmentation error (Neubert & Protzel), achievable
segmentation accuracy, superpixels per frame and ms per frame. Superpixels are computed here with
skimage / OpenCV directly (this stage does not import preprocess).
"""
import csv
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from .davis import frame_paths, load_frame, load_mask, mask_path, sequence_list
from .metrics import f_boundary, jaccard

SWEEP = ([("slic", {"n": n, "compactness": c}) for n in (5, 10, 20, 30, 50) for c in (30, 50)]
         + [("fh", {"scale": s, "sigma": g, "min_size": m}) for s, g, m in
            ((100, 0.5, 50), (300, 0.5, 100), (600, 0.5, 200), (1000, 0.8, 400), (600, 0.5, 400))]
         + [("lsc", {"region": r, "ratio": q}) for r in (100, 300) for q in (0.2, 0.5)])


def add_arguments(p):
    p.add_argument("--alg", choices=["slic", "fh", "lsc"], default="slic")
    p.add_argument("--n", type=int, default=30, help="SLIC segments")
    p.add_argument("--compactness", type=float, default=30)
    p.add_argument("--scale", type=float, default=600, help="FH")
    p.add_argument("--sigma", type=float, default=0.5, help="FH")
    p.add_argument("--min-size", type=int, default=400, help="FH")
    p.add_argument("--region", type=int, default=100, help="LSC region size")
    p.add_argument("--ratio", type=float, default=0.5, help="LSC ratio")
    p.add_argument("--sweep", action="store_true", help="the thesis grids of tables 4.1-4.3")
    p.add_argument("--every", type=int, default=1, help="score every k-th frame (first frame always)")
    p.add_argument("--out", default="superpixel-benchmark", help="folder for the markdown table, CSV and JSON")


def segment(img: np.ndarray, alg: str, params: dict) -> np.ndarray:
    from skimage.segmentation import felzenszwalb, slic

    if alg == "slic":
        return slic(img, n_segments=params["n"], compactness=params["compactness"], start_label=0)
    if alg == "fh":
        return felzenszwalb(img, scale=params["scale"], sigma=params["sigma"], min_size=params["min_size"])
    if alg == "lsc":
        lsc = cv2.ximgproc.createSuperpixelLSC(cv2.cvtColor(img, cv2.COLOR_RGB2LAB), params["region"],
                                               float(params["ratio"]))
        lsc.iterate(10)
        return lsc.getLabels()
    raise ValueError(alg)


def overlap(sp: np.ndarray, gt: np.ndarray, n_gt: int) -> np.ndarray:
    """Pixel counts (superpixels x gt labels)."""
    n_sp = int(sp.max()) + 1
    return np.bincount(sp.ravel().astype(np.int64) * n_gt + gt.ravel(), minlength=n_sp * n_gt).reshape(n_sp, n_gt)


def boundary_recall(sp: np.ndarray, gt: np.ndarray, tol=2) -> float:
    def edges(lab):
        e = np.zeros(lab.shape, bool)
        e[:, :-1] |= lab[:, :-1] != lab[:, 1:]
        e[:-1, :] |= lab[:-1, :] != lab[1:, :]
        return e
    g, s = edges(gt), edges(sp)
    if not g.any():
        return 1.0
    near = cv2.dilate(s.astype(np.uint8), np.ones((2 * tol + 1, 2 * tol + 1), np.uint8)).astype(bool)
    return float((g & near).sum() / g.sum())


def score_config(davis, year, seqs, alg, params, every=1) -> dict:
    per_video, frame_stats = [], {"br": [], "ue": [], "asa": [], "n_sp": [], "ms": []}
    for seq in seqs:
        frames = frame_paths(davis, seq)
        frames = [frames[0]] + frames[every::every] if every > 1 else frames
        scores = {}
        first_id = None
        for t, path in enumerate(frames):
            img = load_frame(path)
            gt = load_mask(mask_path(davis, seq, path.stem), year)
            gt = np.where(gt == 255, 0, gt).astype(np.int64)
            t0 = time.perf_counter()
            sp = segment(img, alg, params)
            frame_stats["ms"].append(1000 * (time.perf_counter() - t0))
            n_obj = int(gt.max()) if t == 0 else n_obj
            gt = np.minimum(gt, n_obj)
            ov = overlap(sp, gt, n_obj + 1)
            size = ov.sum(1)
            frame_stats["n_sp"].append(int((size > 0).sum()))
            frame_stats["br"].append(boundary_recall(sp, gt))
            frame_stats["ue"].append(float((np.minimum(ov, size[:, None] - ov).sum()) / gt.size))
            frame_stats["asa"].append(float(ov.max(1).sum() / gt.size))
            if t == 0:
                first_id = [int(np.argmax(ov[:, k] / (size + ov[:, k].sum() - ov[:, k]))) for k in range(1, n_obj + 1)]
            for k in range(1, n_obj + 1):
                obj = gt == k
                iou = ov[:, k] / np.maximum(size + ov[:, k].sum() - ov[:, k], 1)
                masks = {"best": sp == int(np.argmax(iou)), "first": sp == first_id[k - 1],
                         "union": np.isin(sp, np.flatnonzero(ov[:, k] > size / 2))}
                for name, m in masks.items():
                    scores.setdefault((k, name), []).append((jaccard(obj, m), f_boundary(obj, m)))
        for (k, name), v in scores.items():
            v = np.array(v)
            per_video.append({"sequence": seq, "object": k, "mode": name, "J": v[:, 0].mean(), "F": v[:, 1].mean(),
                              "J_frame_recall": (v[:, 0] > 0.5).mean(), "F_frame_recall": (v[:, 1] > 0.5).mean()})
    row = {"alg": alg, "params": params, "config": f"{alg} " + " ".join(f"{k}={v}" for k, v in params.items())}
    for name in ("best", "first", "union"):
        vids = [p for p in per_video if p["mode"] == name]
        row[name] = {"J": float(np.mean([p["J"] for p in vids])), "F": float(np.mean([p["F"] for p in vids])),
                     "J_frame_recall": float(np.mean([p["J_frame_recall"] for p in vids])),
                     "J_video_recall": float(np.mean([p["J"] > 0.5 for p in vids])),
                     "F_video_recall": float(np.mean([p["F"] > 0.5 for p in vids]))}
    row.update({k: float(np.mean(v)) for k, v in frame_stats.items()})
    row["videos"] = len({p["sequence"] + str(p["object"]) for p in per_video})
    return row


def markdown(rows) -> str:
    head = ("| config | sp/frame | ms/frame | BR | UE | ASA | J best | F best | J first | F first | "
            "R_vid first | J union | F union |\n|" + "---|" * 13 + "\n")
    body = "".join(
        f"| {r['config']} | {r['n_sp']:.1f} | {r['ms']:.0f} | {r['br']:.3f} | {r['ue']:.3f} | {r['asa']:.3f} | "
        f"{r['best']['J']:.3f} | {r['best']['F']:.3f} | {r['first']['J']:.3f} | {r['first']['F']:.3f} | "
        f"{r['first']['J_video_recall']:.3f} | {r['union']['J']:.3f} | {r['union']['F']:.3f} |\n" for r in rows)
    return head + body


def main(args) -> int:
    from tqdm import tqdm

    seqs = sequence_list(args.davis, args.year, args.set, args.sequences.split(",") if args.sequences else None)
    configs = SWEEP if args.sweep else [(args.alg, {
        "slic": {"n": args.n, "compactness": args.compactness},
        "fh": {"scale": args.scale, "sigma": args.sigma, "min_size": args.min_size},
        "lsc": {"region": args.region, "ratio": args.ratio}}[args.alg])]
    rows = [score_config(args.davis, args.year, seqs, alg, p, args.every)
            for alg, p in tqdm(configs, desc="superpixels", file=sys.stderr)]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = markdown(rows)
    (out / "superpixels.md").write_text(table)
    (out / "superpixels.json").write_text(json.dumps({"davis": str(args.davis), "year": args.year,
                                                       "sequences": seqs, "every": args.every, "rows": rows}, indent=1))
    with open(out / "superpixels.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        keys = ["n_sp", "ms", "br", "ue", "asa"]
        w.writerow(["config"] + keys + [f"{m}_{s}" for m in ("best", "first", "union")
                                        for s in ("J", "F", "J_frame_recall", "J_video_recall", "F_video_recall")])
        for r in rows:
            w.writerow([r["config"]] + [f"{r[k]:.4f}" for k in keys] + [
                f"{r[m][s]:.4f}" for m in ("best", "first", "union")
                for s in ("J", "F", "J_frame_recall", "J_video_recall", "F_video_recall")])
    print(table)
    print(f"wrote {out}/superpixels.md, .csv, .json")
    return 0
