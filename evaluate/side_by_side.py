"""Ground truth beside the prediction, per sequence (`evaluate davis --video`): OUT/<seq>/side-by-side.mp4,
left the frame with the ground-truth masks, right with the predicted ones (filled, translucent, in the DAVIS
palette's object colours), and its middle frame as OUT/<seq>/side-by-side.png, the still a report embeds.
Frames without a ground-truth mask (test sets annotate only the first) show the plain frame on the left."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from spixwalk.common import Mp4Writer

from .davis_io import load_mask, mask_overlay, mask_path

VIDEO, STILL = "side-by-side.mp4", "side-by-side.png"


def compose(frame: np.ndarray, gt: np.ndarray | None, pred: np.ndarray) -> np.ndarray:
    """(H, 2W, 3): ground-truth overlay | prediction overlay."""
    left = frame if gt is None else mask_overlay(frame, gt)
    return np.concatenate([left, mask_overlay(frame, pred)], axis=1)


class SideBySide:
    """Frames added in order (one thread: ffmpeg's input is a stream) go to the mp4; the middle one also to
    the still."""

    def __init__(self, davis, year, seq, folder: Path, n_frames: int, fps: float):
        self.davis, self.year, self.seq, self.folder = davis, year, seq, Path(folder)
        self.still_at, self.i = n_frames // 2, 0
        self.video = Mp4Writer(self.folder / VIDEO, fps)

    def add(self, path: Path, frame: np.ndarray, pred: np.ndarray) -> None:
        gt_path = mask_path(self.davis, self.seq, path.stem)
        gt = load_mask(gt_path, self.year) if gt_path.is_file() else None
        both = compose(frame, gt, pred)
        self.video.write(both)
        if self.i == self.still_at:
            Image.fromarray(both).save(self.folder / STILL)
        self.i += 1

    def close(self) -> None:
        self.video.close()

    def abort(self) -> None:
        """The sequence failed: stop ffmpeg, keep no file."""
        self.video.abort()
