"""Keypoint propagation: each joint visible at the query frame becomes one channel of the same label propagation
the masks use (evaluate/propagate.py: affinity, context, radius, top-k, temperature unchanged), so K joints
cost one propagation of K channels.

A joint's label at the query frame is a Gaussian of `sigma` feature cells centred on its sub-cell position
(sigma 0: one-hot at its cell, as CRW does for JHMDB with sigma 0.5). Its position in a later frame is read
back from its channel: `soft` (default) takes the centroid of the channel over the (2 WINDOW + 1)^2 cells
around its peak, `argmax` the peak cell's centre (8 px quantised). The feature grid is stride 8 in the frames
propagated (the frames read, resized by --eval-scale): cell (i, j) covers pixels [8i, 8i+8) x [8j, 8j+8).
"""
from __future__ import annotations

import resource
import shutil
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from spixwalk.files import replace_dir
from spixwalk.progress import Progress

from . import pck
from .davis_io import InputError
from .davis_run import decoded, featurized
from .keypoint_io import Track, write_csv
from .propagate import Propagator

STRIDE = 8
SIGMA = 1.0
WINDOW = 3
READOUTS = ("soft", "argmax")


def scaled_size(size, eval_scale: float) -> tuple[int, int]:
    return max(1, round(size[0] * eval_scale)), max(1, round(size[1] * eval_scale))


def to_grid(points: np.ndarray, scale) -> np.ndarray:
    """[row, col] in pixels of the frames read -> continuous feature-grid coordinates (cell centres at integers);
    scale: (sy, sx) from the frames read to the frames propagated."""
    return points * np.asarray(scale) / STRIDE - 0.5


def from_grid(grid: np.ndarray, scale) -> np.ndarray:
    return (grid + 0.5) * STRIDE / np.asarray(scale)


def joint_labels(grid: np.ndarray, hw, sigma: float = SIGMA) -> torch.Tensor:
    """(K, h, w) labels: per joint a Gaussian of peak 1 at its grid position, or one-hot at its cell (sigma 0)."""
    ys = torch.arange(hw[0], dtype=torch.float32)[None, :, None]
    xs = torch.arange(hw[1], dtype=torch.float32)[None, None, :]
    g = torch.as_tensor(grid, dtype=torch.float32)
    if sigma <= 0:
        r, c = g[:, 0].round().clamp(0, hw[0] - 1), g[:, 1].round().clamp(0, hw[1] - 1)
        return ((ys == r[:, None, None]) & (xs == c[:, None, None])).float()
    d2 = (ys - g[:, 0, None, None]) ** 2 + (xs - g[:, 1, None, None]) ** 2
    return torch.exp(-d2 / (2 * sigma ** 2))


def read_points(soft: torch.Tensor, readout: str = "soft", window: int = WINDOW) -> np.ndarray:
    """(K, h, w) propagated channels -> (K, 2) grid positions; NaN where a channel is empty."""
    k, h, w = soft.shape
    peak, flat = soft.reshape(k, -1).max(dim=1)
    r, c = (flat // w).numpy(), (flat % w).numpy()
    out = np.stack([r, c], 1).astype(np.float64)
    if readout == "soft":
        for j in range(k):
            r0, r1, c0, c1 = max(r[j] - window, 0), r[j] + window + 1, max(c[j] - window, 0), c[j] + window + 1
            patch = soft[j, r0:r1, c0:c1].clamp(min=0).double().numpy()
            ys, xs = np.mgrid[r0:r0 + patch.shape[0], c0:c0 + patch.shape[1]]
            out[j] = (patch * ys).sum() / patch.sum(), (patch * xs).sum() / patch.sum()
    out[(peak <= 0).numpy()] = np.nan
    return out


def resized(frames, size):
    for path, img in frames:
        if img.shape[:2] != size:
            img = cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_AREA)
        yield path, img


def propagate_track(track: Track, featurize, eval_scale=1.0, prop_kwargs=None, sigma=SIGMA, readout="soft",
                    tick=lambda: None, on_frame=None) -> tuple[dict, np.ndarray, float]:
    """Positions of the joints visible at the query frame in it and every later frame: ({t: (J, 2)} in pixels
    of the frames read, NaN for joints not propagated or emptied; the queried mask; propagation seconds).
    on_frame(t, frame, points) sees every frame read (overlays)."""
    size = scaled_size(track.size, eval_scale)
    scale = (size[0] / track.size[0], size[1] / track.size[1])
    q = track.points[track.query]  # a joint outside the query frame gets no channel (CRW draws none for JHMDB)
    queried = track.visible[track.query] & (q >= 0).all(1) & (q[:, 0] < track.size[0]) & (q[:, 1] < track.size[1])
    if not queried.any():
        raise InputError(f"{track.name}: no joint is visible at the query frame {track.frames[track.query].name}")
    stream = decoded(track.frames[track.query:])
    path, img = next(stream)
    if img.shape[:2] != track.size:
        raise InputError(f"{path}: frame size {img.shape[:2]} differs from the first frame {track.size}")
    feat = featurize(next(resized([(path, img)], size))[1])
    prop = Propagator(**(prop_kwargs or {}))
    prop.start(feat, joint_labels(to_grid(track.points[track.query][queried], scale), feat.shape[1:], sigma))
    first = np.full((len(queried), 2), np.nan)
    first[queried] = track.points[track.query][queried]
    preds, t_prop = {track.query: first}, 0.0
    if on_frame:
        on_frame(track.query, img, first)
    tick()
    originals = {}

    def keep(frames):  # the frames read, for overlays, while their resized copies go to the encoder
        for p, im in frames:
            originals[p] = im
            yield p, im
    for t, (path, _, feat) in enumerate(featurized(resized(keep(stream), size), featurize, size), track.query + 1):
        t1 = time.perf_counter()
        grid = read_points(prop.step(feat).cpu(), readout)
        t_prop += time.perf_counter() - t1
        pts = np.full_like(first, np.nan)
        pts[queried] = from_grid(grid, scale)
        preds[t] = pts
        im = originals.pop(path)
        if im.shape[:2] != track.size:
            raise InputError(f"{path}: frame size {im.shape[:2]} differs from the first frame {track.size}")
        if on_frame:
            on_frame(t, im, pts)
        tick()
    return preds, queried, t_prop


def score(dataset: str, track: Track, preds: dict, queried: np.ndarray):
    """BADJA: a per-sequence counts row; JHMDB: per-joint normalised distances (pooled over videos later)."""
    if dataset == "badja":
        return pck.badja_counts(track, {t: np.nan_to_num(p, nan=-1.0) for t, p in preds.items()}, queried)
    exists = {t: queried & ~np.isnan(p).any(1) for t, p in preds.items()}
    return pck.jhmdb_distances(track, {t: np.nan_to_num(p, nan=-1.0) for t, p in preds.items()}, exists)


def run_sequence(dataset, track, featurize, out: Path, video_fps=0.0, tick=lambda: None, **kw) -> tuple[dict, object]:
    """OUT/<seq>/keypoints.csv (and with video_fps the side-by-side mp4 + still), written under a temporary name;
    returns (stats, score)."""
    from .keypoint_video import KeypointVideo

    tmp = out / f".{track.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    t0 = time.perf_counter()
    try:
        video = KeypointVideo(track, tmp, video_fps) if video_fps else None
        try:
            preds, queried, t_prop = propagate_track(track, featurize, tick=tick, on_frame=video and video.add, **kw)
            result = score(dataset, track, preds, queried)
        except BaseException:
            if video:
                video.abort()
            raise
        if video:
            video.close()
        write_csv(tmp / "keypoints.csv", track, preds, queried)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    replace_dir(tmp, out / track.name)
    n = len(preds)
    secs = time.perf_counter() - t0
    return {"sequence": track.name, "frames": n, "joints": int(queried.sum()), "seconds": secs,
            "seconds_per_frame": secs / max(n - 1, 1), "propagation_seconds_per_frame": t_prop / max(n - 1, 1),
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}, result


def run(dataset: str, tracks: list[Track], featurize, out, progress=True, video_fps=0.0, **kw) -> dict:
    """Every track into OUT/<seq>/; OUT/pck.csv; a sequence whose input fails is recorded and skipped."""
    import json

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stats, failures, scores = [], [], []
    with Progress(sum(len(t.frames) - t.query for t in tracks), "keypoints", unit="frame", enabled=progress) as bar:
        for track in tracks:
            bar.note(sequence=track.name)
            start = bar.n
            try:
                s, result = run_sequence(dataset, track, featurize, out, video_fps, tick=bar.update, **kw)
                stats.append(s)
                scores.append(result if dataset == "badja" else (track.name, result))
            except InputError as e:
                print(f"error: {e}", file=sys.stderr)
                failures.append({"sequence": track.name, "reason": str(e)})
            bar.set(start + len(track.frames) - track.query)
    table = pck.badja_table(scores) if dataset == "badja" else pck.jhmdb_table(scores)
    pck.write_table(out / "pck.csv", table)
    summary = {"dataset": dataset, "sequences": stats, "failures": failures, "complete": not failures,
               "pck": table[-1]}
    (out / "keypoints.json").write_text(json.dumps(summary, indent=1))
    return summary


def print_summary(summary: dict) -> None:
    keys = [k for k in summary["pck"] if k.startswith("pck@")]
    print(f"{'sequence':<24}{'frames':>7}{'joints':>7}{'s/frame':>9}{'peak GB':>9}")
    for s in summary["sequences"]:
        print(f"{s['sequence']:<24}{s['frames']:>7}{s['joints']:>7}{s['seconds_per_frame']:>9.3f}"
              f"{s['peak_rss_gb']:>9.2f}")
    for f in summary["failures"]:
        print(f"FAILED {f['sequence']}: {f['reason']}")
    print("overall " + "  ".join(f"{k.upper()} {summary['pck'][k]:.3f}" for k in keys))
