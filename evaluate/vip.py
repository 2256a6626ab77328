"""VIP human-part propagation through the mask path, scored as CRW's eval/eval_vip.py.

Layout: ROOT/Images/<video>/<frame>.jpg and ROOT/Category_ids/<video>/<frame>.png (class ids 0..19, 0 the
background; other values, 255 included, are ignored when scoring). The first frame's part map is propagated as
the masks are (davis_run's one-hot labels, propagate.py, bilinear upsampling + argmax); predictions are indexed
PNGs OUT/<video>/<frame>.png at the size of the frames read.

Scoring, as eval_vip.py: one 20 x 20 confusion histogram over every scored frame of every video (ground-truth
pixels with a value outside 0..19 skipped; a prediction of another size resized to the ground truth's,
nearest-neighbour); per-class IoU = diagonal / (ground-truth + predicted - diagonal), mIoU their mean over the
classes with a non-empty union (numpy's nanmean). Scored frames: those with a Category_ids PNG, except the
first (the input; CRW also writes it back as a prediction).
"""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from .davis_io import InputError, load_frame, read_single_channel, save_indexed
from .davis_run import decoded, featurized, first_frame_labels, hard_labels
from .propagate import Propagator

N_CLASSES = 20
CLASSES = ("background", "hat", "hair", "sun-glasses", "upper-clothes", "dress", "coat", "socks", "pants", "gloves",
           "scarf", "skirt", "torso-skin", "face", "right-arm", "left-arm", "right-leg", "left-leg", "right-shoe",
           "left-shoe")


def video_list(root, want=None) -> list[str]:
    images = Path(root) / "Images"
    if not images.is_dir():
        raise InputError(f"{root}: VIP root needs Images/<video>/ (and Category_ids/<video>/)")
    have = sorted(p.name for p in images.iterdir() if p.is_dir())
    names = want or have
    unknown = [v for v in names if v not in have]
    if unknown or not names:
        raise InputError(f"{images}: no video folder(s) {', '.join(unknown) or '(none)'}")
    for v in names:
        frames = sorted((images / v).glob("*.jpg"))
        if not frames:
            raise InputError(f"{images / v}: no .jpg frames")
        if not gt_path(root, v, frames[0].stem).is_file():
            raise InputError(f"{gt_path(root, v, frames[0].stem)}: first frame's part map missing")
    return names


def gt_path(root, video, stem) -> Path:
    return Path(root) / "Category_ids" / video / f"{stem}.png"


def load_parts(path) -> np.ndarray:
    return read_single_channel(path, "part map", "single-channel class ids").astype(np.int64)


def fast_hist(gt: np.ndarray, pred: np.ndarray, n: int = N_CLASSES) -> np.ndarray:
    """(n, n) counts, rows ground truth, columns prediction; ground truth outside 0..n-1 skipped."""
    if pred.shape != gt.shape:
        pred = cv2.resize(pred.astype(np.uint8), (gt.shape[1], gt.shape[0]), interpolation=cv2.INTER_NEAREST)
    k = (gt >= 0) & (gt < n)
    return np.bincount(n * gt[k] + pred[k].astype(np.int64), minlength=n * n).reshape(n, n)


def class_iou(hist: np.ndarray) -> np.ndarray:
    diag = np.diag(hist).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return diag / (hist.sum(1) + hist.sum(0) - diag)


def miou(hist: np.ndarray) -> float:
    iou = class_iou(hist)
    return float(np.nanmean(iou)) if not np.isnan(iou).all() else float("nan")


def propagate_video(root, video, featurize, out: Path, eval_scale=1.0, prop_kwargs=None) -> np.ndarray:
    """Predict every frame into out/<video>/; returns the video's confusion histogram."""
    from .keypoints import resized, scaled_size

    frames = sorted((Path(root) / "Images" / video).glob("*.jpg"))
    first = load_parts(gt_path(root, video, frames[0].stem))
    bad = np.setdiff1d(np.unique(first), [*range(N_CLASSES), 255])
    if len(bad):
        raise InputError(f"{gt_path(root, video, frames[0].stem)}: class ids {bad[:5].tolist()} outside 0..19")
    img = load_frame(frames[0])
    size = img.shape[:2]
    small = scaled_size(size, eval_scale)
    feat = featurize(next(resized([(frames[0], img)], small))[1])
    try:
        ids, labels0 = first_frame_labels(first.astype(np.uint8), feat.shape[1:])
    except ValueError as e:
        raise InputError(f"{gt_path(root, video, frames[0].stem)}: {e}") from None
    prop = Propagator(**(prop_kwargs or {}))
    prop.start(feat, labels0)
    folder = out / video
    folder.mkdir(parents=True, exist_ok=True)
    hist = np.zeros((N_CLASSES, N_CLASSES), dtype=np.int64)
    stream = resized(decoded(frames[1:]), small)
    for path, _, feat in featurized(stream, featurize, small):
        pred = hard_labels(prop.step(feat).cpu(), ids, size)
        save_indexed(pred, folder / f"{path.stem}.png")
        gt = gt_path(root, video, path.stem)
        if gt.is_file():
            hist += fast_hist(load_parts(gt), pred)
    return hist


def run(root, videos, featurize, out, **kw) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    total = np.zeros((N_CLASSES, N_CLASSES), dtype=np.int64)
    rows, failures = [], []
    for v in videos:
        try:
            h = propagate_video(root, v, featurize, out, **kw)
        except InputError as e:
            print(f"error: {e}", file=sys.stderr)
            failures.append({"sequence": v, "reason": str(e)})
            continue
        total += h
        rows.append({"sequence": v, "mIoU": miou(h)})
    rows.append({"sequence": "overall", "mIoU": miou(total)})
    iou = class_iou(total)
    with open(out / "miou.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["sequence", "mIoU"])
        w.writerows([r["sequence"], f"{r['mIoU']:.6f}"] for r in rows)
    with open(out / "class-iou.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["class_id", "class", "IoU"])
        w.writerows([i, CLASSES[i], f"{iou[i]:.6f}"] for i in range(N_CLASSES))
    summary = {"sequences": rows[:-1], "mIoU": rows[-1]["mIoU"], "class_iou": dict(zip(CLASSES, map(float, iou))),
               "failures": failures, "complete": not failures}
    (out / "vip.json").write_text(json.dumps(summary, indent=1))
    return summary


def print_summary(summary: dict) -> None:
    for r in summary["sequences"]:
        print(f"{r['sequence']:<32}mIoU {r['mIoU']:.3f}")
    for f in summary["failures"]:
        print(f"FAILED {f['sequence']}: {f['reason']}")
    print(f"overall mIoU {summary['mIoU']:.3f}")
