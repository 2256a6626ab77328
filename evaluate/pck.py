"""PCK (percentage of correct keypoints) as each benchmark defines it, as a fraction in [0, 1].

BADJA (Biggs et al. 2018; TAP-Vid): a joint is correct when it lies within alpha x sqrt(A) pixels of the
annotation, A the area in pixels of the animal's mask in that frame at the same scale (here DAVIS-2016's binary
480p mask: for horsejump-high horse and rider are one object). Scored: every annotated frame after the query
frame, every joint visible there that was visible (so propagated) at the query frame; PCK = correct / scored.
The overall figure pools the joints of all sequences.

JHMDB (CRW's eval/eval_pck.py): per frame after the first, the scale is 0.6 x the diagonal of the box around
the visible ground-truth joints; a joint counts where its prediction exists (CRW: its channel was not empty) and
is correct when distance / scale <= alpha. PCK is computed per joint over all frames of all videos, then averaged
over the joints (a joint never scored is left out of the average, where CRW would divide by zero).
"""
from __future__ import annotations

import csv
import math

import numpy as np
from PIL import Image

from .davis_io import InputError

BADJA_ALPHA = 0.2
JHMDB_ALPHAS = (0.1, 0.2)


def mask_area(path) -> int:
    """Object pixels of a DAVIS mask: DAVIS-2016 (mode L) any non-zero value, DAVIS-2017 (mode P) not 0 or void."""
    try:
        with Image.open(path) as im:
            mode, arr = im.mode, np.array(im)
    except FileNotFoundError:
        raise InputError(f"{path}: mask missing (BADJA's PCK needs the animal's area)") from None
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: unreadable mask ({e})") from None
    fg = (arr > 0) & (arr != 255) if mode == "P" else arr > 0
    return int(np.count_nonzero(fg))


def badja_counts(track, preds: dict, queried: np.ndarray, alpha: float = BADJA_ALPHA) -> dict:
    """correct / scored joints of one sequence; preds[t] (J, 2) [row, col] at the annotation's scale, NaN or
    negative where no prediction exists (wrong)."""
    correct = scored = unqueried = frames = 0
    for t in sorted(track.points):
        if t <= track.query:
            continue
        vis = track.visible[t]
        unqueried += int(np.count_nonzero(vis & ~queried))
        use = vis & queried
        if not use.any():
            continue
        frames += 1
        thr = alpha * math.sqrt(mask_area(track.masks[t]))
        d = np.linalg.norm(preds[t][use] - track.points[t][use], axis=1)
        ok = (d <= thr) & (preds[t][use] >= 0).all(axis=1)
        correct += int(np.count_nonzero(ok))
        scored += int(use.sum())
    return {"sequence": track.name, "scored_frames": frames, "scored_joints": scored, "correct": correct,
            "unqueried_joints": unqueried, f"pck@{alpha:g}": correct / scored if scored else float("nan")}


def badja_table(rows: list[dict], alpha: float = BADJA_ALPHA) -> list[dict]:
    """Per-sequence rows plus the pooled `overall` row."""
    tot = {k: sum(r[k] for r in rows) for k in ("scored_frames", "scored_joints", "correct", "unqueried_joints")}
    overall = {"sequence": "overall", **tot,
               f"pck@{alpha:g}": tot["correct"] / tot["scored_joints"] if tot["scored_joints"] else float("nan")}
    return [*rows, overall]


def jhmdb_distances(track, preds: dict, exists: dict) -> list[list[float]]:
    """Per joint, the normalised distances of every frame after the first where the prediction exists."""
    dist = [[] for _ in track.slots]
    for t in sorted(preds):
        if t == 0:
            continue
        vis = exists[t]
        if not vis.any():
            continue
        gt = track.points[t][vis]
        scale = 0.6 * np.linalg.norm(gt.max(0) - gt.min(0))
        d = np.linalg.norm(preds[t] - track.points[t], axis=1) / scale
        for j in np.flatnonzero(vis):
            dist[j].append(float(d[j]))
    return dist


def jhmdb_pck(dist: list[list[float]], alpha: float) -> float:
    per_joint = [np.mean(np.asarray(d) <= alpha) for d in dist if d]
    return float(np.mean(per_joint)) if per_joint else float("nan")


def jhmdb_table(named: list[tuple[str, list[list[float]]]], alphas=JHMDB_ALPHAS) -> list[dict]:
    """Per-video rows and the `overall` row (distances of all videos pooled per joint, as eval_pck.py)."""
    def row(name, dist):
        return {"sequence": name, "scored_joints": sum(map(len, dist)),
                **{f"pck@{a:g}": jhmdb_pck(dist, a) for a in alphas}}
    n = max((len(d) for _, d in named), default=0)
    pooled = [[x for _, d in named if j < len(d) for x in d[j]] for j in range(n)]
    return [*(row(name, d) for name, d in named), row("overall", pooled)]


def write_table(path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[-1]))
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in r.items()})
