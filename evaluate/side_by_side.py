"""Ground truth beside the prediction, per sequence (`evaluate davis --video`): OUT/<seq>/side-by-side/video.mp4,
left the frame with the ground-truth masks, right with the predicted ones (filled, translucent, in the DAVIS
palette's object colours), under a band that labels the halves "ground truth" and "prediction", and its middle
frame as OUT/<seq>/side-by-side/still.png, the still a report embeds. They live in a folder of their own so that
no picture of theirs sits among the predicted frames that `metrics` reads. Frames without a ground-truth mask
(test sets annotate only the first) show the plain frame on the left."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from spixwalk.video import Mp4Writer

from .davis_io import load_mask, mask_overlay, mask_path

FOLDER = "side-by-side"
VIDEO, STILL = f"{FOLDER}/video.mp4", f"{FOLDER}/still.png"  # relative to OUT/<seq>
LABELS = ("ground truth", "prediction")


def band_height(h: int) -> int:
    """Rows of the label band above frames h rows high."""
    return max(16, round(h / 20))


def label_band(h: int, w: int) -> np.ndarray:
    """(band, 2w, 3): black, each half's label in white at its left."""
    band = np.zeros((band_height(h), 2 * w, 3), np.uint8)
    scale = band.shape[0] / 32
    for i, text in enumerate(LABELS):
        cv2.putText(band, text, (i * w + 8, round(band.shape[0] * 0.75)), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (255, 255, 255), max(1, round(2 * scale)), cv2.LINE_AA)
    return band


def compose(frame: np.ndarray, gt: np.ndarray | None, pred: np.ndarray) -> np.ndarray:
    """(band + H, 2W, 3): the label band over ground-truth overlay | prediction overlay."""
    left = frame if gt is None else mask_overlay(frame, gt)
    h, w = frame.shape[:2]
    return np.concatenate([label_band(h, w), np.concatenate([left, mask_overlay(frame, pred)], axis=1)], axis=0)


class SideBySide:
    """Frames added in order (one thread: ffmpeg's input is a stream) go to the mp4; the middle one also to
    the still."""

    def __init__(self, davis, year, seq, folder: Path, n_frames: int, fps: float, scale: float = 1.0):
        self.davis, self.year, self.seq, self.folder, self.scale = davis, year, seq, Path(folder), scale
        self.still_at, self.i = n_frames // 2, 0
        (self.folder / FOLDER).mkdir(parents=True, exist_ok=True)
        self.video = Mp4Writer(self.folder / VIDEO, fps)

    def add(self, path: Path, frame: np.ndarray, pred: np.ndarray) -> None:
        gt_path = mask_path(self.davis, self.seq, path.stem)
        gt = load_mask(gt_path, self.year, self.scale) if gt_path.is_file() else None
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
