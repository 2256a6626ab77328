"""Keypoint annotations in and predictions out: BADJA's JSON, JHMDB's file list + joint_positions.mat, and the
per-sequence keypoints.csv.

Coordinates are continuous [row, col] in pixels of the frames read (480p for DAVIS), the pixel (i, j) covering
[i, i+1) x [j, j+1): rescaling multiplies, as BADJA's README prescribes (full resolution x 480/1080). Every
problem with the input raises InputError with one line naming the file and the reason.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from .davis_io import InputError, check_frame_ids, frame_paths

FULL_HEIGHT = 1080  # DAVIS Full-Resolution frames of BADJA's sequences are 1920 x 1080


@dataclass
class Track:
    """One sequence's annotated joints. frames: every frame read, in order; query: index of the frame whose
    visible joints start the propagation; points[t] (J, 2) [row, col] and visible[t] (J,) for each annotated
    frame index t; slots: the annotation's joint slot number of each of the J columns."""
    name: str
    frames: list[Path]
    query: int
    points: dict[int, np.ndarray]
    visible: dict[int, np.ndarray]
    slots: list[int]
    size: tuple[int, int]  # (H, W) of the frames read
    masks: dict[int, Path] = field(default_factory=dict)  # BADJA: the frame's segmentation (PCK's area)


def frame_size(path) -> tuple[int, int]:
    try:
        with Image.open(path) as im:
            return im.height, im.width
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: unreadable frame ({e})") from None


def _badja_entries(path: Path) -> list[dict]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: unreadable BADJA annotation ({e})") from None
    if not isinstance(data, list) or not data:
        raise InputError(f"{path}: BADJA annotation must be a non-empty list of frame entries")
    for i, e in enumerate(data):
        missing = [k for k in ("image_path", "joints", "visibility") if not isinstance(e, dict) or k not in e]
        if missing:
            raise InputError(f"{path}: entry {i} has no {', '.join(repr(k) for k in missing)}")
        joints, vis = np.asarray(e["joints"], dtype=float), np.asarray(e["visibility"], dtype=bool)
        if joints.ndim != 2 or joints.shape[1] != 2 or vis.shape != (len(joints),):
            raise InputError(f"{path}: entry {i}: 'joints' must be [row, col] pairs, one 'visibility' flag each "
                             f"(got {joints.shape} joints, {vis.shape} flags)")
    return data


def read_badja(path, davis_root, full_height: float = FULL_HEIGHT) -> Track:
    """BADJA's joint annotations of one DAVIS sequence (the JSON's stem names it); the frames are DAVIS's 480p
    JPEGs. The first annotated frame is the query; only joints visible there are propagated."""
    path = Path(path)
    entries = _badja_entries(path)
    seq = path.stem
    frames = frame_paths(davis_root, seq)
    check_frame_ids(seq, [p.stem for p in frames], frames[0].parent)
    index = {p.stem: t for t, p in enumerate(frames)}
    size = frame_size(frames[0])
    scale = size[0] / full_height
    points, visible, masks = {}, {}, {}
    for i, e in enumerate(entries):
        stem = Path(e["image_path"]).stem
        if stem not in index:
            raise InputError(f"{path}: entry {i}: annotated frame {stem}.jpg missing from {frames[0].parent}")
        pts, vis = np.asarray(e["joints"], dtype=float) * scale, np.asarray(e["visibility"], dtype=bool)
        out = vis & ((pts[:, 0] < 0) | (pts[:, 0] >= size[0]) | (pts[:, 1] < 0) | (pts[:, 1] >= size[1]))
        if out.any():
            j = int(np.flatnonzero(out)[0])
            raise InputError(f"{path}: entry {i} ({stem}): visible joint {j} at {e['joints'][j]} lies outside the "
                             f"frame ({full_height:g} px high at full resolution, {size[0]}x{size[1]} read)")
        t = index[stem]
        points[t], visible[t] = pts, vis
        masks[t] = Path(davis_root) / "Annotations" / "480p" / seq / f"{stem}.png"
    n_joints = {len(p) for p in points.values()}
    if len(n_joints) != 1:
        raise InputError(f"{path}: entries disagree on the number of joints ({sorted(n_joints)})")
    return Track(seq, frames, min(points), points, visible, list(range(n_joints.pop())), size, masks)


def jhmdb_list(path, root=None) -> list[tuple[Path, Path]]:
    """CRW's JHMDB file list: one video per line, its frames folder then its joint_positions.mat (relative
    paths are taken from root, else from the list's folder)."""
    path = Path(path)
    base = Path(root) if root else path.parent
    try:
        lines = [ln.split() for ln in path.read_text().splitlines() if ln.strip()]
    except OSError as e:
        raise InputError(f"{path}: unreadable JHMDB file list ({e})") from None
    bad = [i + 1 for i, ln in enumerate(lines) if len(ln) < 2]
    if bad or not lines:
        raise InputError(f"{path}: each line must name a frames folder and a joint_positions.mat"
                         + (f" (line {bad[0]})" if bad else " (empty list)"))
    return [(base / a, base / b) for a, b, *_ in lines]


def read_jhmdb(frames_dir, mat_path) -> Track:
    """One JHMDB video: frames NNNNN.png, pos_img (2, joints, frames) 1-based x, y (as CRW reads it, minus 1).
    Every frame is annotated and every joint counts as visible: CRW drops a joint only where its propagated
    channel is empty (a joint outside the query frame gets none)."""
    from scipy.io import loadmat

    frames_dir, mat_path = Path(frames_dir), Path(mat_path)
    if not frames_dir.is_dir():
        raise InputError(f"{frames_dir}: JHMDB frames folder not found")
    frames = sorted((p for p in frames_dir.iterdir() if p.suffix in (".png", ".jpg")),
                    key=lambda p: int(p.stem) if p.stem.isdigit() else p.stem)
    if not frames:
        raise InputError(f"{frames_dir}: no .png frames")
    check_frame_ids(frames_dir.name, [f"{int(p.stem) - 1:05d}" for p in frames if p.stem.isdigit()], frames_dir)
    try:
        pos = np.asarray(loadmat(str(mat_path))["pos_img"], dtype=float) - 1
    except (OSError, ValueError, KeyError) as e:
        raise InputError(f"{mat_path}: no readable 'pos_img' ({type(e).__name__}: {e})") from None
    if pos.ndim != 3 or pos.shape[0] != 2 or pos.shape[2] != len(frames):
        raise InputError(f"{mat_path}: pos_img must be (2, joints, {len(frames)} frames), got {pos.shape}")
    points = {t: pos[::-1, :, t].T.copy() for t in range(len(frames))}  # (x, y) -> [row, col]
    visible = {t: np.ones(pos.shape[1], dtype=bool) for t in range(len(frames))}
    return Track(frames_dir.name, frames, 0, points, visible, list(range(pos.shape[1])), frame_size(frames[0]))


def truncate(track: Track, n: int) -> Track:
    """The query frame and the n - 1 frames after it (quick looks: PCK then covers those frames only)."""
    end = track.query + n
    keep = lambda d: {t: v for t, v in d.items() if t < end}  # noqa: E731
    return Track(track.name, track.frames[:end], track.query, keep(track.points), keep(track.visible), track.slots,
                 track.size, keep(track.masks))


CSV_FIELDS = ("frame", "joint", "row", "col", "visible")


def write_csv(path, track: Track, preds: dict[int, np.ndarray], queried: np.ndarray) -> None:
    """One row per predicted frame and propagated joint: frame id, slot, [row, col] in pixels of the frames read
    (-1, -1: the joint's channel emptied), visible 1/0 as annotated there, -1 where the frame is not annotated."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_FIELDS)
        for t in sorted(preds):
            vis = track.visible.get(t)
            for j in np.flatnonzero(queried):
                r, c = preds[t][j]
                w.writerow([track.frames[t].stem, track.slots[j], f"{r:.2f}", f"{c:.2f}",
                            -1 if vis is None else int(vis[j])])
